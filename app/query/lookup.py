"""Lookup endpoints: `{dataset, key_column, key_param, columns, max_results}` as sugar over a one-filter query."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from app.errors import invalid
from app.query.validation import LIMIT_CEILING, RESERVED_PARAMS, validate_query_config
from app.warehouse.engine import TableNotFound, check_identifier, list_columns

LOOKUP_KEYS = {"id", "kind", "dataset", "key_column", "key_param", "columns", "max_results"}


def lookup_query_config(endpoint: dict) -> dict:
    """The query config a (validated) lookup endpoint stands for: one required eq filter on key_column."""
    schema, table = endpoint["dataset"].split(".", 1)
    max_results = endpoint.get("max_results") or 100
    config: dict[str, Any] = {
        "source": {"schema": schema, "table": table},
        "filters": [
            {"column": endpoint["key_column"], "op": "eq", "param": endpoint.get("key_param") or "id", "required": True}
        ],
        "pagination": {"default_limit": max_results, "max_limit": max_results},
    }
    if endpoint.get("columns") is not None:
        config["columns"] = list(endpoint["columns"])
    return config


def validate_lookup_endpoint(endpoint: dict, engine: Engine, field_prefix: str = "endpoint") -> None:
    """422 naming `<prefix>.dataset`, `.key_column`, `.key_param`, `.columns[i]` or `.max_results` when bad."""
    p = field_prefix
    dataset = endpoint.get("dataset")
    if not isinstance(dataset, str) or dataset.count(".") != 1:
        raise invalid(f"{p}.dataset", "expected schema.table")
    schema, table = dataset.split(".")
    try:
        check_identifier(schema)
        check_identifier(table)
        names = [c.name for c in list_columns(engine, schema, table)]
    except ValueError:
        raise invalid(f"{p}.dataset", "expected schema.table of lower-case identifiers") from None
    except TableNotFound:
        raise invalid(f"{p}.dataset", f"table {schema}.{table} does not exist") from None
    if endpoint.get("key_column") not in names:
        raise invalid(f"{p}.key_column", f"expected a column of {dataset}")
    key_param = endpoint.get("key_param", "id")
    if not isinstance(key_param, str) or not key_param.strip():
        raise invalid(f"{p}.key_param", "expected a request parameter name")
    if key_param in RESERVED_PARAMS:
        raise invalid(f"{p}.key_param", f"{key_param} is reserved for pagination")
    columns = endpoint.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns:
            raise invalid(f"{p}.columns", "expected a non-empty list of column names, or null for all")
        for i, name in enumerate(columns):
            if name not in names:
                raise invalid(f"{p}.columns[{i}]", f"expected a column of {dataset}")
            if columns.index(name) != i:
                raise invalid(f"{p}.columns[{i}]", f"column {name} is listed twice")
    max_results = endpoint.get("max_results", 100)
    if not isinstance(max_results, int) or isinstance(max_results, bool) or not 1 <= max_results <= LIMIT_CEILING:
        raise invalid(f"{p}.max_results", f"expected an integer from 1 to {LIMIT_CEILING}")
    validate_query_config(lookup_query_config(endpoint), engine, f"{p}.query")
