"""A SQLite warehouse attaches a schema file when a statement names it, so any number of schema files works."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.warehouse.engine import (
    WarehouseUnavailable,
    create_warehouse_engine,
    ensure_schema,
    execute_readonly,
    list_columns,
    table_exists,
)


@pytest.fixture()
def sqlite_engine(tmp_path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'main.db'}", str(tmp_path / "schemas"), pool_size=1)
    yield engine
    engine.dispose()


def _table(schema: str) -> sa.Table:
    return sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("schema", sa.Text), schema=schema)


def test_one_connection_reads_more_schemas_than_sqlite_attaches(sqlite_engine):
    schemas = [f"s{i}" for i in range(14)]  # SQLite attaches at most 10 databases to a connection
    for i, schema in enumerate(schemas):
        ensure_schema(sqlite_engine, schema)
        assert not table_exists(sqlite_engine, schema, "t")
        with sqlite_engine.begin() as conn:
            _table(schema).create(conn)
            conn.execute(_table(schema).insert(), [{"id": i, "schema": schema}])
    for _round in range(2):  # and back again: detached schemas are attached anew
        for i, schema in enumerate(schemas):
            assert [c.name for c in list_columns(sqlite_engine, schema, "t")] == ["id", "schema"]
            rows = execute_readonly(sqlite_engine, sa.select(_table(schema)), 5)
            assert rows == [{"id": i, "schema": schema}]
    with sqlite_engine.connect() as conn:
        attached = [row[1] for row in conn.exec_driver_sql("PRAGMA database_list")]
    assert len(attached) <= 11 and "s13" in attached  # main + at most 10, the last one read among them


def test_a_statement_naming_more_schemas_than_sqlite_attaches_is_a_503(sqlite_engine):
    schemas = [f"j{i}" for i in range(11)]
    tables = []
    for schema in schemas:
        ensure_schema(sqlite_engine, schema)
        with sqlite_engine.begin() as conn:
            _table(schema).create(conn)
        tables.append(_table(schema))
    stmt = sa.select(*[t.c.id for t in tables])
    for left, right in zip(tables, tables[1:], strict=False):
        stmt = stmt.where(left.c.id == right.c.id)
    with pytest.raises(WarehouseUnavailable) as caught:
        execute_readonly(sqlite_engine, stmt, 5)
    assert caught.value.status == 503 and caught.value.code == "warehouse_unavailable"
    assert "11 warehouse schemas" in caught.value.message
    # The connection is still usable afterwards.
    assert execute_readonly(sqlite_engine, sa.select(tables[0]), 5) == []
