"""Query templates kept per prepared query: one per (key policy, shape), with its SQL compiled once per dialect."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Dialect

from app.query.compiler import LIMIT_BIND, OFFSET_BIND, QueryTemplate
from app.query.policy import KeyPolicy

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
