"""Datasets of a project: CSV uploads, registered warehouse tables, settings and masked previews."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import BinaryIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.datasets.catalog import Catalog
from app.datasets.grants import refuse_system_schema, schema_granted
from app.datasets.indexing import queue_dataset_reindex
from app.datasets.policy import preview_policy
from app.db import Dataset, Project
from app.errors import APIError, conflict, forbidden, invalid, not_found
from app.extensions import db
from app.query.executor import run_query
from app.query.masking import effective_masking, validate_masking_settings
from app.warehouse.engine import (
    QueryTimeout,
    TableNotFound,
    check_identifier,
    execute_readonly,
    is_sqlite,
    list_columns,
    reflect_table,
    relation_kind,
)
from app.warehouse.loader import DEFAULT_MAX_COLUMNS, TableExists, load_csv
from app.warehouse.naming import normalise_column_name, normalise_dataset_name

PREVIEW_MAX_ROWS = 100
# Schemas every organization may upload into (UPLOAD_SCHEMAS): the default one and the one the demo and README use.
DEFAULT_UPLOAD_SCHEMAS = ("uploads", "marts")
# Uploaded tables are stored as `p<project id>__<table>`; registering one would hand a project another's upload.
_UPLOAD_TABLE = re.compile(r"^p\d+__")


def _conflict(name: str) -> APIError:
    message = f"dataset {name!r} already exists in this project; upload with replace=true to overwrite it"
    return conflict(message, {"fields": {"name": ["already exists"]}})


def physical_location(project_id: int, schema: str, table: str, schema_prefix: str = "") -> tuple[str, str]:
    """Where an uploaded dataset's rows live: projects share logical names but never warehouse tables."""
    physical = (schema_prefix + schema, f"p{project_id}__{table}")
    for part in physical:
        try:
            check_identifier(part)
        except ValueError:
            raise invalid("name", f"{schema}.{table} is too long to store: {part!r} exceeds 63 characters") from None
    return physical


def find_dataset(project: Project, name: str) -> Dataset | None:
    return db.session.scalar(select(Dataset).where(Dataset.project_id == project.id, Dataset.name == name))


def get_dataset(project: Project, name: str) -> Dataset:
    """A dataset of the project by name, as typed in a URL (`uploads.sales`, `Sales` ...); 404 otherwise."""
    try:
        schema, table = normalise_dataset_name(name)
    except APIError:
        raise not_found("dataset") from None
    dataset = find_dataset(project, f"{schema}.{table}")
    if dataset is None:
        raise not_found("dataset")
    return dataset


def list_datasets(project: Project) -> list[Dataset]:
    return list(db.session.scalars(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.name)))


