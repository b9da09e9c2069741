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


def model_endpoint(
    id: str,
    *,
    model_id: int,
    enrichments: Sequence[Mapping[str, Any]] | None = None,
    return_enriched: bool | None = None,
    on_bad_row: str | None = None,
    explanations: Mapping[str, Any] | None = None,
    pool: Mapping[str, Any] | None = None,
) -> Endpoint:
    """A `model` endpoint (POST, or GET with one row's features as query params): `{"features": {...}}` or
    `{"rows": [...]}` in, predictions out. `enrichments` (see `enrichment`) look features up in project datasets;
    `return_enriched` echoes the final feature rows; `on_bad_row="ignore"` answers `{"ignored": true, "reason"}`
    in place of a bad row instead of failing the batch; `explanations` is the default for requests that send none
    (see `shapley`). `pool` ({max_in_flight, max_queued, queue_timeout_ms, queue}) limits the calls in flight and
    queued, and may name a queue of its own such as "predict.fraud"."""
    endpoint: Endpoint = {"id": id, "kind": "model", "model_id": model_id}
    if enrichments is not None:
        endpoint["enrichments"] = [dict(e) for e in enrichments]
    if return_enriched is not None:
        endpoint["return_enriched"] = return_enriched
    if on_bad_row is not None:
        endpoint["on_bad_row"] = on_bad_row
    if explanations is not None:
        endpoint["explanations"] = dict(explanations)
    if pool is not None:
        endpoint["pool"] = dict(pool)
    return endpoint


def enrichment(
    dataset: str,
    on: Mapping[str, str],
    columns: Mapping[str, str],
    *,
    missing_key: str = "error",
    not_found: str = "error",
    multiple_matches: str = "error",
    override: bool = False,
) -> dict[str, Any]:
    """One enrichment of a model endpoint: rows of `dataset` ("schema.table") matched on `on` ({feature: column}),
    `columns` ({column: feature}) filling the features the caller did not send (all of them with `override`).
    Policies: `missing_key`/`not_found` "error" | "ignore" | "null", `multiple_matches` "error" | "first"."""
    return {
        "dataset": dataset,
        "on": [{"feature": feature, "column": column} for feature, column in on.items()],
        "columns": dict(columns),
        "missing_key": missing_key,
        "not_found": not_found,
        "multiple_matches": multiple_matches,
        "override": override,
    }


def shapley(top_n: int = 3) -> dict[str, Any]:
    """The `explanations` of a model call (or an endpoint's default): exact Shapley values, the `top_n` largest."""
    return {"method": "shapley", "top_n": top_n}


def predict_body(
    features: Mapping[str, Any] | None = None,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    explanations: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a model call: one row (`features`) or `rows`, with optional `explanations` and a `context`
    object (at most 4 KB, never scored, kept in the audit log)."""
    if (features is None) == (rows is None):
        raise ValueError("pass either features or rows")
    body: dict[str, Any] = {"features": dict(features)} if features is not None else {"rows": [dict(r) for r in rows]}
    if explanations is not None:
        body["explanations"] = dict(explanations)
    if context is not None:
        body["context"] = dict(context)
    return body


def function_endpoint(id: str, handler: str, *, pool: Mapping[str, Any] | None = None) -> Endpoint:
    """A `function` endpoint (POST): `handler` is Python source defining `def handler(payload): ...`; `pool` as for
    `model_endpoint` (a queue of its own is "functions.<name>")."""
    endpoint: Endpoint = {"id": id, "kind": "function", "handler": handler}
    if pool is not None:
        endpoint["pool"] = dict(pool)
    return endpoint
