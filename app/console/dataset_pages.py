"""A project's datasets: the list with a CSV upload (progress shown by the page's script), preview and masking."""

from __future__ import annotations

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for

from app.console.blueprint import bp, console_user, project_for, signed_in, wants_json
from app.console.forms import FormErrors, from_api_error, load, text
from app.datasets import service as datasets
from app.datasets.indexing import dataset_indexes
from app.datasets.schemas import SettingsSchema, UploadFormSchema
from app.errors import APIError
from app.extensions import warehouse
from app.query.masking import SENSITIVITY_LEVELS, STRATEGIES

UPLOAD_FIELDS = ("name", "friendly_name", "description")


def _list_page(project, errors: FormErrors, values: dict, status: int = 200):
    items = [datasets.dataset_view(d) for d in datasets.list_datasets(project)]
    return render_template(
        "console/datasets.html", project=project, datasets=items, errors=errors, values=values
    ), status


@bp.get("/projects/<int:project_id>/datasets")
@signed_in
def datasets_page(project_id: int):
    return _list_page(project_for(project_id), FormErrors(), {})


@bp.post("/projects/<int:project_id>/datasets")
@signed_in
def upload_dataset(project_id: int):
    project = project_for(project_id, "project.edit")
    errors = FormErrors()
    values = {name: text(request.form, name) for name in UPLOAD_FIELDS}
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        errors.add("file", "choose a CSV file to upload")
    form = {k: v for k, v in values.items() if v}
    form["replace"] = "true" if request.form.get("replace") else "false"
    data = load(UploadFormSchema(), form, errors)
    dataset = None
    if not errors:
        try:
            dataset = datasets.upload_dataset(
                warehouse.get(),
                project,
                upload.stream,
                upload.filename,
                schema_prefix=current_app.config["WAREHOUSE_SCHEMA_PREFIX"],
                max_bytes=current_app.config["UPLOAD_MAX_BYTES"],
                created_by=console_user().id,
                **data,
            )
        except APIError as err:
            from_api_error(err, errors)
    if dataset is not None:
        flash(f"Loaded {dataset.row_count} rows into {dataset.name}.", "success")
        target = url_for("console.dataset", project_id=project.id, name=dataset.name)
        return jsonify({"ok": True, "redirect": target}) if wants_json() else redirect(target)
    if wants_json():
        return jsonify({"ok": False, "errors": errors}), 422
    return _list_page(project, errors, values, 422)


def _profile(preview: dict | None) -> dict[str, dict]:
    """Per column, over the preview's rows (as the caller's role sees them): how many are filled, how many distinct
    values, and one example."""
    rows = (preview or {}).get("rows") or []
    profile = {}
    for column in (preview or {}).get("columns") or []:
        values = [row.get(column["name"]) for row in rows if row.get(column["name"]) not in (None, "")]
        profile[column["name"]] = {
            "filled": len(values),
            "distinct": len({str(v) for v in values}),
            "example": values[0] if values else None,
        }
    return profile


def _dataset_page(project, dataset, errors: FormErrors, status: int = 200):
    preview, preview_error = None, None
    try:
        preview = datasets.preview_dataset(
            warehouse.get(), dataset, console_user().role, None, current_app.config["STATEMENT_TIMEOUT_SECONDS"]
        )
    except APIError as err:
        preview_error = err.message
    return render_template(
        "console/dataset.html",
        project=project,
        dataset=datasets.dataset_view(dataset),
        indexes=_indexes(dataset),
        preview=preview,
        profile=_profile(preview),
        preview_error=preview_error,
        errors=errors,
        levels=SENSITIVITY_LEVELS,
        strategies=STRATEGIES,
    ), status


def _indexes(dataset) -> list[dict] | None:
    """The table's indexes for the page's Indexes block; None (shown as unavailable) if the warehouse fails."""
    try:
        return dataset_indexes(dataset)
    except APIError:
        return None


@bp.get("/projects/<int:project_id>/datasets/<name>")
@signed_in
def dataset(project_id: int, name: str):
    project = project_for(project_id)
    return _dataset_page(project, datasets.get_dataset(project, name), FormErrors())


@bp.post("/projects/<int:project_id>/datasets/<name>/settings")
@signed_in
def dataset_settings(project_id: int, name: str):
    project = project_for(project_id, "org.admin")  # the API's rule: masking is an organization admin's call
    found = datasets.get_dataset(project, name)
    masking = {}
    for i, column in enumerate(found.columns):
        entry = {
            key: request.form.get(f"{key}_{i}")
            for key in ("sensitivity", "strategy")
            if request.form.get(f"{key}_{i}")  # "" = automatic, by the column's name
        }
        # The form shows every column: "automatic" on both is null, which removes that column's override.
        masking[column["name"]] = entry or None
    data = {
        "friendly_name": text(request.form, "friendly_name"),
        "description": text(request.form, "description"),
        "masking": masking,
    }
    errors = FormErrors()
    checked = load(SettingsSchema(), data, errors)
    try:
        if checked is not None:
            datasets.update_settings(found, checked)
    except APIError as err:
        from_api_error(err, errors)
    if errors:
        return _dataset_page(project, found, errors, 422)
    flash("Settings saved: previews and keyed calls use the new masking at once.", "success")
    return redirect(url_for("console.dataset", project_id=project.id, name=found.name))
