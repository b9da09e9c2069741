"""Builders for the endpoints of an API service config, so nobody hand-rolls the dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Endpoint = dict[str, Any]


def sql_endpoint(id: str, query: Mapping[str, Any]) -> Endpoint:
    """A `sql` endpoint (served on GET) over a data-API query config: source, columns, filters, joins, ..."""
    return {"id": id, "kind": "sql", "query": dict(query)}


def lookup_endpoint(
    id: str,
    dataset: str,
    key_column: str,
    key_param: str = "id",
    columns: Sequence[str] | None = None,
    max_results: int = 100,
) -> Endpoint:
    """A `lookup` endpoint (GET): rows of `dataset` ("schema.table") whose `key_column` equals `?<key_param>=`."""
    return {
        "id": id,
        "kind": "lookup",
        "dataset": dataset,
        "key_column": key_column,
        "key_param": key_param,
        "columns": list(columns) if columns is not None else None,
        "max_results": max_results,
    }


def model_endpoint(id: str, *, model_id: int) -> Endpoint:
    """A `model` endpoint (POST): `{"features": {...}}` or `{"rows": [...]}` in, predictions out."""
    return {"id": id, "kind": "model", "model_id": model_id}


def function_endpoint(id: str, handler: str) -> Endpoint:
    """A `function` endpoint (POST): `handler` is Python source defining `def handler(payload): ...`."""
    return {"id": id, "kind": "function", "handler": handler}
