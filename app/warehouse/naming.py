"""Turning user-typed dataset names and CSV headers into safe warehouse identifiers."""

from __future__ import annotations

import re
import unicodedata

from app.errors import invalid
from app.warehouse.engine import IDENTIFIER

MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently, so Apiary refuses them instead

# Schemas the databases keep for themselves: SQLite's built-in names and PostgreSQL's catalog (and pg_*).
RESERVED_SCHEMAS = frozenset({"main", "temp", "information_schema"})
_SPACES_DASHES = re.compile(r"[\s\-]+")
_HEADER_SEPARATORS = re.compile(r"[\s\-.]+")
_NOT_IDENTIFIER_CHAR = re.compile(r"[^a-z0-9_]")


def normalise_dataset_name(name: str, default_schema: str = "uploads") -> tuple[str, str]:
    """`"Sales-2024 Q1"` -> `("uploads", "sales_2024_q1")`; `"marts.Dim Customer"` -> `("marts", "dim_customer")`.

    Lower-cases, turns runs of spaces and dashes into `_`, and splits an optional schema off at the one `.`.
    Anything that is still not a safe identifier is refused with a 422 on `name` saying why; nothing is
    silently dropped, so the table is always called what the user typed (give or take case and spaces).
    """
    if not isinstance(name, str) or not name.strip():
        raise invalid("name", "must not be empty")
    text = _SPACES_DASHES.sub("_", name.strip().lower())
    parts = text.split(".")
    if len(parts) > 2:
        raise invalid("name", f"{name!r} has more than one '.'; use schema.table or just table")
    schema, table = parts if len(parts) == 2 else (default_schema, parts[0])
    _check_part(name, schema, "schema")
    _check_part(name, table, "table")
    if schema in RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise invalid("name", f"schema {schema!r} is reserved by the database; choose another schema")
    if table.startswith("sqlite_"):
        raise invalid("name", f"table names starting with 'sqlite_' are reserved by the database: {table!r}")
    return schema, table


def _check_part(original: str, part: str, what: str) -> None:
    if not part:
        raise invalid("name", f"{original!r} has an empty {what} name")
    if len(part) > MAX_IDENTIFIER:
        raise invalid("name", f"the {what} name {part!r} is longer than {MAX_IDENTIFIER} characters")
    if part[0].isdigit():
        raise invalid("name", f"the {what} name {part!r} must start with a letter or '_', not a digit")
    bad = sorted(set(_NOT_IDENTIFIER_CHAR.findall(part)))
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise invalid("name", f"the {what} name {part!r} may only hold letters a-z, digits and '_' (found {shown})")
    if not IDENTIFIER.fullmatch(part):  # belt and braces: the engine's own rule is the one that counts
        raise invalid("name", f"the {what} name {part!r} is not a valid identifier")


def normalise_column_name(header: str) -> str:
    """A CSV header cell as a column name: `"Unit Price (€)"` -> `"unit_price"`, `"Café"` -> `"cafe"`.

    Lower-cases, folds accents to ASCII, turns spaces, dashes and dots into `_`, drops every other character,
    prefixes `col_` when the result starts with a digit and cuts it to 63 characters. Returns "" when nothing
    usable is left; the caller reports that (and duplicates) with the column number.
    """
    folded = unicodedata.normalize("NFKD", header.strip()).encode("ascii", "ignore").decode("ascii").lower()
    text = _HEADER_SEPARATORS.sub("_", folded)
    text = _NOT_IDENTIFIER_CHAR.sub("", text)
    text = re.sub(r"_{2,}", "_", text).rstrip("_")
    if not folded.startswith("_"):  # keep a leading "_" the user wrote (`_id`), drop one left by removed symbols
        text = text.lstrip("_")
    if text and text[0].isdigit():
        text = f"col_{text}"
    return text[:MAX_IDENTIFIER].rstrip("_")
