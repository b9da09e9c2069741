"""Warehouse fixtures: a SQLite warehouse always, and PostgreSQL too when TEST_DATABASE_URL is set."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass
class Warehouse:
    engine: Engine
    schema: str  # where the test's tables go: unique per run on PostgreSQL so parallel runs never collide

    def rows(self, table: str, order_by: str | None = None) -> list[dict]:
        meta_table = sa.Table(table, sa.MetaData(), schema=self.schema, autoload_with=self.engine)
        stmt = sa.select(meta_table)
        if order_by:
            stmt = stmt.order_by(meta_table.c[order_by])
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(stmt).mappings()]


@pytest.fixture()
def warehouse(scratch_warehouse) -> Warehouse:
    return Warehouse(*scratch_warehouse)


@pytest.fixture()
def write_csv(tmp_path):
    """write_csv("a,b\\n1,2\\n") -> a path; bytes are written as they are, text as UTF-8."""
    counter = iter(range(1_000_000))

    def write(content: str | bytes, name: str | None = None) -> str:
        path = tmp_path / (name or f"upload_{next(counter)}.csv")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)

    return write
