"""The warehouse engine: pooled connections, schemas, column types and read-only execution with a deadline."""

from __future__ import annotations

import functools
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.errors import APIError

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# The logical column types Apiary knows; every warehouse type maps onto one of them.
LOGICAL_TYPES = ("integer", "float", "boolean", "date", "timestamp", "text")


class WarehouseError(Exception):
    """Base of the warehouse's own errors."""


class TableNotFound(WarehouseError):
    def __init__(self, schema: str, table: str):
        super().__init__(f"table {schema}.{table} does not exist")
        self.schema, self.table = schema, table


class WarehouseUnavailable(APIError):
    """The warehouse failed in a way that is the platform's fault, not the caller's: the API answers 503."""

    def __init__(self, why: str = "it failed on our side"):
        message = f"the warehouse could not answer: {why}; try again shortly"
        super().__init__(503, "warehouse_unavailable", message, {}, {"Retry-After": 5})


class QueryTimeout(WarehouseError):
    def __init__(self, seconds: float):
        super().__init__(f"query exceeded its {seconds:g} s statement timeout")
        self.seconds = seconds


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # one of LOGICAL_TYPES


def check_identifier(name: str) -> str:
    """Return `name` if it is a safe lower-case SQL identifier, else raise ValueError."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid identifier (lower-case letters, digits and _, at most 63)")
    return name


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# Every SQLite warehouse connection (the engine's and the fast path's, app/warehouse/readonly.py): shared across the
# threads of a process (never two at once), waiting up to 30 s for another connection's write lock.
SQLITE_CONNECT_ARGS = {"check_same_thread": False, "timeout": 30}
SQLITE_BUSY_TIMEOUT = "PRAGMA busy_timeout = 30000"


def create_warehouse_engine(url: str, data_dir: str | None = None, pool_size: int = 5) -> Engine:
    """Build the warehouse engine.

    On SQLite the main database is `url` and each `<schema>.db` file in `data_dir` is attached as schema
    `<schema>` when a statement on a connection first names it, so `marts.dim_customer` works as it does on
    PostgreSQL, in every process, however many schema files there are (SQLite attaches at most 10 at once).
    """
    if url.startswith("sqlite"):
        if data_dir is None:
            raise ValueError("a SQLite warehouse needs a data_dir for its schema files")
        os.makedirs(data_dir, exist_ok=True)
        engine = sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            poolclass=sa.pool.QueuePool,
            connect_args=SQLITE_CONNECT_ARGS,
        )
        engine.info = {"data_dir": data_dir}  # type: ignore[attr-defined]
        _install_sqlite_hooks(engine, data_dir)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


def _install_sqlite_hooks(engine: Engine, data_dir: str) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(SQLITE_BUSY_TIMEOUT)
        cur.close()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _attach_what_it_reads(conn, _cursor, statement, _parameters, _context, _executemany):
        _attach_schemas(conn.connection.dbapi_connection, conn.connection.info, data_dir, statement)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")

    def schema_names(_connection, **_kw) -> list[str]:
        # The dialect lists attached databases only; here every schema file exists whether attached yet or not
        # (so `has_table`, and `drop(checkfirst=True)` with it, see a schema this connection has not read yet).
        files = (entry[:-3] for entry in os.listdir(data_dir) if entry.endswith(".db"))
        return [
            "main",
            "temp",
            *sorted(name for name in files if IDENTIFIER.fullmatch(name) and name not in ("main", "temp")),
        ]

    engine.dialect.get_schema_names = schema_names  # type: ignore[method-assign]


# A schema-qualified name in SQL text: `marts.t`, `"marts"."t"`, `"marts".table_xinfo(...)`.
_QUALIFIER = re.compile(r'(?:"([a-z_][a-z0-9_]{0,62})"|\b([a-z_][a-z0-9_]{0,62}))\s*\.\s*["a-z_]')


@functools.lru_cache(maxsize=4096)
def _qualifiers(statement: str) -> tuple[str, ...]:
    """The names `statement` qualifies others with, once each: served statements repeat, the scan need not."""
    return tuple(dict.fromkeys(quoted or bare for quoted, bare in _QUALIFIER.findall(statement)))


def _attach_schemas(dbapi_conn, info: dict, data_dir: str, statement: str) -> None:
    """ATTACH the schema files `statement` names that this connection does not have yet.

    SQLite attaches at most 10 databases per connection, so a schema is attached when a statement first reads it
    (never every schema on checkout), and the least recently used schemas this statement does not read are detached
    to make room: however many schema files the warehouse holds, each query works.
    """
    attached: dict[str, None] = info.setdefault("attached", {})  # insertion order: least recently used first
    needed: list[str] = []
    for name in _qualifiers(statement):
        if name in ("main", "temp"):
            continue
        if name in attached or os.path.exists(os.path.join(data_dir, f"{name}.db")):
            needed.append(name)
    for name in needed:
        if name in attached:
            attached[name] = attached.pop(name)  # now the most recently used
    missing = [name for name in needed if name not in attached]
    if not missing:
        return
    limit = dbapi_conn.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)
    for victim in [name for name in attached if name not in needed]:
        if len(attached) + len(missing) <= limit:
            break
        try:
            dbapi_conn.execute(f'DETACH DATABASE "{victim}"')
        except sqlite3.OperationalError:  # still in use by this connection's open transaction: try the next one
            continue
        del attached[victim]
    if len(attached) + len(missing) > limit:
        raise WarehouseUnavailable(
            f"a statement reads {len(needed)} warehouse schemas; SQLite attaches at most {limit}"
        )
    for name in missing:
        try:
            dbapi_conn.execute(f'ATTACH DATABASE ? AS "{name}"', (os.path.join(data_dir, f"{name}.db"),))
        except sqlite3.DatabaseError as exc:  # unreadable, not a database, too many files open ...
            if "already in use" not in str(exc):
                raise WarehouseUnavailable(f"warehouse schema {name!r} cannot be opened") from exc
        attached[name] = None


def ensure_schema(engine: Engine, schema: str) -> None:
    """Create the schema if it does not exist (a file on SQLite, `CREATE SCHEMA` on PostgreSQL)."""
    check_identifier(schema)
    if is_sqlite(engine):
        path = os.path.join(engine.info["data_dir"], f"{schema}.db")  # type: ignore[attr-defined]
        if not os.path.exists(path):
            created = sqlite3.connect(path)
            created.execute("PRAGMA journal_mode=WAL")  # kept in the file: every connection attaching it gets WAL
            created.close()
        return
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def logical_type(sa_type: sa.types.TypeEngine) -> str:
    """Map a reflected SQLAlchemy type onto one of LOGICAL_TYPES."""
    if isinstance(sa_type, sa.Boolean):
        return "boolean"
    if isinstance(sa_type, sa.Integer):
        return "integer"
    if isinstance(sa_type, (sa.Float, sa.Numeric)):
        return "float"
    if isinstance(sa_type, sa.DateTime):
        return "timestamp"
    if isinstance(sa_type, sa.Date):
        return "date"
    return "text"


def list_columns(engine: Engine, schema: str, table: str) -> list[ColumnInfo]:
    """The table's columns with their logical types, in table order; TableNotFound if it is missing."""
    check_identifier(schema)
    check_identifier(table)
    inspector = sa.inspect(engine)
    try:
        cols = inspector.get_columns(table, schema=schema)
    except sa.exc.NoSuchTableError:
        raise TableNotFound(schema, table) from None
    except sa.exc.DBAPIError as exc:
        if "unknown database" in str(exc.orig):  # SQLite: no such schema file
            raise TableNotFound(schema, table) from None
        if is_platform_fault(exc):
            raise _unavailable(exc) from exc
        raise
    if not cols:
        raise TableNotFound(schema, table)
    return [ColumnInfo(c["name"], logical_type(c["type"])) for c in cols]


