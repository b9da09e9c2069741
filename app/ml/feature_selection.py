"""Choosing feature columns from the data when a config names none: no target, ids or free text."""

from __future__ import annotations

import pandas as pd

from app.ml.input_schema import infer_feature_type

# A column with every value distinct only says "identifier" once there are enough rows to tell; below this a
# small table's ages or prices would be thrown away by chance.
MIN_ROWS_FOR_UNIQUE_CHECK = 20
FREE_TEXT_MIN_DISTINCT = 50
FREE_TEXT_MIN_UNIQUE_RATIO = 0.5


def is_id_name(name: str) -> bool:
    lowered = name.lower()
    return lowered == "id" or lowered.endswith("_id") or lowered.endswith("_key")


def select_features(df: pd.DataFrame, target: str, column_types: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """(feature columns in frame order, {excluded column: why}) for a config without `feature_columns`.

    Left out: the target, id-like columns (named `id`, `*_id`, `*_key`, or integers/text with a distinct value
    on every row), free text (text with more than 50 distinct values, over half of them unique), dates and
    timestamps (name them explicitly to use them: as automatic features they tend to leak the row's order) and
    columns with no values at all.
    """
    features: list[str] = []
    excluded: dict[str, str] = {}
    for name in df.columns:
        if name == target:
            continue
        ftype = column_types.get(name) or infer_feature_type(df[name])
        values = df[name].dropna()
        if is_id_name(name):
            excluded[name] = "identifier (by name)"
        elif values.empty:
            excluded[name] = "no values"
        elif ftype in ("date", "timestamp"):
            excluded[name] = f"{ftype} (name it in feature_columns to use it)"
        elif (
            ftype in ("integer", "text")
            and len(values) >= MIN_ROWS_FOR_UNIQUE_CHECK
            and _distinct(values) == len(values)
        ):
            excluded[name] = "identifier (a distinct value on every row)"
        elif ftype == "text" and _is_free_text(values):
            excluded[name] = "free text (too many distinct values)"
        else:
            features.append(name)
    return features, excluded


def _distinct(values: pd.Series) -> int:
    return int(values.astype(str).nunique()) if values.dtype == object else int(values.nunique())


def _is_free_text(values: pd.Series) -> bool:
    distinct = _distinct(values)
    return distinct > FREE_TEXT_MIN_DISTINCT and distinct / len(values) > FREE_TEXT_MIN_UNIQUE_RATIO
