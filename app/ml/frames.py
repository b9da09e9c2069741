"""Turning training frames and prediction rows into the one frame layout a pipeline is fitted and scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.ml.input_schema import as_bool

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def to_day_numbers(series: pd.Series) -> pd.Series:
    """Dates and timestamps become days since 1970 (a float), so every algorithm can use them as numbers."""
    stamps = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    return ((stamps - _EPOCH) / pd.Timedelta(days=1)).astype("float64")


def to_category_values(values, ftype: str) -> list:
    """str (or NaN) values: what SimpleImputer and OneHotEncoder handle the same way at fit and at score time,
    whatever dtype the warehouse driver or pandas' string inference produced. Booleans become "true"/"false"."""
    if ftype == "boolean":
        flags = [as_bool(v) if not _is_missing(v) else None for v in values]
        return ["true" if v is True else "false" if v is False else np.nan for v in flags]
    return [np.nan if _is_missing(v) else str(v) for v in values]


def _to_category(series: pd.Series, ftype: str) -> pd.Series:
    return pd.Series(to_category_values(series, ftype), index=series.index, dtype=object)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def json_safe(value):
    """numpy scalars -> Python scalars (NaN -> None), so classes and predictions serialise as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (np.isnan(value) or np.isinf(value)):
        return None
    return value


def model_frame(data: pd.DataFrame | list[dict], schema: list[dict]) -> pd.DataFrame:
    """The frame a pipeline sees: one column per schema feature, numbers as float64, categories as str/NaN."""
    frame = (
        data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(data, columns=[f["name"] for f in schema])
    )
    columns = {}
    for feature in schema:
        name, ftype = feature["name"], feature["type"]
        series = frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if ftype in ("integer", "float"):
            if series.dtype == object:
                series = series.map(lambda v: np.nan if _is_missing(v) else v)
            columns[name] = pd.to_numeric(series, errors="coerce").astype("float64")
        elif ftype in ("date", "timestamp"):
            columns[name] = to_day_numbers(series)
        else:
            columns[name] = _to_category(series, ftype)
    return pd.DataFrame(columns, index=frame.index)
