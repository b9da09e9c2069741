"""Running a query's precompiled SQL read-only on a pooled DBAPI connection, with the same guarantees as
`execute_readonly` (read-only, the statement deadline -> QueryTimeout, platform faults -> WarehouseUnavailable)
but without SQLAlchemy's per-statement work: the serving fast path."""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.warehouse.engine import QueryTimeout, WarehouseUnavailable, _attach_schemas, is_sqlite

log = logging.getLogger(__name__)


def run_readonly_sql(engine: Engine, sql: str, args: Any, timeout_s: float) -> tuple[Any, list[tuple]]:
    """(cursor description, rows) of one SELECT in the DBAPI's paramstyle; QueryTimeout past the deadline."""
    try:
        fairy = engine.raw_connection()
    except sa.exc.DBAPIError as exc:
        if _is_platform_fault(engine.dialect.dbapi, exc.orig):
            raise _unavailable(exc.orig) from exc
        raise
    try:
        if is_sqlite(engine):
            return _run_sqlite(fairy, engine, sql, args, timeout_s)
        return _run_postgresql(fairy, engine, sql, args, timeout_s)
    finally:
        fairy.close()  # back to the pool (or gone, when invalidated)


def _run_sqlite(fairy, engine: Engine, sql: str, args: Any, timeout_s: float):
    raw = fairy.dbapi_connection
    dbapi = engine.dialect.dbapi
    deadline = time.monotonic() + timeout_s
    try:
        raw.execute("PRAGMA query_only = ON")
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        raw.execute("BEGIN")
        _attach_schemas(raw, fairy.info, engine.info["data_dir"], sql)
        cursor = raw.execute(sql, args)
        rows = cursor.fetchall()
        description = cursor.description
        raw.execute("COMMIT")
        return description, rows
    except dbapi.Error as exc:
        if "interrupted" in str(exc):
            raise QueryTimeout(timeout_s) from None
        raise _translated(engine, sql, args, exc) from exc
    finally:
        try:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
            raw.set_progress_handler(None, 0)
            raw.execute("PRAGMA query_only = OFF")
        except dbapi.Error:
            # A connection that cannot be put back as it was (read-write, no deadline) is never reused.
            fairy.invalidate()


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
