"""Tabular data to CSV for uploads: DataFrames and the like by their `.to_csv()`, or plain lists of dicts."""

from __future__ import annotations

import csv
import inspect
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any


def csv_bytes(frame: Any) -> bytes:
    """`frame` as CSV bytes; duck-typed so the SDK never imports pandas (or anything else) itself."""
    to_csv = getattr(frame, "to_csv", None)
    if callable(to_csv):
        # pandas would write its row index as a first column unless told not to; other to_csv()s have no flag.
        text = to_csv(index=False) if _takes_index(to_csv) else to_csv()
        if isinstance(text, bytes):
            return text
        if isinstance(text, str):
            return text.encode("utf-8")
        raise TypeError("frame.to_csv() must return the CSV as str or bytes")
    if isinstance(frame, (str, bytes, Mapping)) or not isinstance(frame, Iterable):
        raise TypeError("frame must be a pandas DataFrame, an object with .to_csv(), or a list of dicts")
    rows = list(frame)
    if not rows or not all(isinstance(row, Mapping) for row in rows):
        raise TypeError("frame must be a non-empty list of dicts (one per row)")
    columns = list(dict.fromkeys(str(key) for row in rows for key in row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = {str(key): value for key, value in row.items()}
        writer.writerow([_cell(cells.get(column)) for column in columns])
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _takes_index(to_csv: Any) -> bool:
    try:
        parameters = inspect.signature(to_csv).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): assume pandas' interface
        return True
    return "index" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
