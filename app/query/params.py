"""Request params -> the bound values of a query: each filter param coerced to its column's type, limit and offset."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import APIError
from app.query.coercion import CoercionError, check_like_pattern, coerce_text
from app.query.plan import FilterSpec
from app.query.validation import LIST_OPS, MAX_LIST_VALUES, TEXT_OPS

_MAX_OFFSET = 2**63 - 1


def param_error(name: str, message: str) -> APIError:
    """A 400 naming one request parameter, e.g. `param 'min_age': expected an integer`."""
    return APIError(400, "validation_error", f"param '{name}': {message}", {"fields": {name: [message]}})


def param_value(spec: FilterSpec, raw: str) -> Any:
    """The filter's request string as a value of its column's type (a list for in/not_in/between); 400 naming the
    param when it does not fit."""
    logical = spec.column.type
    try:
        if spec.op in LIST_OPS or spec.op == "between":
            parts = raw.split(",")
            if spec.op == "between" and len(parts) != 2:
                raise CoercionError("expected two comma-separated values (low,high)")
            if len(parts) > MAX_LIST_VALUES:
                raise CoercionError(f"at most {MAX_LIST_VALUES} comma-separated values")
            return [coerce_text(part.strip() if logical == "text" else part, logical) for part in parts]
        value = coerce_text(raw, logical)
        return check_like_pattern(value) if spec.op in TEXT_OPS else value
    except CoercionError as exc:
        raise param_error(spec.param or "", str(exc)) from None


def page(params: Mapping[str, str], default_limit: int, max_limit: int) -> tuple[int, int]:
    """(limit, offset) from the request, within the query's pagination; 400 naming `limit` or `offset`."""
    limit, offset = default_limit, 0
    raw_limit = params.get("limit")
    if raw_limit is not None:
        raw_limit = str(raw_limit)
        if not _is_count(raw_limit) or not 1 <= int(raw_limit) <= max_limit:
            raise param_error("limit", f"expected an integer from 1 to {max_limit}")
        limit = int(raw_limit)
    raw_offset = params.get("offset")
    if raw_offset is not None:
        raw_offset = str(raw_offset)
        if not _is_count(raw_offset) or int(raw_offset) > _MAX_OFFSET:
            raise param_error("offset", "expected an integer of 0 or more")
        offset = int(raw_offset)
    return limit, offset


def _is_count(text: str) -> bool:
    # Plain ASCII digits, short enough that int() stays cheap on a hostile 100 kB value.
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit()


def like_to_glob(pattern: str) -> str:
    """A LIKE pattern (`%`, `_`, backslash escapes) as the equivalent SQLite GLOB pattern."""
    out, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            char = next(chars, "\\")
            out.append(f"[{char}]" if char in "*?[" else char)
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)
