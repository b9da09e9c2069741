"""Warehouse indexes: deterministic names, reflection, and builds that never block readers."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.warehouse.engine import _unavailable, check_identifier, is_platform_fault, is_sqlite

log = logging.getLogger(__name__)

INDEX_PREFIX = "apiary_ix_"
MAX_NAME = 63  # PostgreSQL's identifier limit; SQLite has none, one rule for both
# PostgreSQL: waiting for a lock on a busy table must not run forever inside a worker.
BUILD_TIMEOUT_MS = 540_000


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: tuple[str, ...]
    unique: bool
    valid: bool = True  # PostgreSQL: False for what a failed CREATE INDEX CONCURRENTLY left behind


def index_name(table: str, columns: list[str] | tuple[str, ...]) -> str:
    """`apiary_ix_<table>__<col>_<col>`, bounded to 63 characters with a short hash of the whole when longer.

    The same table and columns always give the same name, so a build is idempotent and re-publishing finds it."""
    check_identifier(table)
    slug = "_".join(re.sub(r"[^a-z0-9_]", "_", c.lower()) for c in columns)
    name = f"{INDEX_PREFIX}{table}__{slug}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(f"{table}\0{chr(0).join(columns)}".encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - len(digest) - 1]}_{digest}"


def list_indexes(engine: Engine, schema: str, table: str) -> list[IndexInfo]:
    """The table's indexes as the database reports them (primary keys aside); [] when the table is gone."""
    check_identifier(schema)
    check_identifier(table)
    try:
        found = sa.inspect(engine).get_indexes(table, schema=schema)
        invalid = _invalid_index_names(engine, schema, table) if not is_sqlite(engine) else set()
    except sa.exc.NoSuchTableError:
        return []
    except sa.exc.DBAPIError as exc:
        if "unknown database" in str(exc.orig):  # SQLite: no such schema file
            return []
        if is_platform_fault(exc):
            raise _unavailable(exc) from exc
        raise
    indexes = [
        IndexInfo(
            ix["name"], tuple(c for c in ix["column_names"] if c), bool(ix.get("unique")), ix["name"] not in invalid
        )
        for ix in found
        if ix.get("name")
    ]
    names = {ix.name for ix in indexes}
    # Reflection may leave out an invalid index; it still holds its name, so show it.
    indexes += [IndexInfo(name, (), False, False) for name in sorted(invalid - names)]
    return indexes


def _invalid_index_names(engine: Engine, schema: str, table: str) -> set[str]:
    stmt = sa.text(
        "SELECT ic.relname FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = tc.relnamespace "
        "WHERE n.nspname = :s AND tc.relname = :t AND NOT i.indisvalid"
    )
    with engine.connect() as conn:
        return set(conn.execute(stmt, {"s": schema, "t": table}).scalars())


def covering_index(indexes: list[IndexInfo], columns: tuple[str, ...], sort: tuple[str, ...] = ()) -> IndexInfo | None:
    """A valid index whose leading columns are exactly `columns` (in any order), followed by `sort` in this order:
    equality on `columns` uses it, and reads the matches sorted by `sort` (either direction)."""
    wanted, width = set(columns), len(columns)
    for ix in indexes:
        if (
            ix.valid
            and len(ix.columns) >= width + len(sort)
            and set(ix.columns[:width]) == wanted
            and tuple(ix.columns[width : width + len(sort)]) == sort
        ):
            return ix
    return None


def build_index(engine: Engine, schema: str, table: str, columns: tuple[str, ...], attempts: int = 2) -> str:
    """Create the index on `schema.table(columns)` if it is missing; its name. Readers are never blocked:
    `CREATE INDEX CONCURRENTLY` outside a transaction on PostgreSQL, a plain build on SQLite (WAL: readers go on).

    An invalid index a failed concurrent build left behind is dropped and built again, up to `attempts` times."""
    check_identifier(schema)
    check_identifier(table)
    name = index_name(table, columns)
    quote = engine.dialect.identifier_preparer.quote_identifier
    cols = ", ".join(quote(c) for c in columns)
    if is_sqlite(engine):
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "{schema}"."{name}" ON "{table}" ({cols})')
        return name
    # One build of a given index at a time across workers: a second CONCURRENTLY build would see the first one's
    # not-yet-valid index and take it for a failed one.
    lock = int(hashlib.sha256(f"{schema}.{name}".encode()).hexdigest()[:15], 16)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"SET statement_timeout = {BUILD_TIMEOUT_MS}")
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        try:
            for attempt in range(1, attempts + 1):
                if name in _invalid_index_names(engine, schema, table):
                    log.warning("dropping invalid index %s.%s left by a failed build", schema, name)
                    conn.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{schema}"."{name}"')
                try:
                    conn.exec_driver_sql(
                        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{schema}"."{table}" ({cols})'
                    )
                except sa.exc.DBAPIError:
                    if attempt == attempts:
                        raise
                    log.warning(
                        "building index %s.%s failed (attempt %d), retrying", schema, name, attempt, exc_info=True
                    )
                    continue
                if name not in _invalid_index_names(engine, schema, table):
                    return name
            raise RuntimeError(f"index {name} is still invalid after {attempts} builds")
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
