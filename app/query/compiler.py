"""A validated query config plus request params and a key policy -> one SQLAlchemy Core SELECT with bound values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.errors import APIError
from app.query.coercion import CoercionError, check_like_pattern, coerce_json, coerce_text
from app.query.masking import BLOCKED, ColumnMasking, default_masking
from app.query.plan import ColumnRef, FilterSpec, ResolvedQuery, TableRef
from app.query.policy import MASK, KeyPolicy
from app.query.validation import LIST_OPS, MAX_LIST_VALUES, TEXT_OPS, column_not_permitted, resolve_query_config
from app.warehouse.engine import is_sqlite, sa_type_for

MaskingLookup = Callable[[str, str], Mapping[str, ColumnMasking]]

_MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class OutputColumn:
    name: str  # key in each served row
    masking: ColumnMasking
    action: str  # "value" (as stored), "mask" (through masking.strategy) or "[BLOCKED]" (not read at all)


@dataclass(frozen=True)
class CompiledQuery:
    statement: sa.Select
    columns: tuple[OutputColumn, ...]  # the key's output plan, in order; columns it may not see are absent
    limit: int
    offset: int


# The only operator a request param may use on a column the key sees masked: `eq` confirms a value the caller
# already knows (as a lookup does), one guess per call under the key's rate limit. `like`, ranges, `in` lists and
# `neq` would let a caller recover a masked value piece by piece (`a%`, `b%`...), so they are refused.
MASKED_COLUMN_OPS = ("eq",)


def column_masked(param: str, spec: FilterSpec) -> APIError:
    """A 400 naming the param: `op` on a column the key only sees masked."""
    message = f"column {spec.column.name} is masked for this key: only eq on a value you already know is accepted"
    return APIError(400, "column_masked", f"param '{param}': {message}", {"fields": {param: [message]}})


def param_error(name: str, message: str) -> APIError:
    """A 400 naming one request parameter, e.g. `param 'min_age': expected an integer`."""
    return APIError(400, "validation_error", f"param '{name}': {message}", {"fields": {name: [message]}})


def query_param_names(config: Mapping) -> frozenset[str]:
    """The request params a (valid) query config reads: its filters' params plus limit and offset."""
    names = {f["param"] for f in config.get("filters") or [] if isinstance(f, dict) and f.get("param")}
    return frozenset(names | {"limit", "offset"})


def compile_query(
    config: dict,
    engine: Engine,
    params: Mapping[str, str],
    policy: KeyPolicy,
    masking: MaskingLookup,
    field_prefix: str = "query",
    plan: ResolvedQuery | None = None,
    tables: Mapping[str, sa.Table] | None = None,
) -> CompiledQuery:
    """Compile `config` for one request. 422 for a config that no longer fits the tables, 400 for bad params.

    `masking(schema, table)` returns the table's per-column masking (see `effective_masking`); a column it
    leaves out is classified by name.
    """
    if plan is None:
        plan = resolve_query_config(config, engine, field_prefix)
    # Reused Table objects (see `plan_tables`) let SQLAlchemy's compiled cache serve the statement's SQL.
    tables = tables if tables is not None else plan_tables(plan)
    maskings = {t.key: dict(masking(t.schema, t.table) or {}) for t in plan.tables}
    outputs_by_column = {(o.column.table.key, o.column.name): o.name for o in plan.outputs}

    def column_masking(ref: ColumnRef) -> ColumnMasking:
        return maskings[ref.table.key].get(ref.name) or default_masking(ref.name)

    def visible(ref: ColumnRef) -> bool:
        names = [ref.name, f"{ref.table.key}.{ref.name}"]
        if (ref.table.key, ref.name) in outputs_by_column:
            names.append(outputs_by_column[(ref.table.key, ref.name)])
        return policy.is_allowed(*names) and not policy.is_blocked(column_masking(ref))

    def masked(ref: ColumnRef) -> bool:
        # Served through its strategy (not in clear): filtering or sorting on it would let a caller probe the value.
        return policy.action_for(column_masking(ref)) == MASK

    def sa_col(ref: ColumnRef) -> sa.ColumnElement:
        return tables[ref.table.key].c[ref.name]

    columns, selected = [], []
    for out in plan.outputs:
        # By output name (or table.column): allowing `region` must not also let a joined `customers__region` out.
        if not policy.is_allowed(out.name, f"{out.column.table.key}.{out.column.name}"):
            continue
        col_masking = column_masking(out.column)
        action = policy.action_for(col_masking)
        columns.append(OutputColumn(out.name, col_masking, action))
        if action != BLOCKED:
            selected.append(sa_col(out.column).label(out.name))
    if not selected:
        # Every output column is blocked: rows still come back, as "[BLOCKED]" placeholders.
        selected.append(sa.literal(1).label("_apiary_row"))

    from_clause: sa.FromClause = tables[plan.source.key]
    for join in plan.joins:
        for i, (left, right) in enumerate(join.on):
            for side, ref in (("left", left), ("right", right)):
                if not visible(ref):
                    raise column_not_permitted(f"{join.field}.on[{i}].{side}", ref)
                if masked(ref):
                    # An equality oracle over a whole table at once: joined to a table of guesses, every match
                    # would bring its guess back in clear (unlike one `eq` param, one guess per call).
                    where = f"{join.field}.on[{i}].{side}"
                    message = f"column {ref.name} is masked for this key and cannot be joined on"
                    raise APIError(400, "column_masked", f"{where}: {message}", {"fields": {where: [message]}})
        onclause = sa.and_(*(sa_col(left) == sa_col(right) for left, right in join.on))
        from_clause = from_clause.join(tables[join.table.key], onclause, isouter=join.type == "left")

    conditions = _row_scope_conditions(plan, policy, sa_col)
    for spec in plan.filters:
        if spec.param is not None and params.get(spec.param) is None and not spec.required:
            continue  # an optional filter whose param was not sent
        if spec.param is not None and not visible(spec.column):
            # Checked before the value is parsed, so even a parse error cannot hint at a hidden column's type.
            raise column_not_permitted(f"param '{spec.param}'", spec.column)
        if spec.param is not None and spec.op not in MASKED_COLUMN_OPS and masked(spec.column):
            raise column_masked(spec.param, spec)
        conditions.append(_filter_condition(spec, params, sa_col(spec.column), is_sqlite(engine)))

    order = []
    for spec in plan.order_by:
        if not visible(spec.column):
            raise column_not_permitted(f"{spec.field}.column", spec.column)
        if masked(spec.column):
            # The order of rows would rank values the key only sees masked.
            message = f"column {spec.column.name} is masked for this key and cannot be sorted on"
            raise APIError(
                400, "column_masked", f"{spec.field}.column: {message}", {"fields": {f"{spec.field}.column": [message]}}
            )
        order.append(sa_col(spec.column).desc() if spec.dir == "desc" else sa_col(spec.column).asc())

    limit, offset = _page(params, plan)
    statement = sa.select(*selected).select_from(from_clause).where(*conditions).order_by(*order)
    statement = statement.limit(limit).offset(offset)
    return CompiledQuery(statement, tuple(columns), limit, offset)


