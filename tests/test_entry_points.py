"""The process entry points keep their start-up objects out of the garbage collector's full collections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["wsgi", "celery_worker"])
def test_the_entry_point_freezes_what_it_built(module, test_env):
    # A full collection over the app's ~165,000 start-up objects is a pause of about 100 ms for every thread of the
    # process; frozen, it walks only what serving created since (a few thousand objects, a millisecond or two).
    script = f"import gc, {module}; print(gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **test_env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) > 50_000, out.stdout
