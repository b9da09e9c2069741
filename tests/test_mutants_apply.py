"""Every named mutant of `make mutants` still applies to the code: a refactor that moves the code a mutant breaks
leaves that promise unchecked, and is caught here rather than at the next `make mutants`."""

import pytest

from tests.mutants import MUTANTS, ROOT


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_mutant_still_applies(mutant):
    source = (ROOT / mutant.path).read_text()
    for original, _ in mutant.edits:
        assert source.count(original) == 1, f"{mutant.path} holds {original!r} {source.count(original)} times"
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).exists(), test
