"""CSV type inference: the narrowest logical type each text value fits, how a column's type widens over its values,
and the conversion of a value to the type inferred (the loader's two passes)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime

_INT18 = re.compile(r"[+-]?(?:0|[1-9]\d{0,17})")  # always within int64
_INT19 = re.compile(r"[+-]?[1-9]\d{18}")  # needs a range check
_FLOAT = re.compile(r"[+-]?(?:(?:0|[1-9]\d*)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?")
_BOOLEANS = {"true": True, "t": True, "yes": True, "false": False, "f": False, "no": False}
_INT64 = range(-(2**63), 2**63)


def _is_integer(v: str) -> bool:
    return _INT18.fullmatch(v) is not None or (_INT19.fullmatch(v) is not None and int(v) in _INT64)


def _is_float(v: str) -> bool:
    if _FLOAT.fullmatch(v) is None:
        return False
    if "." not in v and "e" not in v and "E" not in v:
        return _is_integer(v)  # a whole number past int64 is an identifier: text, not a rounded float
    return math.isfinite(float(v))


def _is_boolean(v: str) -> bool:
    return v.lower() in _BOOLEANS


def _is_date(v: str) -> bool:
    return _DATE.fullmatch(v) is not None and _parses(date.fromisoformat, v)


def _is_timestamp(v: str) -> bool:
    return _TIMESTAMP.fullmatch(v) is not None and _parses(datetime.fromisoformat, v)


def _parses(parse: Callable[[str], object], v: str) -> bool:
    try:
        parse(v)
    except ValueError:
        return False
    return True


# Whether a (stripped, non-empty) value fits each type, narrowest first (text fits everything).
FITS: dict[str, Callable[[str], bool]] = {
    "integer": _is_integer,
    "float": _is_float,
    "boolean": _is_boolean,
    "date": _is_date,
    "timestamp": _is_timestamp,
}
_WIDER = {frozenset({"integer", "float"}): "float", frozenset({"date", "timestamp"}): "timestamp"}


def narrowest(v: str) -> str:
    """The narrowest type a (stripped, non-empty) value fits: integer, float, boolean, date, timestamp, else text."""
    return next((kind for kind, fits in FITS.items() if fits(v)), "text")


def narrow(kind: str | None, v: str) -> str:
    """A column's type once it has also seen the (stripped, non-empty) value `v`: `kind` (None: nothing seen yet)
    when `v` fits it, else the narrowest type both fit (integer+float: float, date+timestamp: timestamp, else text)."""
    if kind is not None and FITS[kind](v):
        return kind
    found = narrowest(v)
    return found if kind is None else _WIDER.get(frozenset({kind, found}), "text")


def _to_integer(v: str) -> int:
    number = int(v)
    if number not in _INT64:
        raise ValueError("out of the 64-bit integer range")
    return number


def _to_float(v: str) -> float:
    return float(v)


def _to_boolean(v: str) -> bool:
    return _BOOLEANS[v.lower()]


def _to_timestamp(v: str) -> datetime:
    value = datetime.fromisoformat(v)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


_CONVERT: dict[str, Callable[[str], object]] = {
    "integer": _to_integer,
    "float": _to_float,
    "boolean": _to_boolean,
    "date": date.fromisoformat,
    "timestamp": _to_timestamp,
}


def converter(kind: str) -> Callable[[str], object]:
    """The function turning a CSV text value into a value of `kind` (blank: None); raises ValueError, KeyError or
    OverflowError on a value that does not fit."""
    if kind == "text":
        return lambda value: value if value.strip() else None
    convert = _CONVERT[kind]
    return lambda value: convert(v) if (v := value.strip()) else None
