"""Streaming CSV upload into a warehouse table: spool to disk, infer types over every row, load in one transaction."""

from __future__ import annotations

import csv
import itertools
import logging
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.errors import APIError, invalid
from app.warehouse.engine import (
    LOGICAL_TYPES,
    ColumnInfo,
    WarehouseError,
    WarehouseUnavailable,
    check_identifier,
    ensure_schema,
    is_platform_fault,
    sa_type_for,
    table_exists,
)
from app.warehouse.naming import normalise_column_name
from app.warehouse.type_inference import FITS, converter, narrow

log = logging.getLogger(__name__)

SPOOL_CHUNK = 1 << 20
DEFAULT_MAX_COLUMNS = 2000  # UPLOAD_MAX_COLUMNS
# The most columns a table may have: SQLite's compiled-in SQLITE_MAX_COLUMN, PostgreSQL's fixed limit.
BACKEND_MAX_COLUMNS = {"sqlite": 2000, "postgresql": 1600}
DELIMITERS = (",", ";", "\t")  # comma first: it wins ties


class TableExists(WarehouseError):
    """The target table is already there and the caller did not ask to replace it (the API answers 409)."""

    def __init__(self, schema: str, table: str):
        super().__init__(f"table {schema}.{table} already exists; upload with replace=true to overwrite it")
        self.schema, self.table = schema, table


@dataclass(frozen=True)
class LoadResult:
    row_count: int
    columns: list[ColumnInfo]


