"""The resolved form of a query config: every identifier bound to a reflected table and column."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableRef:
    """One table of the query; `key` qualifies columns as `key.column` and prefixes clashing output names.

    `key` is the config's `alias`, else the dataset's table name, else the table name; `display` is how messages
    name the table (the dataset name users wrote, never the physical warehouse table behind it).
    """

    key: str
    schema: str
    table: str
    columns: dict[str, str] = field(hash=False, compare=False)  # name -> logical type, in table order
    display: str = field(default="", hash=False, compare=False)

    @property
    def label(self) -> str:
        return self.display or f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class ColumnRef:
    table: TableRef
    name: str

    @property
    def type(self) -> str:
        return self.table.columns[self.name]


@dataclass(frozen=True)
class OutputSpec:
    name: str  # the key in each served row
    column: ColumnRef


@dataclass(frozen=True)
class FilterSpec:
    field: str  # e.g. query.filters[1]
    column: ColumnRef
    op: str
    param: str | None
    value: Any  # coerced fixed value (a list for in/not_in/between) when param is None
    required: bool


@dataclass(frozen=True)
class JoinSpec:
    field: str
    type: str
    table: TableRef
    on: tuple[tuple[ColumnRef, ColumnRef], ...]


@dataclass(frozen=True)
class OrderSpec:
    field: str
    column: ColumnRef
    dir: str


@dataclass(frozen=True)
class ResolvedQuery:
    source: TableRef
    joins: tuple[JoinSpec, ...]
    outputs: tuple[OutputSpec, ...]
    filters: tuple[FilterSpec, ...]
    order_by: tuple[OrderSpec, ...]
    default_limit: int
    max_limit: int

    @property
    def tables(self) -> tuple[TableRef, ...]:
        return (self.source, *(j.table for j in self.joins))
