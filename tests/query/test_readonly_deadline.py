"""Served queries run read-only and are stopped at STATEMENT_TIMEOUT_SECONDS, on SQLite and on PostgreSQL.

No stub: a query that really takes seconds is stopped by the engine's own deadline, and a write really reaches the
database, which refuses it.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.errors import APIError
from app.query import KeyPolicy, run_query
from app.warehouse.engine import (
    QueryTimeout,
    WarehouseUnavailable,
    create_warehouse_engine,
    ensure_schema,
    execute_readonly,
)
from app.warehouse.readonly import read_only_pool, run_readonly_sql

FAN_OUT = 3000  # both tables' rows share one join key: the join has FAN_OUT² rows to sort


@pytest.fixture(scope="module")
def fan_out(warehouse):
    """Two tables whose join on `k` is FAN_OUT² rows: several seconds of work without a deadline."""
    meta = sa.MetaData()
    tables = [
        sa.Table(name, meta, sa.Column("k", sa.BigInteger), sa.Column("v", sa.BigInteger), schema=warehouse.schema)
        for name in ("fan_a", "fan_b")
    ]
    meta.create_all(warehouse.engine)
    with warehouse.engine.begin() as conn:
        for table in tables:
            conn.execute(table.insert(), [{"k": 1, "v": i} for i in range(FAN_OUT)])
    yield warehouse
    meta.drop_all(warehouse.engine)


def _slow_config(warehouse) -> dict:
    return warehouse.config(
        "fan_a",
        columns=["v"],
        joins=[
            {
                "type": "inner",
                "schema": warehouse.schema,
                "table": "fan_b",
                "on": [{"left": "k", "right": "k"}],
                "columns": ["v"],
            }
        ],
        order_by=[{"column": "v", "dir": "desc"}],
        pagination={"default_limit": 1, "max_limit": 1},
    )


def test_a_slow_served_query_is_stopped_at_its_deadline(fan_out):
    started = time.monotonic()
    with pytest.raises(APIError) as err:
        run_query(fan_out.engine, _slow_config(fan_out), {}, KeyPolicy.admin(), fan_out.masking(), timeout_s=0.2)
    elapsed = time.monotonic() - started
    assert (err.value.status, err.value.code) == (504, "query_timeout")
    assert elapsed < 1.5, f"stopped after {elapsed:.2f} s, deadline 0.2 s"
    # The connection goes back to the pool usable, with no deadline left behind for the next query.
    assert fan_out.run(fan_out.config(), {})["count"] > 0


def test_a_recursive_query_is_stopped_at_its_deadline(warehouse):
    endless = sa.text(
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"
    )
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        execute_readonly(warehouse.engine, endless, 0.3)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {t} (customer_key, name) VALUES (99, 'intruder')",
        "UPDATE {t} SET name = 'changed'",
        "DELETE FROM {t}",
    ],
)
def test_a_write_through_the_served_path_is_refused(warehouse, statement):
    before = warehouse.row_counts()
    target = f"{warehouse.schema}.customers"
    # The database itself refuses it; the served path answers that as the platform's fault (503), never as rows.
    with pytest.raises((sa.exc.DBAPIError, WarehouseUnavailable)) as err:
        execute_readonly(warehouse.engine, sa.text(statement.format(t=target)), 5)
    refused = err.value if isinstance(err.value, sa.exc.DBAPIError) else err.value.__cause__
    assert isinstance(refused, sa.exc.DBAPIError), err.value
    message = str(refused.orig).lower()
    assert "read-only" in message or "readonly" in message, message
    assert warehouse.row_counts() == before
    assert [row["name"] for row in warehouse.run(warehouse.config(columns=["name"]))["rows"]] == [
        "Alice Smith",
        "Bob Jones",
        "Carol White",
        "Dan Brown",
        "Eve O'Neil",
    ]


@pytest.fixture
def one_connection(warehouse):
    """An engine on the same warehouse whose pool holds one connection: each statement reuses the one before's."""
    url = warehouse.engine.url.render_as_string(hide_password=False)
    if warehouse.backend == "sqlite":
        engine = create_warehouse_engine(url, warehouse.engine.info["data_dir"], pool_size=1)
    else:
        engine = create_warehouse_engine(url, pool_size=1)
    scratch = sa.Table("scratch", sa.MetaData(), sa.Column("a", sa.BigInteger), schema=warehouse.schema)
    scratch.create(engine)
    yield engine, scratch
    scratch.drop(engine)
    engine.dispose()


def _no_args(warehouse):
    return () if warehouse.backend == "sqlite" else {}


def _assert_left_read_write_and_transactional(engine, scratch) -> None:
    """The pooled connection a fast-path query used is as SQLAlchemy left it: writable, and a rolled back write is
    gone (a connection left read-only, or autocommitting, would fail either check)."""
    with engine.connect() as conn:
        conn.execute(scratch.insert(), [{"a": 1}])
        conn.rollback()
    with engine.begin() as conn:
        conn.execute(scratch.insert(), [{"a": 2}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(scratch.c.a)).scalars().all() == [2]
        conn.execute(scratch.delete())
        conn.commit()


def test_the_fast_path_stops_a_recursive_query_at_its_deadline(warehouse, one_connection):
    engine, scratch = one_connection
    endless = (
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"
    )
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run_readonly_sql(engine, endless, _no_args(warehouse), 0.3)
    assert time.monotonic() - started < 2
    _assert_left_read_write_and_transactional(engine, scratch)
    # No deadline left behind: the next query runs to its end.
    description, rows = run_readonly_sql(engine, "SELECT 1 AS one", _no_args(warehouse), 5)
    assert (description[0][0], rows) == ("one", [(1,)])


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {t} (customer_key, name) VALUES (99, 'intruder')",
        "UPDATE {t} SET name = 'changed'",
        "DELETE FROM {t}",
    ],
)
def test_a_write_through_the_fast_path_is_refused(warehouse, one_connection, statement):
    engine, scratch = one_connection
    before = warehouse.row_counts()
    with pytest.raises(WarehouseUnavailable) as err:
        run_readonly_sql(engine, statement.format(t=f"{warehouse.schema}.customers"), _no_args(warehouse), 5)
    message = str(err.value.__cause__).lower()
    assert "read-only" in message or "readonly" in message, message
    assert warehouse.row_counts() == before
    _assert_left_read_write_and_transactional(engine, scratch)


