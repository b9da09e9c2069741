"""Helpers for the sandbox tests: a short-deadline runner and a way to see what a failed call raised."""

from __future__ import annotations

import textwrap

import pytest

from app.errors import APIError
from app.sandbox import run_handler

TIMEOUT_S = 2.0


def call(source: str, payload=None, **limits):
    limits.setdefault("timeout_s", TIMEOUT_S)
    limits.setdefault("cpu_seconds", 2)
    return run_handler(textwrap.dedent(source), payload, **limits)


def failure(source: str, payload=None, **limits) -> APIError:
    with pytest.raises(APIError) as caught:
        call(source, payload, **limits)
    return caught.value


def assert_next_call_succeeds() -> None:
    assert call("def handler(payload):\n    return payload + 1\n", 41) == 42
