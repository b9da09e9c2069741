"""A validated query config plus a key policy -> a query template (one SELECT with named binds); params bind it.

Everything the statement's structure depends on (the plan, the key policy, the masking, which optional params
were sent and how many values each list param has) is its *shape*: `build_template` turns a shape into a
`QueryTemplate` once, and `QueryTemplate.bind` turns one request's params into the values of its binds. Only
bound values ever reach SQL; the key's checks (hidden, blocked and masked columns, row scope) are all made when
the shape is built, and a shape they refuse raises the same error on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.errors import APIError
from app.query.coercion import CoercionError, coerce_json
from app.query.masking import BLOCKED, ColumnMasking, default_masking
from app.query.params import like_to_glob, param_error
from app.query.plan import ColumnRef, FilterSpec, ResolvedQuery, TableRef
from app.query.policy import MASK, KeyPolicy
from app.query.template import (
    LIMIT_BIND,
    OFFSET_BIND,
    TOO_MANY_VALUES,
    ParamBinder,
    QueryTemplate,
    template_shape,
)
from app.query.validation import LIST_OPS, NULL_OPS, column_not_permitted, resolve_query_config
from app.warehouse.engine import is_sqlite, sa_type_for

__all__ = ["like_to_glob", "param_error"]  # re-exported: callers name them from here

MaskingLookup = Callable[[str, str], Mapping[str, ColumnMasking]]


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
    template = build_template(plan, policy, masking, template_shape(plan, params), is_sqlite(engine), tables)
    values, limit, offset = template.bind(params)
    return CompiledQuery(template.statement.params(values), template.columns, limit, offset)


def build_template(
    plan: ResolvedQuery,
    policy: KeyPolicy,
    masking: MaskingLookup,
    shape: tuple,
    sqlite: bool,
    tables: Mapping[str, sa.Table] | None = None,
) -> QueryTemplate:
    """The template of one shape (see `template_shape`) for `policy`; its refusal, if the key may not run it."""
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

    binders: list[ParamBinder] = []

    def template(statement: sa.Select | None, refusal: APIError | None) -> QueryTemplate:
        return QueryTemplate(
            tuple(columns), tuple(binders), statement, refusal, plan.default_limit, plan.max_limit, sqlite
        )

    try:
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
        param_shapes = iter(shape)
        for i, spec in enumerate(plan.filters):
            count = next(param_shapes) if spec.param is not None else 1
            if spec.param is not None and count is None and not spec.required:
                continue  # an optional filter whose param was not sent
            if spec.param is not None and not visible(spec.column):
                # Checked before the value is parsed, so even a parse error cannot hint at a hidden column's type.
                raise column_not_permitted(f"param '{spec.param}'", spec.column)
            if spec.param is not None and spec.op not in MASKED_COLUMN_OPS and masked(spec.column):
                raise column_masked(spec.param, spec)
            condition, names = _filter_condition(spec, i, count, sa_col(spec.column), sqlite)
            if names is not None:
                binders.append(ParamBinder(spec, names, sqlite))
            conditions.append(condition)

        order = []
        for spec in plan.order_by:
            if not visible(spec.column):
                raise column_not_permitted(f"{spec.field}.column", spec.column)
            if masked(spec.column):
                # The order of rows would rank values the key only sees masked.
                message = f"column {spec.column.name} is masked for this key and cannot be sorted on"
                where = f"{spec.field}.column"
                raise APIError(400, "column_masked", f"{where}: {message}", {"fields": {where: [message]}})
            order.append(sa_col(spec.column).desc() if spec.dir == "desc" else sa_col(spec.column).asc())
    except APIError as refusal:
        return template(None, refusal)

    statement = sa.select(*selected).select_from(from_clause).where(*conditions).order_by(*order)
    statement = statement.limit(sa.bindparam(LIMIT_BIND, type_=sa.Integer()))
    statement = statement.offset(sa.bindparam(OFFSET_BIND, type_=sa.Integer()))
    return template(statement, None)


def plan_tables(plan: ResolvedQuery) -> dict[str, sa.Table]:
    """The plan's tables as SQLAlchemy Tables, by table key; build once per plan and pass to `compile_query`."""
    return {t.key: _sa_table(t) for t in plan.tables}


def _sa_table(ref: TableRef) -> sa.Table:
    # Built from the reflected columns only: no identifier from the config ever reaches SQL text.
    cols = [sa.Column(name, sa_type_for(logical)) for name, logical in ref.columns.items()]
    return sa.Table(ref.table, sa.MetaData(), *cols, schema=ref.schema)


def _fixed_binds(values: list, col: sa.ColumnElement) -> list[sa.BindParameter]:
    # One bind per value (never an expanding IN): the template's SQL text is then the same for every call.
    return [sa.bindparam(None, value, type_=col.type) for value in values]


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
            col = sa_col(ref)
            conditions.append(col.in_(_fixed_binds(values, col)) if values else sa.false())
    return conditions


def _filter_condition(
    spec: FilterSpec, i: int, count: int | None, col: sa.ColumnElement, sqlite: bool
) -> tuple[Any, tuple[str, ...] | None]:
    """The filter's WHERE term and, for a request param, the names of the binds it reads (None for none)."""
    op = spec.op
    if op in NULL_OPS:
        return (col.is_(None) if op == "is_null" else col.is_not(None)), None
    if spec.param is None:
        value = spec.value
        binds = _fixed_binds(value if isinstance(value, list) else [value], col)
        names = None
    elif count is None:
        # A required param not sent: no value to bind, and the binder says so ("is required").
        return sa.false(), ("",)
    elif count == TOO_MANY_VALUES:
        return sa.false(), ()  # the binder refuses the list before any value is bound
    else:
        n = count if op in LIST_OPS else 2 if op == "between" else 1
        bind_type = sa.Text() if op in ("like", "ilike") else col.type
        names = tuple(f"_apiary_f{i}_{k}" for k in range(n))
        binds = [sa.bindparam(name, type_=bind_type) for name in names]
    if op == "eq":
        return col == binds[0], names
    if op == "neq":
        return col != binds[0], names
    if op == "gt":
        return col > binds[0], names
    if op == "gte":
        return col >= binds[0], names
    if op == "lt":
        return col < binds[0], names
    if op == "lte":
        return col <= binds[0], names
    if op == "in":
        return col.in_(binds), names
    if op == "not_in":
        return col.not_in(binds), names
    if op == "between":
        return col.between(binds[0], binds[1]), names
    if spec.param is None and sqlite:
        # A fixed pattern: translated once, here (a param's is translated by its binder).
        binds = _fixed_binds([like_to_glob(value if op == "like" else value.lower())], col)
    if sqlite:
        # SQLite's LIKE ignores ASCII case and has no escape character; GLOB on a translated pattern gives
        # PostgreSQL's semantics (case-sensitive like, backslash escapes) on both warehouses.
        if op == "like":
            return col.op("GLOB")(binds[0]), names
        return sa.func.lower(col).op("GLOB")(binds[0]), names
    return (col.like(binds[0]) if op == "like" else col.ilike(binds[0])), names