def _count_of(table: sa.Table, engine) -> str:
    return str(sa.select(sa.func.count()).select_from(table).compile(engine))


@pytest.fixture
def sqlite_scratch(tmp_path):
    """(engine, table) of a SQLite warehouse of this test alone, one connection in its pool, and an empty table
    `marts.scratch`: how SQLite's fast path holds its connections, whatever backend the suite runs against."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'main.db'}", str(tmp_path / "schemas"), pool_size=1)
    ensure_schema(engine, "marts")
    scratch = sa.Table("scratch", sa.MetaData(), sa.Column("a", sa.BigInteger), schema="marts")
    scratch.create(engine)
    yield engine, scratch
    engine.dispose()


def test_on_sqlite_the_fast_path_reads_through_read_only_connections_of_its_own(sqlite_scratch):
    """Served queries never switch a connection of the engine's pool (the one uploads write through) to read-only and
    back: they have a pool of their own, read-only from the moment each connection opens. (PostgreSQL opens a READ
    ONLY transaction in the query's own round trip instead: see the write tests above.)"""
    engine, scratch = sqlite_scratch
    run_readonly_sql(engine, _count_of(scratch, engine), (), 5)
    pool = read_only_pool(engine)
    assert pool is not engine and pool is read_only_pool(engine), "one read-only pool per engine"
    assert pool.pool.checkedin() == 1 and engine.pool.checkedout() == 0
    fairy = pool.raw_connection()
    try:
        assert fairy.dbapi_connection.execute("PRAGMA query_only").fetchone() == (1,)
    finally:
        fairy.close()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 0
    _assert_left_read_write_and_transactional(engine, scratch)


def test_on_sqlite_a_served_query_reads_what_was_committed_after_its_connection_opened(sqlite_scratch):
    """No read snapshot outlives a served query: rows written since (an upload, another process) are read at once."""
    engine, scratch = sqlite_scratch
    count = _count_of(scratch, engine)
    assert run_readonly_sql(engine, count, (), 5)[1] == [(0,)]
    with engine.begin() as conn:
        conn.execute(scratch.insert(), [{"a": 7}, {"a": 8}])
    assert run_readonly_sql(engine, count, (), 5)[1] == [(2,)]
    with engine.begin() as conn:
        conn.execute(scratch.delete())
    assert run_readonly_sql(engine, count, (), 5)[1] == [(0,)]


def test_on_sqlite_disposing_the_engine_closes_its_read_only_pool(sqlite_scratch):
    engine, _scratch = sqlite_scratch
    run_readonly_sql(engine, "SELECT 1", (), 5)
    pool = read_only_pool(engine)
    assert pool.pool.checkedin() == 1
    engine.dispose()
    assert pool.pool.checkedin() == 0


def test_on_sqlite_a_query_failing_mid_read_leaves_no_snapshot_behind(sqlite_scratch):
    """A value the driver cannot decode fails the fetch after the statement began reading. The statement is ended
    with the query, even while its error is still held (a log handler, an error tracker): the connection goes back to
    the pool reading current data, and writers are not kept waiting."""
    engine, scratch = sqlite_scratch
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE marts.undecodable (t TEXT)")
        conn.exec_driver_sql("INSERT INTO marts.undecodable VALUES ('ok'), (CAST(x'ff' AS TEXT))")
    with pytest.raises(WarehouseUnavailable) as failed:
        run_readonly_sql(engine, "SELECT t FROM marts.undecodable", (), 5)
    assert "utf-8" in str(failed.value.__cause__).lower()
    with engine.begin() as conn:
        conn.execute(scratch.insert(), [{"a": 1}])
    assert run_readonly_sql(engine, _count_of(scratch, engine), (), 5)[1] == [(1,)], "a snapshot from before the write"


def test_on_sqlite_a_warehouse_that_cannot_be_opened_is_the_platforms_fault(tmp_path):
    """The fast path's own pool opening a connection fails with the driver's error: a 503, never a 500."""
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'gone' / 'main.db'}", str(tmp_path / "schemas"))
    try:
        with pytest.raises(WarehouseUnavailable):
            run_readonly_sql(engine, "SELECT 1", (), 5)
    finally:
        engine.dispose()


def test_on_sqlite_a_served_query_never_waits_for_a_pooled_connection(sqlite_scratch):
    """However many threads serve at once (gunicorn's --threads is the operator's), a served query gets a connection
    at once: a wait for one would not count against its deadline, and a pool exhausted for 30 s would be a 500."""
    engine, scratch = sqlite_scratch  # a pool of one connection
    pool = read_only_pool(engine)
    held = [pool.raw_connection() for _ in range(8)]  # eight other threads' queries in flight
    try:
        started = time.monotonic()
        assert run_readonly_sql(engine, _count_of(scratch, engine), (), 5)[1] == [(0,)]
        assert time.monotonic() - started < 1
    finally:
        for fairy in held:
            fairy.close()
    assert pool.pool.checkedin() == 1, "connections beyond the pool's size are closed, not kept"
