"""A service's lifecycle in the console: version diff (side by side) and rollback, key edit and rotation, delete."""

from __future__ import annotations

import json

from flask import flash, redirect, render_template, request, url_for

from app.console.blueprint import bp, console_user, signed_in
from app.console.forms import FormErrors, comma_list, from_api_error, load, row_scope_from_text, row_scope_text, text
from app.console.service_pages import endpoints_of, load_service, render_service
from app.errors import APIError
from app.keys import service as keys
from app.keys.schemas import KeyRotateSchema, KeyUpdateSchema
from app.publishing import service as publishing


def _service_url(project, asset, anchor: str = "") -> str:
    return url_for("console.service", project_id=project.id, service_id=asset.id) + anchor


@bp.get("/projects/<int:project_id>/settings/services/<int:service_id>/versions/diff")
@signed_in
def version_diff(project_id: int, service_id: int):
    """Two versions side by side (`?a=&b=`, default: the two newest) with the changed paths between them."""
    project, asset = load_service(project_id, service_id)
    versions = publishing.list_versions(asset)
    numbers = [v.version for v in versions]
    try:
        a = int(request.args.get("a") or (numbers[1] if len(numbers) > 1 else numbers[0]))
        b = int(request.args.get("b") or numbers[0])
    except (ValueError, IndexError):
        flash("Publish at least one version to compare versions.", "error")
        return redirect(_service_url(project, asset, "#versions"))
    result = publishing.diff_versions(asset, a, b)
    changed = {change["path"].split(".")[0] for change in result["diff"]}
    return render_template(
        "console/version_diff.html",
        project=project,
        service=asset,
        versions=versions,
        a=a,
        b=b,
        result=result,
        left_json=json.dumps(result["left"], indent=2, sort_keys=True),
        right_json=json.dumps(result["right"], indent=2, sort_keys=True),
        changed=changed,
    )


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/rollback/<int:version>")
@signed_in
def rollback_service(project_id: int, service_id: int, version: int):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    try:
        new_version = publishing.rollback_asset(user, asset, version)
    except APIError as err:
        flash(f"Could not roll back to version {version}: {err.message}", "error")
    else:
        flash(f"Version {version} is published again as version {new_version}.", "success")
    return redirect(_service_url(project, asset, "#versions"))


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/delete")
@signed_in
def delete_service(project_id: int, service_id: int):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    title = asset.title
    try:
        publishing.delete_asset(user, asset, force=request.form.get("force") == "true")
    except APIError as err:
        flash(f"Could not delete {title}: {err.message}", "error")
        return redirect(_service_url(project, asset))
    flash(f"{title} is deleted with its versions and keys; its audit log stays readable by org admins.", "success")
    return redirect(url_for("console.settings", project_id=project.id) + "#services")


def _key_values(key) -> dict:
    return {
        "name": key.name,
        "rate_limit": str(key.rate_limit),
        "expires_days": "",
        "masking_level": key.masking_level,
        "sensitivity_max": key.sensitivity_max,
        "allowed_columns": ", ".join(key.allowed_columns or []),
        "row_scope": row_scope_text(key.row_scope),
    }


def _render_key_edit(project, asset, key, values, scope, errors, status=200):
    return render_template(
        "console/key_edit.html",
        project=project,
        service=asset,
        key=key,
        values=values,
        scope=scope,
        errors=errors,
        endpoints=endpoints_of(asset),
    ), status


@bp.route(
    "/projects/<int:project_id>/settings/services/<int:service_id>/keys/<int:key_id>/edit", methods=["GET", "POST"]
)
@signed_in
def edit_key(project_id: int, service_id: int, key_id: int):
    """Change a key's limits and scopes; effective on its next call on every server."""
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    key = keys.get_api_key(asset, key_id)
    if request.method == "GET":
        return _render_key_edit(project, asset, key, _key_values(key), key.allowed_endpoints or [], FormErrors())
    values = {
        name: text(request.form, name)
        for name in ("name", "rate_limit", "expires_days", "masking_level", "sensitivity_max", "allowed_columns")
    }
    values["row_scope"] = request.form.get("row_scope") or ""
    scope = request.form.getlist("allowed_endpoints")
    body = {k: v for k, v in values.items() if k in ("name", "rate_limit", "masking_level", "sensitivity_max")}
    if values["expires_days"] != "":  # empty: keep the current expiry
        body["expires_days"] = values["expires_days"]
    body["allowed_endpoints"] = scope or None
    body["allowed_columns"] = comma_list(values["allowed_columns"])
    body["row_scope"] = row_scope_from_text(values["row_scope"])
    errors = FormErrors()
    data = load(KeyUpdateSchema(partial=True), body, errors)
    if data is not None:
        try:
            keys.update_api_key(user, asset, key_id, data)
        except APIError as err:
            from_api_error(err, errors)
        else:
            flash(f"Key {data.get('name', key.name)} updated: its next call uses the new settings.", "success")
            return redirect(_service_url(project, asset, "#keys"))
    return _render_key_edit(project, asset, key, values, scope, errors, 422)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/keys/<int:key_id>/rotate")
@signed_in
def rotate_key(project_id: int, service_id: int, key_id: int):
    project, asset = load_service(project_id, service_id, "project.edit")
    keys.get_api_key(asset, key_id)  # another service's key is a 404, as in the API
    errors = FormErrors()
    raw = text(request.form, "grace_seconds") or "0"
    grace = int(raw) if raw.lstrip("-").isdigit() else raw  # the schema is strict: a number, or the error
    data = load(KeyRotateSchema(), {"grace_seconds": grace}, errors)
    if data is not None:
        try:
            key, secret = keys.rotate_api_key(asset, key_id, data["grace_seconds"])
        except APIError as err:
            from_api_error(err, errors)
        else:
            # Rendered in this response only, like a minted key: the secret is never stored or shown again.
            return render_service(
                project,
                asset,
                200,
                revealed={
                    "name": key.name,
                    "secret": secret,
                    "rotated": True,
                    "old_until": key.previous_key_expires_at,
                },
            )
    return render_service(project, asset, 422, key_errors=errors)
