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
from app.warehouse.readonly import run_readonly_sql


def _run_fast(engine, stmt) -> list[dict]:
    """The served queries' fast path: the statement's SQL run on the pooled DBAPI connection."""
    compiled = stmt.compile(dialect=engine.dialect)
    args = tuple(compiled.params[name] for name in compiled.positiontup)
    description, rows = run_readonly_sql(engine, compiled.string, args, 5)
    return [dict(zip([d[0] for d in description], row, strict=True)) for row in rows]


def _run_sqlalchemy(engine, stmt) -> list[dict]:
    return execute_readonly(engine, stmt, 5)


RUNNERS = pytest.mark.parametrize("run", [_run_sqlalchemy, _run_fast], ids=["execute_readonly", "fast_path"])


@pytest.fixture()
def sqlite_engine(tmp_path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'main.db'}", str(tmp_path / "schemas"), pool_size=1)
    yield engine
    engine.dispose()


def _table(schema: str) -> sa.Table:
    return sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("schema", sa.Text), schema=schema)


@RUNNERS
def test_one_connection_reads_more_schemas_than_sqlite_attaches(sqlite_engine, run):
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
            assert run(sqlite_engine, sa.select(_table(schema))) == [{"id": i, "schema": schema}]
    with sqlite_engine.connect() as conn:
        attached = [row[1] for row in conn.exec_driver_sql("PRAGMA database_list")]
    assert len(attached) <= 11 and "s13" in attached  # main + at most 10, the last one read among them


@RUNNERS
def test_a_statement_naming_more_schemas_than_sqlite_attaches_is_a_503(sqlite_engine, run):
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
        run(sqlite_engine, stmt)
    assert caught.value.status == 503 and caught.value.code == "warehouse_unavailable"
    assert "11 warehouse schemas" in caught.value.message
    # The connection is still usable afterwards.
    assert run(sqlite_engine, sa.select(tables[0])) == []


@RUNNERS
def test_a_schema_file_that_is_no_database_is_a_503_and_the_connection_stays_usable(sqlite_engine, run, tmp_path):
    ensure_schema(sqlite_engine, "good")
    with sqlite_engine.begin() as conn:
        _table("good").create(conn)
    (tmp_path / "schemas" / "broken.db").write_bytes(b"not a database, " * 512)
    with pytest.raises(WarehouseUnavailable) as caught:
        run(sqlite_engine, sa.select(_table("broken")))
    assert caught.value.status == 503
    assert run(sqlite_engine, sa.select(_table("good"))) == []
    with sqlite_engine.begin() as conn:  # and writable again for the loader: the read-only frame was undone
        conn.execute(_table("good").insert(), [{"id": 1, "schema": "good"}])
    assert run(sqlite_engine, sa.select(_table("good"))) == [{"id": 1, "schema": "good"}]
