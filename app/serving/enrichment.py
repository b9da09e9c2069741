"""Feature enrichment of model endpoints: the features a caller did not send, looked up in a project dataset.

Runs in the web process through the governed query engine with the calling key's policy, one query per
enrichment for the whole batch (`IN` over the distinct keys), so the key's row scope and masking apply:

- a row the key's row scope excludes is simply not returned, so it is treated as not found (never leaked);
- a looked-up column the key sees masked or `[BLOCKED]` is scored as null (the model never sees more than the
  key could read) and echoed by `return_enriched` as the key sees it;
- matching needs the `on` columns in clear: a key that sees one masked, blocked or not at all gets a 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from app.datasets.catalog import Catalog
from app.errors import APIError, invalid
from app.extensions import warehouse
from app.query.coercion import CoercionError, coerce_json
from app.query.compiler import compile_query
from app.query.executor import shape_rows
from app.query.policy import SERVE, KeyPolicy
from app.warehouse.engine import QueryTimeout, execute_readonly

# At most this many matched rows per distinct key are read; past it "multiple matches" is certain anyway.
MATCHES_READ_PER_KEY = 10


@dataclass
class Enriched:
    """The batch after enrichment: rows to validate (None where a row was ignored), the reasons, the echo view."""

    rows: list
    ignored: dict[int, str] = field(default_factory=dict)
    shown: list = field(default_factory=list)  # per row: {feature: value as the key sees it} for looked-up values


class _Ignore(Exception):
    pass


def enrich_rows(
    enrichments: list[dict], rows: list, policy: KeyPolicy, org_id: int, project, single: bool, model_features: set[str]
) -> Enriched:
    """Fill each row's features from the endpoint's enrichments; 422/ignore/null per the configured policies."""
    out = Enriched(rows=[dict(r) if isinstance(r, dict) else r for r in rows], shown=[{} for _ in rows])
    catalog = Catalog.for_scope(org_id, project)
    key_features = set()
    for j, enrichment in enumerate(enrichments):
        key_features.update(p["feature"] for p in enrichment["on"])
        _apply(j, enrichment, out, policy, catalog, single)
    # Key features only the enrichment needed (a customer id the model does not take) are not scored.
    for i, row in enumerate(out.rows):
        if isinstance(row, dict) and i not in out.ignored:
            for name in key_features - model_features:
                row.pop(name, None)
    return out


def _where(i: int, single: bool) -> str:
    return "features" if single else f"rows[{i}]"


def _apply(j: int, enrichment: dict, out: Enriched, policy: KeyPolicy, catalog: Catalog, single: bool) -> None:
    dataset = catalog.dataset(enrichment["dataset"], f"enrichments[{j}].dataset")
    types = {c["name"]: c["type"] for c in dataset.columns or []}
    on = enrichment["on"]
    keys: dict[int, tuple] = {}
    for i, row in enumerate(out.rows):
        if i in out.ignored or not isinstance(row, dict):
            continue
        try:
            keys[i] = _row_key(row, on, types, enrichment, _where(i, single))
        except _Ignore as reason:
            out.ignored[i] = str(reason)
    matches = _lookup(j, enrichment, sorted({k for k in keys.values() if k is not None}), policy, catalog)
    for i, key in keys.items():
        row = out.rows[i]
        where = _where(i, single)
        if key is None:  # missing key under "null"
            found = []
        else:
            found = matches.get(key, [])
            if not found:
                outcome = enrichment["not_found"]
                if outcome == "error":
                    raise invalid(where, f"enrichment {j} ({enrichment['dataset']}): no row matches this key")
                if outcome == "ignore":
                    out.ignored[i] = f"enrichment {j}: no row in {enrichment['dataset']} matches this key"
                    continue
            elif len(found) > 1 and enrichment["multiple_matches"] == "error":
                raise invalid(where, f"enrichment {j} ({enrichment['dataset']}): several rows match this key")
        match = found[0] if found else None
        for column, feature in enrichment["columns"].items():
            if feature in row and not enrichment.get("override"):
                continue  # the caller's value wins
            if match is None:
                row[feature] = None
                out.shown[i][feature] = None
                continue
            value, shown, clear = match[column]
            row[feature] = value if clear else None
            out.shown[i][feature] = shown


def _row_key(row: dict, on: list[dict], types: dict, enrichment: dict, where: str) -> tuple | None:
    values = []
    for pair in on:
        value = row.get(pair["feature"])
        if value is None:
            outcome = enrichment["missing_key"]
            if outcome == "error":
                raise invalid(f"{where}.{pair['feature']}", "missing: the enrichment key is required")
            if outcome == "ignore":
                raise _Ignore(f"missing enrichment key {pair['feature']}")
            return None
        try:
            values.append(coerce_json(value, types[pair["column"]]))
        except CoercionError as exc:
            raise invalid(f"{where}.{pair['feature']}", str(exc)) from None
    return tuple(values)


def _lookup(j: int, enrichment: dict, keys: list[tuple], policy: KeyPolicy, catalog: Catalog) -> dict:
    """{key tuple: [{column: (value to score, value as the key sees it, in clear?)}]}: one query for all keys."""
    if not keys:
        return {}
    schema, _, table = enrichment["dataset"].partition(".")
    on_columns = [p["column"] for p in enrichment["on"]]
    columns = list(dict.fromkeys([*on_columns, *enrichment["columns"]]))
    query = {
        "source": {"schema": schema, "table": table},
        "columns": columns,
        "pagination": {"default_limit": 1, "max_limit": 1},
    }
    engine = warehouse.get()
    where = f"enrichments[{j}]"
    physical = catalog.physical_query(query, where)
    compiled = compile_query(physical, engine, {}, policy, catalog.masking(), where)
    actions = {c.name: c.action for c in compiled.columns}
    for k, column in enumerate(on_columns):
        if actions.get(column) != SERVE:
            message = f"column {column} of {enrichment['dataset']} is not readable in clear with this key"
            raise APIError(
                403,
                "column_not_permitted",
                f"{where}.on[{k}].column: {message}",
                {"fields": {f"{where}.on[{k}].column": [message]}},
            )
    [source] = compiled.statement.get_final_froms()
    conditions = [source.c[column].in_(sorted({key[k] for key in keys})) for k, column in enumerate(on_columns)]
    statement = compiled.statement.where(*conditions).limit(MATCHES_READ_PER_KEY * len(keys)).offset(None)
    try:
        raw = execute_readonly(engine, statement, current_app.config["STATEMENT_TIMEOUT_SECONDS"])
    except QueryTimeout as exc:
        raise APIError(504, "query_timeout", f"the enrichment query took longer than {exc.seconds:g} s") from None
    shown_rows = shape_rows(compiled, raw)
    wanted = set(keys)
    matches: dict[tuple, list] = {}
    for raw_row, shown in zip(raw, shown_rows, strict=True):
        key = tuple(raw_row[c] for c in on_columns)
        if key not in wanted:
            continue  # matched every column's IN list but not this combination
        matches.setdefault(key, []).append(
            {c: (shown.get(c), shown.get(c), actions.get(c) == SERVE) for c in enrichment["columns"]}
        )
    return matches