def load_csv(
    engine: Engine,
    source: BinaryIO | str | os.PathLike,
    schema: str,
    table: str,
    replace: bool = False,
    batch_size: int = 5000,
    max_bytes: int | None = None,
    types: Mapping[str, str] | None = None,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> LoadResult:
    """Load a CSV file (a path, or a binary stream such as werkzeug's FileStorage) into `schema.table`.

    The file is read twice and never held in memory: a stream is first spooled to a temporary file on disk
    (413 on `file` past `max_bytes`), pass one infers every column's type from ALL rows, pass two inserts in
    batches of `batch_size` into a staging table, renamed into place (dropping the old one when `replace`) at the
    end of the same single transaction. Any failure rolls everything back: the table does not exist afterwards,
    or with `replace=True` the previous table is still there, intact (and readable throughout the load).
    `TableExists` is raised before the file is read when the table exists and `replace` is false, or at the end
    if another upload created it meanwhile.

    File rules (each break is a 400 on `file` naming the line, 1-based with the header as line 1):
    UTF-8, a BOM is tolerated; delimiter `,`, or `;` / tab when the header line holds more of those; a header
    row whose cells become column names via `normalise_column_name` (empty or duplicate names are refused,
    naming the column number); every row has as many fields as the header; blank lines are skipped.

    Inference (cells that are empty or only whitespace are NULL and never affect it; values are trimmed):
    integer (fits int64; no leading zeros, so `007` and zip codes stay text) < float (finite decimals and
    exponents; `nan`/`inf` are text) ; boolean (true/false/yes/no/t/f, any case; 0/1 are integers);
    date (YYYY-MM-DD) < timestamp (date, `T` or space, HH:MM[:SS[.fraction]], optional `Z`/+HH[:MM] offset).
    A column mixing integers and floats is float, dates and timestamps is timestamp, anything else is text.
    A whole number too big for int64 makes its column text: such numbers are identifiers whose digits matter.
    Timestamps are stored without time zone: values with an offset are converted to UTC, values without one are
    stored as written (read them as UTC). A header-only file makes an empty table whose columns are all text.

    `types` forces columns (by normalised name) to a logical type; a value that does not convert then aborts the
    load with a 400 naming its line and column. A header with more than `max_columns` columns (or more than the
    warehouse's own table limit, 1,600 on PostgreSQL) is a 400 on `file` naming the limit, before any row is read.
    """
    _check_target(schema, table)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not replace and table_exists(engine, schema, table):
        raise TableExists(schema, table)
    max_columns = min(max_columns, BACKEND_MAX_COLUMNS.get(engine.dialect.name, max_columns))
    with _local_file(source, max_bytes) as path:
        columns = _infer_columns(path, types or {}, max_columns)
        try:
            ensure_schema(engine, schema)
            row_count = _insert_rows(engine, path, schema, table, columns, replace, batch_size)
        except sa.exc.DBAPIError as exc:
            if not is_platform_fault(exc):  # disk full, locked, a broken schema file ... are 503s
                raise
            log.error("warehouse error during a load into %s.%s (answered 503): %s", schema, table, exc.orig)
            raise WarehouseUnavailable() from exc
        except sqlite3.DatabaseError as exc:  # ensure_schema's own connection
            log.error("warehouse error creating schema %s (answered 503): %s", schema, exc)
            raise WarehouseUnavailable() from exc
    return LoadResult(row_count, columns)


def _check_target(schema: str, table: str) -> None:
    for part in (schema, table):
        try:
            check_identifier(part)
        except ValueError as exc:
            raise invalid("name", str(exc)) from None


def _bad_file(message: str, status: int = 400, code: str = "invalid_csv", **details) -> APIError:
    return APIError(status, code, f"file: {message}", {"fields": {"file": [message]}, **details})


# ---------------------------------------------------------------- getting a file on disk


@contextmanager
def _local_file(source: BinaryIO | str | os.PathLike, max_bytes: int | None) -> Iterator[str]:
    """A path that can be read twice: the caller's own path, or the stream copied to a temporary file."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if max_bytes is not None and os.path.getsize(path) > max_bytes:
            raise _too_large(max_bytes)
        yield path
        return
    if not hasattr(source, "read"):
        raise TypeError("source must be a path or a binary file object")
    fd, path = tempfile.mkstemp(prefix="apiary-upload-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out:
            written = 0
            while chunk := source.read(SPOOL_CHUNK):
                if isinstance(chunk, str):
                    raise TypeError("source must be opened in binary mode")
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise _too_large(max_bytes)  # stop reading at once: the rest may be huge
                out.write(chunk)
        yield path
    finally:
        os.unlink(path)


def _too_large(max_bytes: int) -> APIError:
    return _bad_file(
        f"the file is larger than the {max_bytes:,} byte limit", 413, "payload_too_large", max_bytes=max_bytes
    )


# ---------------------------------------------------------------- reading records


@contextmanager
def _open_records(
    path: str, max_columns: int | None = None
) -> Iterator[tuple[list[str], Iterator[tuple[int, list[str]]]]]:
    """The header's column names and an iterator of (line number where the record starts, fields)."""
    with open(path, "rb") as fh:
        lines = _text_lines(fh)
        first = next(lines, None)
        if first is None:
            raise _bad_file("the file is empty; it needs a header row naming the columns", line=1)
        reader = csv.reader(itertools.chain([first], lines), delimiter=_sniff_delimiter(first))
        header = next(_numbered(reader), (1, []))[1] if first.strip() else []
        if max_columns is not None and len(header) > max_columns:
            message = f"the header has {len(header):,} columns; at most {max_columns:,} are allowed"
            raise _bad_file(message, code="too_many_columns", line=1, columns=len(header), max_columns=max_columns)
        yield _column_names(header), _numbered(reader)


def _text_lines(fh: BinaryIO) -> Iterator[str]:
    # Decoding line by line (b"\n" never occurs inside a UTF-8 sequence) is what lets errors name their line.
    for number, raw in enumerate(fh, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"line {number} is not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8"
            raise _bad_file(message, line=number) from None
        if "\x00" in line:  # UTF-16 files and binary data; PostgreSQL cannot store NUL in text either
            raise _bad_file(f"line {number} contains a NUL character; is this a UTF-8 CSV text file?", line=number)
        yield line[1:] if number == 1 and line.startswith("\ufeff") else line


def _sniff_delimiter(header_line: str) -> str:
    best = DELIMITERS[0]
    for candidate in DELIMITERS[1:]:
        if header_line.count(candidate) > header_line.count(best):
            best = candidate
    return best


def _numbered(reader) -> Iterator[tuple[int, list[str]]]:
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _bad_file(f"line {start} is not valid CSV: {exc}", line=start) from None
        if record:  # blank line
            yield start, record
        start = reader.line_num + 1


def _column_names(header: list[str]) -> list[str]:
    if not header:
        raise _bad_file("line 1, the header row, is empty; it must name the columns", line=1)
    numbers: dict[str, int] = {}  # name -> its column number
    for number, cell in enumerate(header, start=1):
        name = normalise_column_name(cell)
        if not name:
            why = "is empty" if not cell.strip() else f"{cell!r} has no letters or digits to name a column with"
            raise _bad_file(f"the header of column {number} {why}", line=1, column_number=number)
        if name in numbers:
            message = (
                f"the header of column {number} ({cell!r}) gives {name!r}, the same name as column {numbers[name]}"
            )
            raise _bad_file(message, line=1, column_number=number)
        numbers[name] = number
    return list(numbers)


# ---------------------------------------------------------------- pass one: types


def _infer_columns(path: str, forced: Mapping[str, str], max_columns: int | None = None) -> list[ColumnInfo]:
    """Read every row once: check its shape and encoding, and narrow each column to the type all its values fit."""
    with _open_records(path, max_columns) as (names, records):
        _check_forced(forced, names)
        kinds: list[str | None] = [forced.get(name) for name in names]
        open_columns = [i for i, kind in enumerate(kinds) if kind is None]  # still being inferred
        width = len(names)
        for line, record in records:
            if len(record) != width:
                raise _wrong_width(line, len(record), width)
            changed = False
            for i in open_columns:
                v = record[i].strip()
                if not v:
                    continue
                kind = kinds[i]
                if kind is not None and FITS[kind](v):  # the common case, tested inline (once per value)
                    continue
                kinds[i] = narrow(kind, v)
                changed = changed or kinds[i] == "text"
            if changed:  # text is final: stop testing those columns
                open_columns = [i for i in open_columns if kinds[i] != "text"]
    return [ColumnInfo(name, kind or "text") for name, kind in zip(names, kinds, strict=True)]


def _check_forced(forced: Mapping[str, str], names: list[str]) -> None:
    for name, kind in forced.items():
        if name not in names:
            raise invalid("types", f"the file has no column {name!r} (its columns: {', '.join(names)})")
        if kind not in LOGICAL_TYPES:
            raise invalid(f"types.{name}", f"{kind!r} is not one of {', '.join(LOGICAL_TYPES)}")


def _wrong_width(line: int, got: int, width: int) -> APIError:
    return _bad_file(f"line {line} has {got} fields but the header has {width} columns", line=line)


# ---------------------------------------------------------------- pass two: load


def _insert_rows(
    engine: Engine, path: str, schema: str, table: str, columns: list[ColumnInfo], replace: bool, batch_size: int
) -> int:
    # Rows go into a staging table renamed into place at the end, so a replaced table stays readable while the
    # new one loads (on PostgreSQL a DROP up front would lock out its readers for the whole load).
    staging = f"_load_{uuid.uuid4().hex[:16]}"
    target = sa.Table(staging, sa.MetaData(), *[sa.Column(c.name, sa_type_for(c.type)) for c in columns], schema=schema)
    # On PostgreSQL SQLAlchemy 2 sends an executemany INSERT as multi-row VALUES pages ("insertmanyvalues"),
    # the same speed-up psycopg2's execute_values gives; SQLite's own executemany is already fast.
    insert = sa.insert(target)
    names = [c.name for c in columns]
    converters = [converter(c.type) for c in columns]
    row_count = 0
    with engine.begin() as conn, _open_records(path) as (_, records):
        target.create(conn)
        batch: list[dict] = []
        for line, record in records:
            if len(record) != len(names):  # only if the file changed since pass one
                raise _wrong_width(line, len(record), len(names))
            try:
                batch.append(
                    dict(zip(names, [convert(v) for convert, v in zip(converters, record, strict=True)], strict=True))
                )
            except (ValueError, KeyError, OverflowError) as exc:
                raise _bad_value(line, record, columns, converters) from exc
            if len(batch) >= batch_size:
                conn.execute(insert, batch)
                row_count += len(batch)
                batch = []
        if batch:
            conn.execute(insert, batch)
            row_count += len(batch)
        _swap_into_place(conn, schema, staging, table, replace)
    return row_count


def _swap_into_place(conn: sa.Connection, schema: str, staging: str, table: str, replace: bool) -> None:
    if replace:
        sa.Table(table, sa.MetaData(), schema=schema).drop(conn, checkfirst=True)
    try:  # identifiers are checked ones, quoted: SQLAlchemy has no RENAME construct
        conn.exec_driver_sql(f'ALTER TABLE "{schema}"."{staging}" RENAME TO "{table}"')
    except sa.exc.DBAPIError as exc:
        # Another upload created the same table while this one loaded.
        if "already" in str(exc.orig).lower():
            raise TableExists(schema, table) from None
        raise


def _bad_value(line: int, record: list[str], columns: list[ColumnInfo], converters: list) -> APIError:
    for column, convert, value in zip(columns, converters, record, strict=True):
        try:
            convert(value)
        except (ValueError, KeyError, OverflowError):
            message = f"line {line}, column {column.name!r}: {value.strip()[:80]!r} is not a valid {column.type}"
            return _bad_file(message, line=line, column=column.name)
    return _bad_file(f"line {line} could not be converted", line=line)
