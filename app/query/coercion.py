"""Turning request strings and config values into Python values of a column's logical type."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

_INTEGER = re.compile(r"[+-]?\d{1,19}")
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}
# 64-bit integer range: both warehouses store integers as BIGINT at most.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

# SQLite refuses LIKE/GLOB patterns past 50,000 characters, and long wildcard patterns are costly everywhere.
MAX_PATTERN_LENGTH = 1000

EXPECTED = {
    "integer": "expected an integer",
    "float": "expected a number",
    "boolean": "expected a boolean (true or false)",
    "date": "expected a date (YYYY-MM-DD)",
    "timestamp": "expected an ISO 8601 timestamp",
    "text": "expected a string",
}


class CoercionError(ValueError):
    """A value that does not fit the column's type; the message says what was expected."""


def coerce_text(raw: str, logical: str) -> Any:
    """A request parameter's string as a value of `logical` type; CoercionError when it does not fit."""
    if "\x00" in raw:
        # PostgreSQL cannot store NUL in text at all; refusing it keeps both warehouses alike.
        raise CoercionError("must not contain NUL characters")
    if logical == "text":
        return raw
    text = raw.strip()
    try:
        if logical == "integer":
            if not _INTEGER.fullmatch(text) or not _INT_MIN <= int(text) <= _INT_MAX:
                raise ValueError
            return int(text)
        if logical == "float":
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return number
        if logical == "boolean":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if logical == "date":
            return dt.date.fromisoformat(text)
        if logical == "timestamp":
            return _naive_utc(dt.datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise CoercionError(EXPECTED[logical]) from None
    raise CoercionError(f"unsupported column type {logical}")


def coerce_json(value: Any, logical: str) -> Any:
    """A fixed config value (any JSON scalar) as a value of `logical` type; CoercionError when it does not fit."""
    if isinstance(value, str):
        return coerce_text(value, logical)
    if logical == "integer" and isinstance(value, int) and not isinstance(value, bool):
        if _INT_MIN <= value <= _INT_MAX:
            return value
    elif logical == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif logical == "boolean" and isinstance(value, bool):
        return value
    raise CoercionError(EXPECTED[logical])


def _naive_utc(value: dt.datetime) -> dt.datetime:
    # Warehouse timestamps are stored without a zone (UTC by convention); compare like with like.
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def check_like_pattern(pattern: str) -> str:
    """`pattern` unless it is too long for SQLite or ends in a lone backslash escape, which PostgreSQL refuses."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise CoercionError(f"a pattern may be at most {MAX_PATTERN_LENGTH} characters")
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    if trailing % 2:
        raise CoercionError("a pattern must not end with a lone backslash (write \\\\ for a literal one)")
    return pattern
