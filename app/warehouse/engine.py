"""The warehouse engine: pooled connections, schemas, column types and read-only execution with a deadline."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# The logical column types Apiary knows; every warehouse type maps onto one of them.
LOGICAL_TYPES = ("integer", "float", "boolean", "date", "timestamp", "text")


class WarehouseError(Exception):
    """Base of the warehouse's own errors."""


class TableNotFound(WarehouseError):
    def __init__(self, schema: str, table: str):
        super().__init__(f"table {schema}.{table} does not exist")
        self.schema, self.table = schema, table


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
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid identifier (lower-case letters, digits and _, at most 63)")
    return name


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_warehouse_engine(url: str, data_dir: str | None = None, pool_size: int = 5) -> Engine:
    """Build the warehouse engine.

    On SQLite the main database is `url` and every `<schema>.db` file in `data_dir` is attached as schema
    `<schema>`, so `marts.dim_customer` works as it does on PostgreSQL. Files created later (new schemas)
    are attached when a pooled connection is next checked out, in every process.
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
            connect_args={"check_same_thread": False, "timeout": 30},
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
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        attached = record.info.setdefault("attached", set())
        for schema in _schema_files(data_dir):
            if schema not in attached:
                path = os.path.join(data_dir, f"{schema}.db")
                cur = dbapi_conn.cursor()
                cur.execute("ATTACH DATABASE ? AS " + schema, (path,))
                cur.execute(f"PRAGMA {schema}.journal_mode=WAL")
                cur.close()
                attached.add(schema)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")


def _schema_files(data_dir: str) -> list[str]:
    names = []
    for entry in os.listdir(data_dir):
        if entry.endswith(".db"):
            schema = entry[:-3]
            if IDENTIFIER.match(schema) and schema not in ("main", "temp"):
                names.append(schema)
    return sorted(names)


def ensure_schema(engine: Engine, schema: str) -> None:
    """Create the schema if it does not exist (a file on SQLite, `CREATE SCHEMA` on PostgreSQL)."""
    check_identifier(schema)
    if is_sqlite(engine):
        path = os.path.join(engine.info["data_dir"], f"{schema}.db")  # type: ignore[attr-defined]
        if not os.path.exists(path):
            import sqlite3

            sqlite3.connect(path).close()
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
    except sa.exc.OperationalError:
        # SQLite: unknown schema (file not attached)
        raise TableNotFound(schema, table) from None
    if not cols:
        raise TableNotFound(schema, table)
    return [ColumnInfo(c["name"], logical_type(c["type"])) for c in cols]


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
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            try:
                result = conn.execute(stmt)
                return [dict(row) for row in result.mappings()]
            except sa.exc.OperationalError as exc:
                if "statement timeout" in str(exc.orig):
                    raise QueryTimeout(timeout_s) from None
                raise


def _execute_sqlite_readonly(conn: sa.Connection, stmt, timeout_s: float) -> list[dict]:
    raw = conn.connection.dbapi_connection
    deadline = time.monotonic() + timeout_s
    raw.execute("PRAGMA query_only = ON")
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        with conn.begin():
            result = conn.execute(stmt)
            return [dict(row) for row in result.mappings()]
    except sa.exc.OperationalError as exc:
        if "interrupted" in str(exc.orig):
            raise QueryTimeout(timeout_s) from None
        raise
    finally:
        raw.set_progress_handler(None, 0)
        raw.execute("PRAGMA query_only = OFF")
