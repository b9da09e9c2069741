"""Running a query's precompiled SQL read-only on a pooled DBAPI connection, with the same guarantees as
`execute_readonly` (read-only, the statement deadline -> QueryTimeout, platform faults -> WarehouseUnavailable)
but without SQLAlchemy's per-statement work: the serving fast path.

On SQLite the fast path has a pool of its own beside the warehouse engine's: connections to the same files opened
read-only once (`PRAGMA query_only`), so a served query is one statement, with no read-only mode switched on and off
around it and no transaction opened and closed for it (one SELECT reads one snapshot on its own). The engine's own
pool, which uploads write through, never holds a read-only connection."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.warehouse.engine import (
    SQLITE_BUSY_TIMEOUT,
    SQLITE_CONNECT_ARGS,
    QueryTimeout,
    WarehouseUnavailable,
    _attach_schemas,
    is_sqlite,
)

log = logging.getLogger(__name__)

_READ_ONLY_POOL = "read_only_pool"  # the SQLite engine's `info` key of its fast-path engine
_pools_lock = threading.Lock()


def run_readonly_sql(engine: Engine, sql: str, args: Any, timeout_s: float) -> tuple[Any, list[tuple]]:
    """(cursor description, rows) of one SELECT in the DBAPI's paramstyle; QueryTimeout past the deadline."""
    dbapi = engine.dialect.dbapi
    try:
        fairy = (read_only_pool(engine) if is_sqlite(engine) else engine).raw_connection()
    except (sa.exc.DBAPIError, dbapi.Error) as exc:  # the pool raises the driver's own error when a connect fails
        orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        if _is_platform_fault(dbapi, orig):
            raise _unavailable(orig) from exc
        raise
    try:
        if is_sqlite(engine):
            return _run_sqlite(fairy, engine, sql, args, timeout_s)
        return _run_postgresql(fairy, engine, sql, args, timeout_s)
    finally:
        fairy.close()  # back to the pool (or gone, when invalidated)


def read_only_pool(engine: Engine) -> Engine:
    """The fast path's engine for a SQLite warehouse `engine`: the same database and schema files, its own pool of
    connections that are read-only from the moment they open. Made once per engine and disposed with it."""
    pool = engine.info.get(_READ_ONLY_POOL)
    if pool is not None:
        return pool
    with _pools_lock:
        pool = engine.info.get(_READ_ONLY_POOL)
        if pool is None:
            pool = engine.info[_READ_ONLY_POOL] = _read_only_engine(engine)
            sa.event.listen(engine, "engine_disposed", lambda _engine: pool.dispose())
    return pool


def _read_only_engine(engine: Engine) -> Engine:
    # As many idle connections as the engine keeps, and never a wait for one (max_overflow=-1): a thread holds one
    # at a time, so there are never more than the process's serving threads, and a wait would not count against the
    # query's deadline (a pool exhausted for pool_timeout would even be a 500).
    read_only = sa.create_engine(
        engine.url,
        pool_size=engine.pool.size(),
        max_overflow=-1,
        poolclass=sa.pool.QueuePool,
        connect_args=SQLITE_CONNECT_ARGS,
    )

    @sa.event.listens_for(read_only, "connect")
    def _open_read_only(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # no implicit transactions: each SELECT reads its own snapshot
        dbapi_conn.execute(SQLITE_BUSY_TIMEOUT)
        dbapi_conn.execute("PRAGMA query_only = ON")  # for the connection's life, attached schema files included

    return read_only


def _run_sqlite(fairy, engine: Engine, sql: str, args: Any, timeout_s: float):
    raw = fairy.dbapi_connection
    dbapi = engine.dialect.dbapi
    deadline = time.monotonic() + timeout_s
    try:
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        _attach_schemas(raw, fairy.info, engine.info["data_dir"], sql)
        cursor = raw.execute(sql, args)
        try:
            return cursor.description, cursor.fetchall()
        finally:
            # Ends the statement even when the fetch fails half way (a value the driver cannot decode): left active,
            # it would hold its read snapshot for as long as its error is kept, on a connection back in the pool.
            cursor.close()
    except dbapi.Error as exc:
        if "interrupted" in str(exc):
            raise QueryTimeout(timeout_s) from None
        raise _translated(engine, sql, args, exc) from exc
    finally:
        try:
            raw.set_progress_handler(None, 0)
        except dbapi.Error:
            fairy.invalidate()  # a connection that cannot drop its deadline is never reused


def _run_postgresql(fairy, engine: Engine, sql: str, args: Any, timeout_s: float):
    raw = fairy.dbapi_connection
    dbapi = engine.dialect.dbapi
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE  # lazy: SQLite installations never load it

    cursor = None
    try:
        if raw.info.transaction_status != TRANSACTION_STATUS_IDLE:  # close what the pool's ping may have opened
            raw.rollback()
        # One round trip opens the read-only transaction, sets its deadline and runs the query (each statement of
        # the string runs under the timeout set before it), one more commits it.
        raw.autocommit = True
        cursor = raw.cursor()
        cursor.execute(f"BEGIN READ ONLY; SET LOCAL statement_timeout = {int(timeout_s * 1000)}; {sql}", args)
        rows = cursor.fetchall()
        description = cursor.description
        cursor.execute("COMMIT")
        return description, rows
    except dbapi.Error as exc:
        _roll_back(fairy, raw, dbapi)
        if "statement timeout" in str(exc):
            raise QueryTimeout(timeout_s) from None
        raise _translated(engine, sql, args, exc) from exc
    finally:
        if cursor is not None:
            cursor.close()
        if fairy.dbapi_connection is not None:
            try:
                raw.autocommit = False  # as SQLAlchemy expects its pooled connections
            except dbapi.Error:
                fairy.invalidate()


def _roll_back(fairy, raw, dbapi) -> None:
    try:
        with raw.cursor() as cursor:
            cursor.execute("ROLLBACK")  # ends the failed transaction (only a warning when none is open)
    except dbapi.Error:
        fairy.invalidate()  # lost or broken: a new connection replaces it


def _is_platform_fault(dbapi, exc: BaseException) -> bool:
    """As `is_platform_fault`, for a DBAPI error: I/O, locks, lost connections, limits, a broken schema file."""
    faults = (dbapi.OperationalError, dbapi.InternalError, dbapi.InterfaceError)
    return isinstance(exc, faults) or type(exc) is dbapi.DatabaseError


def _translated(engine: Engine, sql: str, args: Any, exc: Exception) -> Exception:
    """503 for the platform's faults, else the SQLAlchemy error `execute_readonly` would raise (a bug: a 500)."""
    dbapi = engine.dialect.dbapi
    if _is_platform_fault(dbapi, exc):
        return _unavailable(exc)
    return sa.exc.DBAPIError.instance(sql, args, exc, dbapi.Error, dialect=engine.dialect)


def _unavailable(exc: BaseException) -> WarehouseUnavailable:
    log.error("warehouse error (answered 503): %s", exc)  # the raw error is for operators, never the caller
    return WarehouseUnavailable()
