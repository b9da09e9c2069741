"""A model's input schema and the validation of prediction bodies against it (pure Python on the request path)."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from app.errors import invalid

FEATURE_TYPES = ("integer", "float", "boolean", "text", "date", "timestamp")
NUMERIC_FEATURE_TYPES = ("integer", "float", "date", "timestamp")  # fed to the model as numbers
CATEGORICAL_FEATURE_TYPES = ("boolean", "text")  # one-hot encoded
EXPLAIN_METHODS = ("shapley",)  # explanations computed by app/ml/explanations.py on a worker
MAX_EXACT_FEATURES = 12  # exact Shapley values cost 2^features model evaluations per row
MAX_LISTED_CATEGORIES = 1000  # above this `categories` is None: the list would be noise, not documentation
_EXPECTED = {
    "integer": "expected an integer",
    "float": "expected a number",
    "boolean": "expected true or false",
    "text": "expected text",
    "date": "expected a date (YYYY-MM-DD)",
    "timestamp": "expected an ISO 8601 timestamp",
}


def build_input_schema(df, feature_columns: list[str], column_types: dict[str, str] | None = None) -> list[dict]:
    """The JSON-serialisable schema of a model's inputs: `[{name, type, categories, nullable}]` in feature order.

    Types come from the warehouse's logical types when known, else from the frame's dtypes. Every feature is
    nullable: the pipeline imputes missing values, so a caller may send null for a value it does not know.
    `categories` lists the values seen in training for text and boolean features; it documents the model, it
    does not restrict input (unseen categories are scored as "none of the known ones").
    """
    column_types = column_types or {}
    schema = []
    for name in feature_columns:
        series = df[name]
        ftype = column_types.get(name) or infer_feature_type(series)
        categories = None
        if ftype in CATEGORICAL_FEATURE_TYPES:
            values = series.dropna().unique()
            if ftype == "boolean":
                categories = sorted({as_bool(v) for v in values} - {None})
            elif len(values) <= MAX_LISTED_CATEGORIES:
                categories = sorted(str(v) for v in values)
        schema.append({"name": name, "type": ftype, "categories": categories, "nullable": True})
    return schema


def infer_feature_type(series) -> str:
    """The logical type of a pandas Series whose warehouse type is unknown."""
    from pandas.api import types as ptypes

    if ptypes.is_bool_dtype(series):
        return "boolean"
    if ptypes.is_integer_dtype(series):
        return "integer"
    if ptypes.is_float_dtype(series):
        return "float"
    if ptypes.is_datetime64_any_dtype(series):
        return "timestamp"
    sample = series.dropna()
    if len(sample):
        first = sample.iloc[0]
        if isinstance(first, bool):
            return "boolean"
        if isinstance(first, datetime):
            return "timestamp"
        if isinstance(first, date):
            return "date"
    return "text"


def as_bool(value: Any) -> bool | None:
    """A boolean from what warehouses return for one (bool, 0/1, 't'/'f', 'true'/'false'); None if it is not one."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalars (np.bool, np.int64) from pandas columns
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "t", "1", "yes", "false", "f", "0", "no"):
        return value.strip().lower() in ("true", "t", "1", "yes")
    return None


def parse_predict_body(body: Any, extra: tuple[str, ...] = ()) -> tuple[list, bool]:
    """`{"features": {...}}` -> ([row], True); `{"rows": [...]}` -> (rows, False); anything else is a 422.

    A `dry` flag (sent by the endpoint test route) and the `extra` keys the caller reads itself (context,
    explanations) are tolerated; any other key is refused so typos show.
    """
    if not isinstance(body, dict) or ("features" not in body and "rows" not in body):
        raise invalid("features", 'the body must be {"features": {...}} or {"rows": [{...}, ...]}')
    for key in body:
        if key not in ("features", "rows", "dry", *extra):
            raise invalid(key, 'unknown field; send {"features": {...}} or {"rows": [{...}, ...]}')
    if "features" in body and "rows" in body:
        raise invalid("rows", "send either features or rows, not both")
    if "features" in body:
        if not isinstance(body["features"], dict):
            raise invalid("features", "must be an object of feature values")
        return [body["features"]], True
    if not isinstance(body["rows"], list):
        raise invalid("rows", "must be a list of objects of feature values")
    return body["rows"], False


def _check_value(ftype: str, value: Any) -> tuple[bool, Any]:
    """(ok, normalised value). Strict: numeric strings are not numbers and numbers are not text."""
    if ftype == "integer":
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if ftype == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, None
        return math.isfinite(value), float(value)
    if ftype == "boolean":
        return isinstance(value, bool), value
    if ftype == "text":
        return isinstance(value, str), value
    if ftype == "date":
        if not isinstance(value, str):
            return False, None
        try:
            date.fromisoformat(value)
        except ValueError:
            return False, None
        return True, value
    if ftype == "timestamp":
        if not isinstance(value, str):
            return False, None
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False, None
        return True, value
    return False, None


def validate_rows(
    schema: list[dict],
    rows: Any,
    max_rows: int,
    *,
    single: bool = False,
    allow_missing: bool = False,
    start: int = 0,
) -> list[dict]:
    """Check prediction rows against the model's input schema; return them normalised, in schema order.

    Errors are 422 naming the place: `features.tenure: missing` (single) or `rows[3].plan: expected text`.
    Every feature must be present; null is accepted for a nullable feature and imputed by the pipeline. With
    `allow_missing=True` an absent feature is treated as null instead (for clients that send partial rows).
    `start` is the index of the first row in the request (when rows are checked one by one).
    """
    check_batch(rows, max_rows)
    known = {f["name"]: f for f in schema}
    out = []
    for i, row in enumerate(rows):
        where = "features" if single else f"rows[{start + i}]"
        if not isinstance(row, dict):
            raise invalid(where, "must be an object of feature values")
        for key in row:
            if key not in known:
                names = ", ".join(list(known)[:20]) + (" ..." if len(known) > 20 else "")
                raise invalid(f"{where}.{key}", f"unknown feature; the model takes {names}")
        clean = {}
        for feature in schema:
            name = feature["name"]
            if name not in row and not allow_missing:
                raise invalid(f"{where}.{name}", "missing")
            value = row.get(name)
            if value is None:
                if not feature.get("nullable", True):
                    raise invalid(f"{where}.{name}", "must not be null")
                clean[name] = None
                continue
            ok, normalised = _check_value(feature["type"], value)
            if not ok:
                raise invalid(f"{where}.{name}", _EXPECTED.get(feature["type"], "unexpected value"))
            clean[name] = normalised
        out.append(clean)
    return out


def check_batch(rows: Any, max_rows: int) -> None:
    """A 422 naming `rows` unless it is a list of 1 to `max_rows` items."""
    if not isinstance(rows, list):
        raise invalid("rows", "must be a list of objects of feature values")
    if not rows:
        raise invalid("rows", "must hold at least one row")
    if len(rows) > max_rows:
        raise invalid("rows", f"at most {max_rows} rows per request (got {len(rows)})")
