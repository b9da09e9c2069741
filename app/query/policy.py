"""What one API key may see: masking level, sensitivity ceiling, allowed columns and row scope."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from app.errors import invalid
from app.query.masking import BLOCKED, SENSITIVITY_LEVELS, ColumnMasking, sensitivity_rank

MASKING_LEVELS = ("masked", "unmasked")

# Outcome of the policy for one output column.
SERVE = "value"
MASK = "mask"


@dataclass(frozen=True)
class KeyPolicy:
    """A key's view of the data. Build it with `from_key_fields` (validates) or `admin()`.

    - columns above `sensitivity_max` come back as "[BLOCKED]" (never read from the warehouse);
    - `masked`: every other column of sensitivity medium or above goes through its strategy;
      `unmasked`: values as stored;
    - a non-empty `allowed_columns` drops every other column from the output;
    - `row_scope` (column -> allowed values) is ANDed into every query; request params cannot widen it.
    """

    masking_level: str = "masked"
    allowed_columns: tuple[str, ...] = ()
    sensitivity_max: str = "medium"
    row_scope: tuple[tuple[str, tuple], ...] = ()

    @classmethod
    def admin(cls) -> KeyPolicy:
        """Sees everything as stored: unmasked with a `critical` ceiling, so nothing is blocked (Test pane dry run)."""
        return cls(masking_level="unmasked", allowed_columns=(), sensitivity_max="critical", row_scope=())

    @classmethod
    def from_key_fields(
        cls,
        masking_level: str | None = None,
        allowed_columns: list[str] | tuple[str, ...] | None = None,
        sensitivity_max: str | None = None,
        row_scope: Mapping[str, Any] | None = None,
    ) -> KeyPolicy:
        """A policy from an API key's stored fields (None = default); 422 naming the field when one is bad."""
        level = "masked" if masking_level is None else masking_level
        if level not in MASKING_LEVELS:
            raise invalid("masking_level", "must be masked or unmasked")
        ceiling = "medium" if sensitivity_max is None else sensitivity_max
        if ceiling not in SENSITIVITY_LEVELS:
            raise invalid("sensitivity_max", f"must be one of {', '.join(SENSITIVITY_LEVELS)}")
        columns = () if allowed_columns is None else allowed_columns
        if not isinstance(columns, (list, tuple)):
            raise invalid("allowed_columns", "expected a list of column names")
        for i, name in enumerate(columns):
            if not isinstance(name, str) or not name:
                raise invalid(f"allowed_columns[{i}]", "expected a column name")
        return cls(level, tuple(dict.fromkeys(columns)), ceiling, _normalise_row_scope(row_scope))

    @property
    def row_scope_map(self) -> dict[str, tuple]:
        return dict(self.row_scope)

    def fingerprint(self) -> str:
        """A stable hash of everything that changes what this key sees; part of result-cache keys."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:  # computed once: the policy is immutable, and read on every cached call
        body = {
            "masking_level": self.masking_level,
            "allowed_columns": sorted(self.allowed_columns),
            "sensitivity_max": self.sensitivity_max,
            "row_scope": {col: sorted(map(repr, values)) for col, values in self.row_scope},
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]

    def is_allowed(self, *names: str) -> bool:
        """Whether a column known by any of `names` (bare, output or table.column name) is in allowed_columns."""
        return not self.allowed_columns or any(name in self.allowed_columns for name in names)

    def is_blocked(self, masking: ColumnMasking) -> bool:
        return sensitivity_rank(masking.sensitivity) > sensitivity_rank(self.sensitivity_max)

    def action_for(self, masking: ColumnMasking) -> str:
        """How an allowed column is served: "value", "mask" (through masking.strategy) or "[BLOCKED]"."""
        if self.is_blocked(masking):
            return BLOCKED
        if self.masking_level == "masked" and sensitivity_rank(masking.sensitivity) >= sensitivity_rank("medium"):
            return MASK if masking.strategy != "none" else SERVE
        return SERVE


def _normalise_row_scope(row_scope: Mapping[str, Any] | None) -> tuple[tuple[str, tuple], ...]:
    if row_scope is None:
        return ()
    if not isinstance(row_scope, Mapping):
        raise invalid("row_scope", "expected an object of column -> list of allowed values")
    out = []
    for column in sorted(row_scope):
        field = f"row_scope.{column}"
        if not isinstance(column, str) or not column:
            raise invalid("row_scope", "column names must be non-empty strings")
        values = row_scope[column]
        if not isinstance(values, (list, tuple)):
            values = [values]
        if not values:
            raise invalid(field, "expected at least one allowed value")
        for value in values:
            if value is None or not isinstance(value, (str, int, float, bool)):
                raise invalid(field, "allowed values must be strings, numbers or booleans")
        out.append((column, tuple(dict.fromkeys(values))))
    return tuple(out)
