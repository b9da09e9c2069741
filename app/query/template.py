"""Query templates: one shape of a query for one key policy, bound per call; kept per prepared query, with their SQL
compiled once per dialect."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from app.errors import APIError
from app.query.params import like_to_glob, page, param_error, param_value
from app.query.plan import FilterSpec, ResolvedQuery
from app.query.policy import KeyPolicy
from app.query.validation import LIST_OPS, MAX_LIST_VALUES

if TYPE_CHECKING:
    from app.query.compiler import OutputColumn

# Names of the binds a request fills; no anonymous bind SQLAlchemy makes (`region_1`, `param_1`) starts like these.
LIMIT_BIND = "_apiary_limit"
OFFSET_BIND = "_apiary_offset"
TOO_MANY_VALUES = 0  # shape of a list param past MAX_LIST_VALUES: its value is refused before any SQL is needed


@dataclass(frozen=True)
class ParamBinder:
    """One filter's request param: its raw string -> the values of the filter's binds, in `names` order."""

    spec: FilterSpec
    names: tuple[str, ...]
    sqlite: bool

    def bind(self, params: Mapping[str, Any], values: dict) -> None:
        raw = params.get(self.spec.param)
        if raw is None:
            raise param_error(self.spec.param or "", "is required")
        value = param_value(self.spec, str(raw))
        op = self.spec.op
        if op in LIST_OPS:
            # Padded to the template's size by repeating the last value: `IN (a, b, b, b)` is `IN (a, b)`.
            parts = value + value[-1:] * (len(self.names) - len(value))
        elif op == "between":
            parts = value
        elif self.sqlite and op == "like":
            parts = [like_to_glob(value)]
        elif self.sqlite and op == "ilike":
            parts = [like_to_glob(value.lower())]
        else:
            parts = [value]
        # strict: the shape counted the list's values from the same string; a mismatch is a bug, never a query.
        values.update(zip(self.names, parts, strict=True))


@dataclass(frozen=True, eq=False)
class QueryTemplate:
    """One shape of a query for one key: its statement with named binds, output columns and param binders.

    `refusal`: the error this shape raises (a hidden, blocked or masked column the key may not use, a required
    param missing, a row scope that cannot apply), after the binders before it have parsed their values, so a
    request gets the very error, in the very order, a statement built for it alone would give.
    """

    columns: tuple[OutputColumn, ...]
    binders: tuple[ParamBinder, ...]
    statement: sa.Select | None  # None when refused
    refusal: APIError | None
    default_limit: int
    max_limit: int
    sqlite: bool
    dialect_sql: dict = field(default_factory=dict, repr=False)  # dialect -> its TemplateSQL (see template_sql)

    def bind(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], int, int]:
        """({bind name: value}, limit, offset) for one request; 400 naming the param for a bad value."""
        values: dict[str, Any] = {}
        for binder in self.binders:
            binder.bind(params, values)
        if self.refusal is not None:
            refusal = self.refusal  # a fresh error per call: a raised exception carries that call's traceback
            raise APIError(refusal.status, refusal.code, refusal.message, refusal.details, refusal.headers)
        limit, offset = page(params, self.default_limit, self.max_limit)
        values[LIMIT_BIND] = limit
        values[OFFSET_BIND] = offset
        return values, limit, offset


def template_shape(plan: ResolvedQuery, params: Mapping[str, Any]) -> tuple:
    """What of `params` the statement's structure depends on: per param filter, None when its param was not sent,
    else how many values it binds (1, or for a list its count rounded up to a power of two)."""
    shape = []
    for spec in plan.filters:
        if spec.param is None:
            continue
        raw = params.get(spec.param)
        if raw is None:
            shape.append(None)
        elif spec.op in LIST_OPS:
            count = str(raw).count(",") + 1
            shape.append(_list_size(count) if count <= MAX_LIST_VALUES else TOO_MANY_VALUES)
        else:
            shape.append(1)
    return tuple(shape)


def _list_size(count: int) -> int:
    # The next power of two: lists of any length up to MAX_LIST_VALUES make at most 11 shapes, not a thousand.
    return 1 << (count - 1).bit_length()


MAX_TEMPLATES = 256  # shapes kept per prepared query; the least recently used goes first


def policy_key(policy: KeyPolicy) -> tuple:
    """Every field of `policy`, each value tagged with its type: a row scope of `1` and one of `True` or `1.0` are
    equal to Python (and hash alike) but not to the scope, so they never share a template. Built from the fields
    themselves, so a field KeyPolicy gains later is part of the key without anyone remembering to add it."""
    return tuple(_typed(getattr(policy, f.name)) for f in dataclasses.fields(policy))


def _typed(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_typed(v) for v in value)
    return (type(value), value)  # unhashable (a list, a dict): TypeError, never a key that ignores it


class TemplateCache:
    """A bounded, thread-safe LRU of query templates; lives on a PreparedQuery, so it dies with its generation."""

    def __init__(self, max_entries: int = MAX_TEMPLATES):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, QueryTemplate] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple, build: Callable[[], QueryTemplate]) -> QueryTemplate:
        with self._lock:
            template = self._entries.get(key)
            if template is not None:
                self._entries.move_to_end(key)
                return template
        # Built outside the lock (two threads may build the same shape; both get an equal template). A build that
        # fails with anything but a shape's refusal (which is a template) raises here and is not kept.
        template = build()
        with self._lock:
            self._entries[key] = template
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return template


@dataclass(frozen=True)
class TemplateSQL:
    """A template's statement compiled for one dialect: its text, and how a call's values become DBAPI params."""

    text: str
    positional: tuple[str, ...] | None  # bind names in placeholder order (qmark), None for named (pyformat)
    fixed: dict[str, Any]  # the binds the template fixed (row scope, config values), already processed
    processors: dict[str, Callable]  # per-call bind name -> the type's bind processor, where it has one
    labels: tuple[str, ...]  # the selected columns' names, in order
    _types: tuple = field(repr=False, default=())
    _dialect: Dialect | None = field(repr=False, default=None)
    _result: dict = field(repr=False, default_factory=dict)  # cursor type codes -> result processors

    def args(self, values: dict[str, Any]) -> Any:
        merged = dict(self.fixed)
        processors = self.processors
        for name, value in values.items():
            process = processors.get(name)
            merged[name] = value if process is None else process(value)
        if self.positional is None:
            return merged
        return tuple(merged[name] for name in self.positional)

    def rows(self, description, raw_rows: list) -> list[dict]:
        """The cursor's rows as dicts by label, through the result processors of the columns' types."""
        codes = tuple(d[1] for d in description or ())
        processors = self._result.get(codes)
        if processors is None:
            processors = tuple(
                t.dialect_impl(self._dialect).result_processor(self._dialect, code)
                for t, code in zip(self._types, codes, strict=True)
            )
            self._result[codes] = processors
        labels = self.labels
        if not any(processors):
            return [dict(zip(labels, row, strict=True)) for row in raw_rows]
        return [
            {
                label: value if process is None else process(value)
                for label, process, value in zip(labels, processors, row, strict=True)
            }
            for row in raw_rows
        ]


def template_sql(template: QueryTemplate, dialect: Dialect) -> TemplateSQL:
    """The template's SQL for `dialect`, compiled on first use and kept on the template."""
    sql = template.dialect_sql.get(dialect)
    if sql is None:
        sql = template.dialect_sql[dialect] = _compile(template, dialect)
    return sql


def _compile(template: QueryTemplate, dialect: Dialect) -> TemplateSQL:
    compiled = template.statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise RuntimeError("a query template has binds rendered per call; its SQL cannot be compiled once")
    if compiled.escaped_bind_names:
        raise RuntimeError("a query template's bind names need escaping")  # never: they come from identifiers
    per_call = {name for binder in template.binders for name in binder.names} | {LIMIT_BIND, OFFSET_BIND}
    fixed, processors = {}, {}
    for bind, name in compiled.bind_names.items():  # bind -> its rendered name
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name in per_call:
            if process is not None:
                processors[name] = process
        else:
            value = compiled.params[name]
            fixed[name] = value if process is None else process(value)
    selected = list(template.statement.selected_columns)
    return TemplateSQL(
        compiled.string,
        tuple(compiled.positiontup) if compiled.positiontup is not None else None,
        fixed,
        processors,
        tuple(c.name for c in selected),
        tuple(c.type for c in selected),
        dialect,
    )