_PG_RELKINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


def relation_kind(engine: Engine, schema: str, table: str) -> str | None:
    """What `schema.table` is in the database's own catalog: "table" for a user table, else "view", "materialized
    view", "foreign table", "system table" ..., or None when there is no such relation."""
    check_identifier(schema)
    check_identifier(table)
    if table.startswith("sqlite_"):
        return "system table"  # SQLite's own: sqlite_master, sqlite_schema, sqlite_sequence, sqlite_stat1 ...
    if is_sqlite(engine):
        master = sa.table("sqlite_master", sa.column("type"), sa.column("name"), schema=schema)
        stmt = sa.select(master.c.type).where(master.c.name == sa.bindparam("t"))
    else:
        stmt = sa.text(
            "SELECT c.relkind FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relname = :t"
        )
    try:
        with engine.connect() as conn:
            kind = conn.execute(stmt, {"s": schema, "t": table}).scalar()
    except sa.exc.DBAPIError as exc:
        if "unknown database" in str(exc.orig) or "no such table" in str(exc.orig):  # SQLite: no such schema
            return None
        if is_platform_fault(exc):
            raise _unavailable(exc) from exc
        raise
    if kind is None or is_sqlite(engine):
        return kind
    return _PG_RELKINDS.get(kind, "system object")


