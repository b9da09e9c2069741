"""Dataset routes: upload a CSV, register a warehouse table, list, metadata, settings and preview."""

from flask import Blueprint, current_app, request

from app.auth.permissions import current_user, login_required, project_in_scope
from app.datasets import service
from app.datasets.indexing import dataset_indexes
from app.datasets.schemas import (
    DatasetListSchema,
    DatasetSchema,
    PreviewSchema,
    RegisterTableSchema,
    SettingsSchema,
    UploadFormSchema,
)
from app.errors import invalid
from app.extensions import warehouse
from app.http import json_body, load_reporting_all
from app.openapi import doc

bp = Blueprint("datasets", __name__)


@bp.post("/api/datasets/file/upload")
@doc(
    "Upload a CSV file as a dataset (multipart: file, name, friendly_name, description, replace, types). `name`'s "
    "schema must be `uploads` (the default), another of UPLOAD_SCHEMAS (`marts`) or one an operator granted the "
    "organization: else 403 on `name`. More than UPLOAD_MAX_COLUMNS columns is a 400 `too_many_columns`",
    form=UploadFormSchema,
    files=("file",),
    response=DatasetSchema,
    status=201,
)
@login_required()
def upload_file():
    project = project_in_scope("project.edit")
    upload = request.files.get("file")
    if upload is None:
        raise invalid("file", "a CSV file is required in the multipart field 'file'")
    form = UploadFormSchema().load(request.form.to_dict())
    dataset = service.upload_dataset(
        warehouse.get(),
        project,
        upload,
        upload.filename or "",
        schema_prefix=current_app.config["WAREHOUSE_SCHEMA_PREFIX"],
        max_bytes=current_app.config["UPLOAD_MAX_BYTES"],
        created_by=current_user().id,
        **form,
    )
    return DatasetSchema().dump(service.dataset_view(dataset)), 201


@bp.post("/api/flow/datasets/register")
@doc(
    "Register a user table that already exists in the warehouse as a dataset (org admin; 403 for a table registered "
    "by another organization, and for a schema an operator did not grant the organization; 422 for the databases' "
    "catalogs, SQLite's sqlite_* tables and views)",
    body=RegisterTableSchema,
    response=DatasetSchema,
    status=201,
)
@login_required()
def register_table():
    project = project_in_scope("org.admin")
    data = RegisterTableSchema().load(json_body())
    dataset = service.register_dataset(
        warehouse.get(),
        project,
        timeout_s=current_app.config["STATEMENT_TIMEOUT_SECONDS"],
        created_by=current_user().id,
        requires_grant=current_app.config["REGISTER_REQUIRES_GRANT"],
        **data,
    )
    return DatasetSchema().dump(service.dataset_view(dataset)), 201


@bp.get("/api/datasets")
@doc("Datasets of the project", response=DatasetListSchema)
@login_required()
def list_datasets():
    project = project_in_scope("project.view")
    return DatasetListSchema().dump({"items": [service.dataset_view(d) for d in service.list_datasets(project)]})


@bp.get("/api/datasets/<name>")
@doc(
    "One dataset: columns with their effective masking, row count, masking overrides, and the table's indexes "
    "(those Apiary builds for published lookups and eq filters, and the others)",
    response=DatasetSchema,
)
@login_required()
def get_dataset(name: str):
    dataset = service.get_dataset(project_in_scope("project.view"), name)
    return DatasetSchema().dump({**service.dataset_view(dataset), "indexes": dataset_indexes(dataset)})


@bp.get("/api/datasets/<name>/settings")
@doc("A dataset's friendly name, description and masking overrides", response=SettingsSchema)
@login_required()
def get_settings(name: str):
    dataset = service.get_dataset(project_in_scope("project.view"), name)
    return SettingsSchema().dump(service.settings_view(dataset))


@bp.put("/api/datasets/<name>/settings")
@doc(
    "Change the fields sent (org admin); masking merges per column: each column sent replaces its override, "
    "{column: null} removes it (automatic classification again), other columns keep theirs",
    body=SettingsSchema,
    response=SettingsSchema,
)
@login_required()
def put_settings(name: str):
    dataset = service.get_dataset(project_in_scope("org.admin"), name)
    # The masking map's mistakes are reported together with the other fields'.
    data = load_reporting_all(SettingsSchema(), json_body(), {"masking": lambda m: service.check_masking(dataset, m)})
    return SettingsSchema().dump(service.settings_view(service.update_settings(dataset, data)))


@bp.get("/api/datasets/<name>/preview")
@doc(
    "At most 100 rows, masked for the caller's role",
    response=PreviewSchema,
    query={"limit": "rows to return, 1 to 100 (default 100)"},
)
@login_required()
def preview(name: str):
    dataset = service.get_dataset(project_in_scope("project.view"), name)
    body = service.preview_dataset(
        warehouse.get(),
        dataset,
        current_user().role,
        request.args.get("limit"),
        current_app.config["STATEMENT_TIMEOUT_SECONDS"],
    )
    return PreviewSchema().dump(body)
