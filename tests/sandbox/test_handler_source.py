"""Save-time checks: a bad handler is refused with a 422 naming the field, the line and the reason."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.sandbox import MAX_SOURCE_BYTES, check_handler_source

FIELD = "config.endpoints[2].handler"


def refusal(source: str) -> APIError:
    with pytest.raises(APIError) as caught:
        check_handler_source(source, FIELD)
    assert caught.value.status == 422
    assert FIELD in caught.value.details["fields"]
    return caught.value


def test_a_valid_handler_passes():
    check_handler_source("import math\n\ndef handler(payload):\n    return math.sqrt(payload['x'])\n", FIELD)


def test_a_syntax_error_names_the_line():
    err = refusal("def handler(payload):\n    return (1 +\n\nx = 1\n")
    assert "line 2" in err.message or "line 4" in err.message
    assert "syntax error" in err.message


def test_an_indentation_error_names_its_line():
    err = refusal("def handler(payload):\nreturn 1\n")
    assert "line 2" in err.message


def test_source_without_a_handler_is_refused():
    err = refusal("def handle(payload):\n    return 1\n")
    assert "handler(payload)" in err.message


def test_a_nested_handler_does_not_count():
    refusal("class X:\n    def handler(self, payload):\n        return 1\n")


def test_a_handler_with_the_wrong_arity_is_refused():
    assert "one argument" in refusal("def handler():\n    return 1\n").message
    assert "one argument" in refusal("def handler(a, b):\n    return 1\n").message
    check_handler_source("def handler(payload, scale=2):\n    return 1\n", FIELD)


def test_an_async_handler_is_refused():
    assert "async" in refusal("async def handler(payload):\n    return 1\n").message


def test_source_over_64_kb_is_refused():
    source = "def handler(payload):\n    return 1\n" + "# padding\n" * (MAX_SOURCE_BYTES // 10)
    assert str(MAX_SOURCE_BYTES) in refusal(source).message


def test_empty_and_non_string_sources_are_refused():
    refusal("")
    refusal(None)  # type: ignore[arg-type]