def table_exists(engine: Engine, schema: str, table: str) -> bool:
    try:
        list_columns(engine, schema, table)
        return True
    except (TableNotFound, ValueError):
        return False


def reflect_table(engine: Engine, schema: str, table: str) -> sa.Table:
    """A SQLAlchemy Table for schema.table, built from the real columns (never from user input)."""
    columns = list_columns(engine, schema, table)
    return sa.Table(table, sa.MetaData(), *[sa.Column(c.name, _SA_TYPES[c.type]) for c in columns], schema=schema)


_SA_TYPES = {
    "integer": sa.BigInteger(),
    "float": sa.Float(),
    "boolean": sa.Boolean(),
    "date": sa.Date(),
    "timestamp": sa.DateTime(),
    "text": sa.Text(),
}


def sa_type_for(logical: str) -> sa.types.TypeEngine:
    return _SA_TYPES[logical]


def execute_readonly(engine: Engine, stmt: sa.sql.Executable, timeout_s: float) -> list[dict]:
    """Run a SELECT read-only with a statement timeout; rows as dicts. QueryTimeout past the deadline."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            return _execute_sqlite_readonly(conn, stmt, timeout_s)
        with conn.begin():
            # One round trip for both (served queries take app/warehouse/readonly.py, with fewer still).
            conn.exec_driver_sql(f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            try:
                result = conn.execute(stmt)
                return [dict(row) for row in result.mappings()]
            except sa.exc.DBAPIError as exc:
                if "statement timeout" in str(exc.orig):
                    raise QueryTimeout(timeout_s) from None
                if is_platform_fault(exc):
                    raise _unavailable(exc) from exc
                raise


def is_platform_fault(exc: sa.exc.DBAPIError) -> bool:
    """Whether a database error is the platform's doing (I/O, locks, lost connections, limits, a broken schema file)
    rather than the statement's (those are bugs, and stay 500s)."""
    faults = (sa.exc.OperationalError, sa.exc.InternalError, sa.exc.InterfaceError)
    return isinstance(exc, faults) or type(exc) is sa.exc.DatabaseError


def _unavailable(exc: sa.exc.DBAPIError) -> WarehouseUnavailable:
    log.error("warehouse error (answered 503): %s", exc.orig)  # the raw error is for operators, never the caller
    return WarehouseUnavailable()


def _execute_sqlite_readonly(conn: sa.Connection, stmt, timeout_s: float) -> list[dict]:
    raw = conn.connection.dbapi_connection
    deadline = time.monotonic() + timeout_s
    raw.execute("PRAGMA query_only = ON")
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        with conn.begin():
            result = conn.execute(stmt)
            return [dict(row) for row in result.mappings()]
    except sa.exc.DBAPIError as exc:
        if "interrupted" in str(exc.orig):
            raise QueryTimeout(timeout_s) from None
        if is_platform_fault(exc):
            raise _unavailable(exc) from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)
        raw.execute("PRAGMA query_only = OFF")
