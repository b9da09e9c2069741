"""Running a compiled query read-only and shaping its rows for one key: JSON values, masking, [BLOCKED]."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from app.errors import APIError
from app.query.compiler import CompiledQuery, MaskingLookup, OutputColumn, build_template
from app.query.masking import BLOCKED, mask_value
from app.query.plan import ResolvedQuery
from app.query.policy import MASK, KeyPolicy
from app.query.template import QueryTemplate, TemplateCache, policy_key, template_shape, template_sql
from app.query.validation import resolve_query_config
from app.warehouse.engine import QueryTimeout, is_sqlite
from app.warehouse.readonly import run_readonly_sql


def run_query(
    engine: Engine,
    config: dict,
    params: Mapping[str, str],
    policy: KeyPolicy,
    masking: MaskingLookup,
    timeout_s: float,
    field_prefix: str = "query",
    plan: ResolvedQuery | None = None,
    tables: Mapping | None = None,
    templates: TemplateCache | None = None,
) -> dict:
    """Compile and run `config` for one request: `{rows, count, limit, offset}`, every row shaped by `policy`.

    `plan`: `config` already resolved against the warehouse (serving caches it), else it is resolved here.
    `templates`: where the templates of `plan` with this `masking` are kept (serving keeps them on its prepared
    query), so a shape already seen binds the params to SQL compiled once; without, one is built for this call."""
    if plan is None:
        plan = resolve_query_config(config, engine, field_prefix)
    shape = template_shape(plan, params)
    sqlite = is_sqlite(engine)

    def build() -> QueryTemplate:
        return build_template(plan, policy, masking, shape, sqlite, tables)

    template = build() if templates is None else templates.get((policy_key(policy), shape, sqlite), build)
    values, limit, offset = template.bind(params)
    sql = template_sql(template, engine.dialect)
    try:
        description, raw_rows = run_readonly_sql(engine, sql.text, sql.args(values), timeout_s)
    except QueryTimeout as exc:
        raise APIError(
            504,
            "query_timeout",
            f"the query took longer than {exc.seconds:g} s and was stopped",
            {"timeout_s": exc.seconds},
        ) from None
    rows = shape_rows(template, sql.rows(description, raw_rows))
    return {"rows": rows, "count": len(rows), "limit": limit, "offset": offset}


def shape_rows(compiled: CompiledQuery | QueryTemplate, raw_rows: list[dict]) -> list[dict]:
    """Each warehouse row as the key may see it, in the output plan's column order."""
    return [{col.name: _served_value(col, raw) for col in compiled.columns} for raw in raw_rows]


def _served_value(col: OutputColumn, raw: dict) -> Any:
    if col.action == BLOCKED:
        return BLOCKED
    # JSON first, then mask: a hash is then the same on SQLite and PostgreSQL (dates, Decimals) for the same data.
    value = json_value(raw[col.name])
    if col.action == MASK:
        return mask_value(value, col.masking.strategy)
    return value


def json_value(value: Any) -> Any:
    """A warehouse value as JSON can carry it: ISO 8601 for dates and times, floats for Decimals."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