def upload_dataset(
    engine: Engine,
    project: Project,
    source: BinaryIO | str | os.PathLike,
    filename: str,
    name: str | None = None,
    friendly_name: str | None = None,
    description: str | None = None,
    replace: bool = False,
    types: dict | None = None,
    schema_prefix: str = "",
    max_bytes: int | None = None,
    created_by: int | None = None,
    upload_schemas: Collection[str] | None = None,
    max_columns: int | None = None,
    any_schema: bool = False,
) -> Dataset:
    """Load a CSV file into the project's table `name` (default: the file's name) and record it as a dataset.

    The load is one warehouse transaction: on any error the previous table and dataset row are left as they were.
    A dataset that exists is only overwritten with `replace`; its masking overrides survive for the columns kept.
    `name`'s schema must be one of `upload_schemas` (UPLOAD_SCHEMAS), or granted to the organization by an operator
    (`flask datasets grant-schema`), or the schema of this very dataset: tenants never create schemas at will (403 on
    `name`); `any_schema` is for operators (the CLI). `max_columns` (UPLOAD_MAX_COLUMNS) bounds the file's columns (400 on `file`).
    """
    if not filename or not filename.lower().endswith(".csv"):
        raise invalid("file", "expected a .csv file")
    typed_name = name if name is not None else os.path.splitext(os.path.basename(filename))[0]
    schema, table = normalise_dataset_name(typed_name)
    full_name = f"{schema}.{table}"
    physical_schema, physical_table = physical_location(project.id, schema, table, schema_prefix)
    existing = find_dataset(project, full_name)
    if existing is not None and not replace:
        raise _conflict(full_name)
    if existing is None and not any_schema:
        _check_upload_schema(project, schema, upload_schemas)
    if max_columns is None:
        max_columns = current_app.config.get("UPLOAD_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)
    forced = {normalise_column_name(str(column)): kind for column, kind in (types or {}).items()}
    try:
        # replace=True also when no dataset row exists: a table left at this project-private location belongs to
        # no dataset (its row went with a deleted project whose id SQLite reused), so it is ours to overwrite.
        result = load_csv(
            engine,
            source,
            physical_schema,
            physical_table,
            replace=True,
            max_bytes=max_bytes,
            types=forced,
            max_columns=max_columns,
        )
    except TableExists:
        raise _conflict(full_name) from None  # a concurrent upload of the same name got there first
    columns = [{"name": c.name, "type": c.type} for c in result.columns]
    dataset = existing or Dataset(project_id=project.id, name=full_name, masking={}, created_by=created_by)
    dataset.schema_name, dataset.table_name, dataset.source = physical_schema, physical_table, "upload"
    dataset.columns, dataset.row_count = columns, result.row_count
    kept = {c["name"] for c in columns}
    dataset.masking = {col: m for col, m in (dataset.masking or {}).items() if col in kept}
    if existing is None:
        dataset.friendly_name = friendly_name if friendly_name is not None else typed_name.strip()
        dataset.description = description or ""
    else:
        if friendly_name is not None:
            dataset.friendly_name = friendly_name
        if description is not None:
            dataset.description = description
    saved = _save(dataset, full_name)
    if existing is not None:  # the old table went with its indexes: the published services using it get them back
        queue_dataset_reindex(saved)
    return saved


def _check_upload_schema(project: Project, schema: str, upload_schemas: Collection[str] | None) -> None:
    """Each schema is a physical database object (a file attached on SQLite): only the built-in list and the schemas an
    operator granted the organization take uploads, so the set of schemas stays bounded whatever tenants send."""
    if upload_schemas is None:
        upload_schemas = current_app.config.get("UPLOAD_SCHEMAS", DEFAULT_UPLOAD_SCHEMAS)
    if schema in upload_schemas or schema_granted(project.org_id, schema):
        return
    allowed = ", ".join(sorted(upload_schemas))
    why = f"schema {schema!r} is not granted to this organization"
    message = (
        f"name: {why}; upload into one of {allowed} (no schema means uploads), or ask an operator to grant it "
        "with `flask datasets grant-schema`"
    )
    raise forbidden(message, {"fields": {"name": [why]}})


def _save(dataset: Dataset, name: str) -> Dataset:
    db.session.add(dataset)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise _conflict(name) from None
    return dataset


def _refuse_other_organizations_table(project: Project, schema: str, table: str) -> None:
    """A warehouse table registered by one organization cannot be registered by another: the first registration
    claims it, so a second tenant cannot read another's data by naming its table."""
    claimed = db.session.scalar(
        select(Project.org_id)
        .join(Dataset, Dataset.project_id == Project.id)
        .where(Dataset.schema_name == schema, Dataset.table_name == table, Project.org_id != project.org_id)
        .limit(1)
    )
    if claimed is not None:
        raise forbidden(
            f"table {schema}.{table} is registered by another organization",
            {"fields": {"table": ["registered by another organization"]}},
        )


def register_dataset(
    engine: Engine,
    project: Project,
    schema: str,
    table: str,
    name: str | None = None,
    friendly_name: str | None = None,
    description: str | None = None,
    timeout_s: float = 5.0,
    created_by: int | None = None,
    requires_grant: bool = False,
) -> Dataset:
    """Expose an existing warehouse table `schema.table` to the project as dataset `name` (default schema.table).

    With `requires_grant` (REGISTER_REQUIRES_GRANT) the organization needs an operator's grant of `schema`; without
    one the answer is 403 whether or not the table exists, so an ungranted schema's contents are not probed."""
    for field, value in (("schema", schema), ("table", table)):
        try:
            check_identifier(value)
        except ValueError as exc:
            raise invalid(field, str(exc)) from None
    refuse_system_schema(schema)
    if requires_grant and not schema_granted(project.org_id, schema):
        raise forbidden(
            f"this organization may not register tables of schema {schema!r}; "
            "an operator grants it with `flask datasets grant-schema`",
            {"fields": {"schema": ["not granted to this organization"]}},
        )
    if _UPLOAD_TABLE.match(table):
        raise invalid(
            "table", "tables named p<id>__... hold uploaded datasets; upload the file to this project instead"
        )
    if _is_metadata_table(engine, schema, table):
        raise invalid("table", f"{schema}.{table} is one of Apiary's own tables, not warehouse data")
    kind = relation_kind(engine, schema, table)
    if kind is None:
        raise invalid("table", f"table {schema}.{table} does not exist in the warehouse")
    if kind != "table":  # the database's own tables, and views (which may read anything their owner can)
        raise invalid("table", f"{schema}.{table} is a {kind}, not a user table; only tables can be registered")
    try:
        columns = list_columns(engine, schema, table)
    except TableNotFound:
        raise invalid("table", f"table {schema}.{table} does not exist in the warehouse") from None
    _refuse_other_organizations_table(project, schema, table)
    logical_schema, logical_table = normalise_dataset_name(name if name is not None else f"{schema}.{table}")
    full_name = f"{logical_schema}.{logical_table}"
    if find_dataset(project, full_name) is not None:
        raise conflict(
            f"dataset {full_name!r} already exists in this project", {"fields": {"name": ["already exists"]}}
        )
    dataset = Dataset(
        project_id=project.id,
        name=full_name,
        schema_name=schema,
        table_name=table,
        source="registered",
        friendly_name=friendly_name if friendly_name is not None else full_name,
        description=description or "",
        masking={},
        columns=[{"name": c.name, "type": c.type} for c in columns],
        row_count=_count_rows(engine, schema, table, timeout_s),
        created_by=created_by,
    )
    return _save(dataset, full_name)


def _count_rows(engine: Engine, schema: str, table: str, timeout_s: float) -> int | None:
    """The table's row count, or None when counting a very large table would take longer than `timeout_s`."""
    stmt = sa.select(sa.func.count().label("n")).select_from(reflect_table(engine, schema, table))
    try:
        return int(execute_readonly(engine, stmt, timeout_s)[0]["n"])
    except QueryTimeout:
        return None


def _is_metadata_table(engine: Engine, schema: str, table: str) -> bool:
    """Whether schema.table is Apiary's own metadata (users, keys ...) because both live in one database."""
    if table not in db.metadata.tables:
        return False
    meta_url, warehouse_url = db.engine.url, engine.url
    if (meta_url.get_backend_name(), meta_url.host, meta_url.port, meta_url.database) != (
        warehouse_url.get_backend_name(),
        warehouse_url.host,
        warehouse_url.port,
        warehouse_url.database,
    ):
        return False
    metadata_schema = "main" if is_sqlite(engine) else db.session.scalar(sa.text("SELECT current_schema()"))
    return schema == metadata_schema


def dataset_view(dataset: Dataset) -> dict:
    """A dataset's metadata with each column's effective sensitivity and strategy."""
    return {
        "dataset_id": dataset.id,
        "project_id": dataset.project_id,
        "name": dataset.name,
        "friendly_name": dataset.friendly_name,
        "description": dataset.description,
        "source": dataset.source,
        "row_count": dataset.row_count,
        "columns": column_views(dataset),
        "masking": dataset.masking or {},
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
    }


def column_views(dataset: Dataset) -> list[dict]:
    effective = effective_masking([c["name"] for c in dataset.columns], dataset.masking)
    views = []
    for column in dataset.columns:
        masking = effective[column["name"]]
        views.append({**column, "sensitivity": masking.sensitivity, "strategy": masking.strategy})
    return views


def settings_view(dataset: Dataset) -> dict:
    return {"friendly_name": dataset.friendly_name, "description": dataset.description, "masking": dataset.masking}


def check_masking(dataset: Dataset, masking: object) -> dict:
    """The masking overrides as `update_settings` would save them, or the 422 naming the column and key.

    A PUT's `masking` merges per column: each column sent replaces that column's override, `{column: null}` removes
    it (automatic classification by name again), and columns not sent keep theirs. Replacing the whole map would
    silently drop overrides the caller did not resend, and a column protected only by one would be served unmasked."""
    if not isinstance(masking, dict):
        return validate_masking_settings(masking)  # raises the 422 naming `masking`
    names = [c["name"] for c in dataset.columns]
    current = dict(dataset.masking or {})
    removed = set()
    for column, entry in masking.items():
        if entry is None:
            # A stale override (its column gone after a replace upload) may be removed too.
            if column not in names and column not in current:
                raise invalid(f"masking.{column}", "the dataset has no such column")
            removed.add(column)
    sent = validate_masking_settings({c: e for c, e in masking.items() if e is not None}, names)
    merged = {column: entry for column, entry in current.items() if column not in removed}
    merged.update(sent)
    return merged


def update_settings(dataset: Dataset, data: dict) -> Dataset:
    """Write only the fields in `data`; `masking` merges per column (see `check_masking`)."""
    if "masking" in data:
        dataset.masking = check_masking(dataset, data["masking"])
    for field in ("friendly_name", "description"):
        if field in data:
            setattr(dataset, field, data[field])
    db.session.commit()
    return dataset


def preview_dataset(engine: Engine, dataset: Dataset, role: str, limit: str | None, timeout_s: float) -> dict:
    """At most 100 rows of the dataset as `role` may see them; `limit` (1..100) is checked by the query engine."""
    try:
        list_columns(engine, dataset.schema_name, dataset.table_name)
    except TableNotFound:
        message = f"the warehouse table behind dataset {dataset.name!r} no longer exists"
        raise APIError(409, "table_missing", message) from None
    config = {
        "source": {"schema": dataset.schema_name, "table": dataset.table_name},
        "pagination": {"default_limit": PREVIEW_MAX_ROWS, "max_limit": PREVIEW_MAX_ROWS},
    }
    params = {} if limit is None else {"limit": limit}
    policy = preview_policy(role)
    result = run_query(engine, config, params, policy, Catalog([dataset]).masking(), timeout_s, "preview")
    return {
        "name": dataset.name,
        "columns": column_views(dataset),
        "rows": result["rows"],
        "count": result["count"],
        "limit": result["limit"],
        "masked": policy.masking_level == "masked",
    }
