"""Checking a query config against the real warehouse tables and resolving it into a plan the compiler uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from app.errors import APIError, invalid
from app.query.coercion import CoercionError, check_like_pattern, coerce_json
from app.query.plan import ColumnRef, FilterSpec, JoinSpec, OrderSpec, OutputSpec, ResolvedQuery, TableRef
from app.warehouse.engine import TableNotFound, check_identifier, list_columns

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "between", "like", "ilike", "is_null", "is_not_null")
LIST_OPS = ("in", "not_in")
NULL_OPS = ("is_null", "is_not_null")
TEXT_OPS = ("like", "ilike")
JOIN_TYPES = ("inner", "left")
DIRECTIONS = ("asc", "desc")
# Request parameters the engine reads itself; a filter may not claim them.
RESERVED_PARAMS = ("limit", "offset")
DEFAULT_LIMIT, MAX_LIMIT, LIMIT_CEILING = 100, 1000, 10_000
MAX_LIST_VALUES = 1000

_QUERY_KEYS = {"source", "columns", "filters", "joins", "order_by", "pagination"}
_FILTER_KEYS = {"column", "op", "param", "value", "required"}
# `alias` names the table in `alias.column` and in clashing output names; `dataset` is the logical name the catalog
# records when it rewrites a dataset to its warehouse table, so messages never show the physical table.
_SOURCE_KEYS = {"schema", "table", "alias", "dataset"}
_JOIN_KEYS = {"type", "schema", "table", "alias", "dataset", "on", "columns"}


def validate_query_config(config: dict, engine: Engine, field_prefix: str = "query") -> None:
    """Raise 422 naming the field (`<prefix>.filters[1].column` ...) unless `config` is a valid query config."""
    resolve_query_config(config, engine, field_prefix)


def resolve_query_config(config: Any, engine: Engine, field_prefix: str = "query") -> ResolvedQuery:
    """Validate `config` against the real tables and resolve every identifier to a reflected column."""
    p = field_prefix
    _require_object(config, p, _QUERY_KEYS)
    source_cfg = config.get("source")
    _require_object(source_cfg, f"{p}.source", _SOURCE_KEYS)
    source = _table(engine, source_cfg, f"{p}.source")

    tables = [source]
    joins = [_join(engine, j, tables, f"{p}.joins[{i}]") for i, j in enumerate(_list(config, "joins", p))]

    outputs = _source_outputs(config.get("columns"), source, f"{p}.columns")
    for i, (join, join_cfg) in enumerate(zip(joins, config.get("joins") or [], strict=True)):
        outputs += _join_outputs(join_cfg.get("columns"), join, outputs, f"{p}.joins[{i}].columns")

    filters = tuple(_filter(f, tables, f"{p}.filters[{i}]") for i, f in enumerate(_list(config, "filters", p)))
    order_by = tuple(_order(o, tables, f"{p}.order_by[{i}]") for i, o in enumerate(_list(config, "order_by", p)))
    default_limit, max_limit = _pagination(config.get("pagination"), f"{p}.pagination")
    return ResolvedQuery(source, tuple(joins), tuple(outputs), filters, order_by, default_limit, max_limit)


def _short(value: Any) -> str:
    # Error messages echo what was sent, but never a 100 kB string.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require_object(value: Any, where: str, keys: set[str]) -> None:
    if not isinstance(value, dict):
        raise invalid(where, "expected an object")
    for key in value:
        if key not in keys:
            raise invalid(f"{where}.{key}" if isinstance(key, str) else where, f"unknown field {_short(key)}")


def _list(config: dict, key: str, prefix: str) -> list:
    value = config.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(f"{prefix}.{key}", "expected a list")
    return value


def _table(engine: Engine, cfg: dict, where: str) -> TableRef:
    schema, table = cfg.get("schema"), cfg.get("table")
    for name, value in (("schema", schema), ("table", table)):
        try:
            check_identifier(value)
        except ValueError:
            raise invalid(f"{where}.{name}", f"{_short(value)} is not a valid {name} name") from None
    dataset = cfg.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or dataset.count(".") != 1):
        raise invalid(f"{where}.dataset", "expected a dataset name schema.table")
    alias = cfg.get("alias")
    if alias is not None:
        try:
            check_identifier(alias)
        except ValueError:
            raise invalid(f"{where}.alias", f"{_short(alias)} is not a valid alias (a lower-case identifier)") from None
    display = dataset or f"{schema}.{table}"
    try:
        columns = list_columns(engine, schema, table)
    except TableNotFound:
        raise invalid(f"{where}.table", f"table {display} does not exist") from None
    key = alias or (dataset.split(".", 1)[1] if dataset else table)
    return TableRef(key, schema, table, {c.name: c.type for c in columns}, display)


def _column(ref: Any, tables: list[TableRef], where: str) -> ColumnRef:
    """`col` (the source table first, then the one joined table that has it) or `table.col`."""
    if not isinstance(ref, str) or not ref:
        raise invalid(where, "expected a column name")
    if "." in ref:
        key, name = ref.split(".", 1)
        for table in tables:
            if table.key == key:
                if name in table.columns:
                    return ColumnRef(table, name)
                raise invalid(where, f"unknown column {_short(name)} in {table.label}")
        raise invalid(where, f"unknown table {_short(key)}; qualify columns with a table of this query")
    if ref in tables[0].columns:
        return ColumnRef(tables[0], ref)
    matches = [t for t in tables[1:] if ref in t.columns]
    if len(matches) > 1:
        raise invalid(where, f"column {_short(ref)} is in several joined tables; write it as table.column")
    if not matches:
        raise invalid(where, f"unknown column {_short(ref)} in {tables[0].label}")
    return ColumnRef(matches[0], ref)


def _join(engine: Engine, cfg: Any, tables: list[TableRef], where: str) -> JoinSpec:
    _require_object(cfg, where, _JOIN_KEYS)
    join_type = cfg.get("type", "inner")
    if join_type not in JOIN_TYPES:
        raise invalid(f"{where}.type", "must be inner or left")
    table = _table(engine, cfg, where)
    if any(t.key == table.key for t in tables):
        field = f"{where}.alias" if cfg.get("alias") is not None else f"{where}.table"
        raise invalid(field, f"{table.key} is already used in this query; give this join an alias")
    on_cfg = cfg.get("on")
    if not isinstance(on_cfg, list) or not on_cfg:
        raise invalid(f"{where}.on", "expected a non-empty list of {left, right} column pairs")
    pairs = []
    for i, pair in enumerate(on_cfg):
        pair_where = f"{where}.on[{i}]"
        _require_object(pair, pair_where, {"left", "right"})
        left = _column(pair.get("left"), tables, f"{pair_where}.left")
        right_name = pair.get("right")
        if isinstance(right_name, str) and right_name.startswith(f"{table.key}."):
            right_name = right_name[len(table.key) + 1 :]
        if not isinstance(right_name, str) or right_name not in table.columns:
            raise invalid(f"{pair_where}.right", f"unknown column {_short(right_name)} in {table.label}")
        pairs.append((left, ColumnRef(table, right_name)))
    tables.append(table)
    return JoinSpec(where, join_type, table, tuple(pairs))


def _source_outputs(columns: Any, source: TableRef, where: str) -> list[OutputSpec]:
    if columns is None:
        return [OutputSpec(name, ColumnRef(source, name)) for name in source.columns]
    if not isinstance(columns, list) or not columns:
        raise invalid(where, "expected a non-empty list of column names (leave it out for all columns)")
    outputs: list[OutputSpec] = []
    for i, name in enumerate(columns):
        if not isinstance(name, str) or name not in source.columns:
            raise invalid(f"{where}[{i}]", f"unknown column {_short(name)} in {source.label}")
        if any(o.name == name for o in outputs):
            raise invalid(f"{where}[{i}]", f"column {name} is listed twice")
        outputs.append(OutputSpec(name, ColumnRef(source, name)))
    return outputs


def _join_outputs(columns: Any, join: JoinSpec, taken: list[OutputSpec], where: str) -> list[OutputSpec]:
    """Joined columns come back under their own name, or `<key>__column` when that name is already taken (the key
    is the join's alias or its dataset's table name, never the physical warehouse table)."""
    table = join.table
    if columns is None:
        # The join keys repeat the left side's values, so they are left out unless listed.
        on_right = {right.name for _, right in join.on}
        names = [(None, n) for n in table.columns if n not in on_right]
    elif isinstance(columns, list):
        names = list(enumerate(columns))
    else:
        raise invalid(where, "expected a list of column names")
    used = {o.name for o in taken}
    outputs = []
    for i, name in names:
        item = where if i is None else f"{where}[{i}]"
        if not isinstance(name, str) or name not in table.columns:
            raise invalid(item, f"unknown column {_short(name)} in {table.label}")
        label = name if name not in used else f"{table.key}__{name}"
        if label in used:
            raise invalid(item, f"output column {label} would appear twice")
        used.add(label)
        outputs.append(OutputSpec(label, ColumnRef(table, name)))
    return outputs


def _filter(cfg: Any, tables: list[TableRef], where: str) -> FilterSpec:
    _require_object(cfg, where, _FILTER_KEYS)
    column = _column(cfg.get("column"), tables, f"{where}.column")
    op = cfg.get("op")
    if op not in OPS:
        raise invalid(f"{where}.op", f"unknown operator {_short(op)}; expected one of {', '.join(OPS)}")
    if op in TEXT_OPS and column.type != "text":
        raise invalid(f"{where}.op", f"{op} needs a text column; {column.name} is {column.type}")
    required = cfg.get("required", False)
    if not isinstance(required, bool):
        raise invalid(f"{where}.required", "expected true or false")
    param, has_value = cfg.get("param"), "value" in cfg
    if op in NULL_OPS:
        if param is not None or has_value:
            raise invalid(f"{where}.{'param' if param is not None else 'value'}", f"{op} takes neither param nor value")
        return FilterSpec(where, column, op, None, None, False)
    if (param is None) == (not has_value):
        raise invalid(where, "a filter needs exactly one of param (from the request) or value (fixed)")
    if param is not None:
        if not isinstance(param, str) or not param.strip():
            raise invalid(f"{where}.param", "expected a request parameter name")
        if param in RESERVED_PARAMS:
            raise invalid(f"{where}.param", f"{param} is reserved for pagination")
        return FilterSpec(where, column, op, param, None, required)
    return FilterSpec(where, column, op, None, _fixed_value(cfg["value"], op, column, f"{where}.value"), required)


def _fixed_value(value: Any, op: str, column: ColumnRef, where: str) -> Any:
    try:
        if op in LIST_OPS:
            if not isinstance(value, list) or not value:
                raise invalid(where, f"{op} needs a non-empty list of values")
            if len(value) > MAX_LIST_VALUES:
                raise invalid(where, f"at most {MAX_LIST_VALUES} values")
            return [coerce_json(v, column.type) for v in value]
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise invalid(where, "between needs a list of two values [low, high]")
            return [coerce_json(v, column.type) for v in value]
        value = coerce_json(value, column.type)
        return check_like_pattern(value) if op in TEXT_OPS else value
    except CoercionError as exc:
        raise invalid(where, f"{exc} for column {column.name}") from None


def _order(cfg: Any, tables: list[TableRef], where: str) -> OrderSpec:
    _require_object(cfg, where, {"column", "dir"})
    column = _column(cfg.get("column"), tables, f"{where}.column")
    direction = cfg.get("dir", "asc")
    if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
        raise invalid(f"{where}.dir", "must be asc or desc")
    return OrderSpec(where, column, direction.lower())


def _pagination(cfg: Any, where: str) -> tuple[int, int]:
    if cfg is None:
        return DEFAULT_LIMIT, MAX_LIMIT
    _require_object(cfg, where, {"default_limit", "max_limit"})
    max_limit = cfg.get("max_limit", MAX_LIMIT)
    if not _is_int(max_limit) or not 1 <= max_limit <= LIMIT_CEILING:
        raise invalid(f"{where}.max_limit", f"expected an integer from 1 to {LIMIT_CEILING}")
    default_limit = cfg.get("default_limit", min(DEFAULT_LIMIT, max_limit))
    if not _is_int(default_limit) or default_limit < 1:
        raise invalid(f"{where}.default_limit", "expected a positive integer")
    if default_limit > max_limit:
        raise invalid(f"{where}.default_limit", f"must not exceed max_limit ({max_limit})")
    return default_limit, max_limit


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def column_not_permitted(where: str, column: ColumnRef) -> APIError:
    """A 400 for using a column the key may not see; the same answer whether it is hidden or blocked."""
    message = f"column {column.name} is not available to this key"
    return APIError(400, "column_not_permitted", f"{where}: {message}", {"fields": {where: [message]}})