def plan_tables(plan: ResolvedQuery) -> dict[str, sa.Table]:
    """The plan's tables as SQLAlchemy Tables, by table key; build once per plan and pass to `compile_query`."""
    return {t.key: _sa_table(t) for t in plan.tables}


def _sa_table(ref: TableRef) -> sa.Table:
    # Built from the reflected columns only: no identifier from the config ever reaches SQL text.
    cols = [sa.Column(name, sa_type_for(logical)) for name, logical in ref.columns.items()]
    return sa.Table(ref.table, sa.MetaData(), *cols, schema=ref.schema)


def _row_scope_conditions(plan: ResolvedQuery, policy: KeyPolicy, sa_col) -> list:
    """One `col IN (...)` per scoped column and per table of the query that has it (source and every join).

    In WHERE, so a left join cannot bring a joined table's out-of-scope rows back either: they drop the row.
    """
    conditions = []
    for column, allowed in policy.row_scope:
        scoped = [t for t in plan.tables if column in t.columns]
        if not scoped:
            # Fail closed: a scoped key must not see a table its scope cannot be applied to.
            raise APIError(
                403,
                "row_scope_not_applicable",
                f"this key is scoped on column {column}, which {plan.source.label} lacks",
            )
        for table in scoped:
            ref = ColumnRef(table, column)
            values = []
            for value in allowed:
                try:
                    values.append(coerce_json(value, ref.type))
                except CoercionError:
                    continue  # a scope value of the wrong type matches nothing; the scope only narrows
            conditions.append(sa_col(ref).in_(values))
    return conditions


def _filter_condition(spec: FilterSpec, params: Mapping[str, str], col: sa.ColumnElement, sqlite: bool) -> Any:
    """The filter's WHERE term; the caller has already skipped optional filters whose param was not sent."""
    op = spec.op
    if op == "is_null":
        return col.is_(None)
    if op == "is_not_null":
        return col.is_not(None)
    if spec.param is None:
        value = spec.value
    else:
        raw = params.get(spec.param)
        if raw is None:
            raise param_error(spec.param, "is required")
        value = _param_value(spec, str(raw))
    if op == "eq":
        return col == value
    if op == "neq":
        return col != value
    if op == "gt":
        return col > value
    if op == "gte":
        return col >= value
    if op == "lt":
        return col < value
    if op == "lte":
        return col <= value
    if op == "in":
        return col.in_(value)
    if op == "not_in":
        return col.not_in(value)
    if op == "between":
        return col.between(value[0], value[1])
    if sqlite:
        # SQLite's LIKE ignores ASCII case and has no escape character; GLOB on a translated pattern gives
        # PostgreSQL's semantics (case-sensitive like, backslash escapes) on both warehouses.
        if op == "like":
            return col.op("GLOB")(like_to_glob(value))
        return sa.func.lower(col).op("GLOB")(like_to_glob(value.lower()))
    return col.like(value) if op == "like" else col.ilike(value)


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


def _param_value(spec: FilterSpec, raw: str) -> Any:
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


def _page(params: Mapping[str, str], plan: ResolvedQuery) -> tuple[int, int]:
    limit, offset = plan.default_limit, 0
    raw_limit = params.get("limit")
    if raw_limit is not None:
        raw_limit = str(raw_limit)
        if not _is_count(raw_limit) or not 1 <= int(raw_limit) <= plan.max_limit:
            raise param_error("limit", f"expected an integer from 1 to {plan.max_limit}")
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
