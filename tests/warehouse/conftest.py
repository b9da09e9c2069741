"""Warehouse fixtures: a SQLite warehouse always, and PostgreSQL too when TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.warehouse.engine import create_warehouse_engine

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


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


@pytest.fixture(params=BACKENDS)
def warehouse(request, tmp_path):
    if request.param == "sqlite":
        engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'main.db'}", str(tmp_path / "schemas"))
        yield Warehouse(engine, "uploads")
        engine.dispose()
        return
    engine = create_warehouse_engine(os.environ["TEST_DATABASE_URL"])
    schema = f"t_load_{uuid.uuid4().hex[:12]}"
    yield Warehouse(engine, schema)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


@pytest.fixture()
def write_csv(tmp_path):
    """write_csv("a,b\\n1,2\\n") -> a path; bytes are written as they are, text as UTF-8."""
    counter = iter(range(1_000_000))

    def write(content: str | bytes, name: str | None = None) -> str:
        path = tmp_path / (name or f"upload_{next(counter)}.csv")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)

    return write
