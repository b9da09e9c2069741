"""A service's keys (mint with a copy-once reveal, revoke), its Test pane and its audit log."""

from __future__ import annotations

import logging
import time

from flask import flash, jsonify, redirect, render_template, request, url_for

from app.console.blueprint import bp, console_user, signed_in
from app.console.chart_views import log_histogram
from app.console.forms import FormErrors, comma_list, from_api_error, load, page_links, row_scope_from_text, text
from app.console.key_reveal import stash_reveal
from app.console.service_pages import endpoints_of, load_service, render_service
from app.errors import APIError
from app.keys import service as keys
from app.keys.schemas import KeyCreateSchema
from app.serving import service as serving
from app.serving.audit import list_logs
from app.serving.dispatch import Call
from app.serving.schemas import LogQuerySchema

KEY_FIELDS = ("name", "rate_limit", "expires_days", "masking_level", "sensitivity_max")
log = logging.getLogger(__name__)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/keys")
@signed_in
def mint_key(project_id: int, service_id: int):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    values = {name: text(request.form, name) for name in (*KEY_FIELDS, "allowed_columns")}
    values["row_scope"] = request.form.get("row_scope") or ""
    scope = request.form.getlist("allowed_endpoints")
    errors = FormErrors()
    body = {k: v for k, v in values.items() if v != "" and k not in ("allowed_columns", "row_scope")}
    body["allowed_endpoints"] = scope or None  # none checked = every endpoint
    body["allowed_columns"] = comma_list(values["allowed_columns"])  # empty = every column
    body["row_scope"] = row_scope_from_text(values["row_scope"])
    body["can_force_version"] = request.form.get("can_force_version") == "on"
    values["can_force_version"] = body["can_force_version"]
    data = load(KeyCreateSchema(), body, errors)
    if data is not None:
        try:
            key, secret = keys.mint_api_key(user, asset, data)
        except APIError as err:
            from_api_error(err, errors)
        else:
            # Post/redirect/get: the secret waits in Redis under a random one-time token (never in the URL or the
            # cookie) for the page the browser is sent to, which shows it once, at the top; a reload mints nothing.
            token = stash_reveal(user.id, asset.id, key.name, secret)
            if token is None:  # Redis is down: show it in this response, as before
                return render_service(project, asset, 201, revealed={"name": key.name, "secret": secret})
            url = url_for("console.service", project_id=project.id, service_id=asset.id, reveal=token)
            return redirect(url + "#key-reveal", 303)
    return render_service(project, asset, 422, key_errors=errors, key_values=values, key_scope=scope)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/keys/<int:key_id>/revoke")
@signed_in
def revoke_key(project_id: int, service_id: int, key_id: int):
    project, asset = load_service(project_id, service_id, "project.edit")
    keys.revoke_api_key(asset, key_id)
    flash("Key revoked: calls with it are refused from now on.", "success")
    return redirect(url_for("console.service", project_id=project.id, service_id=asset.id) + "#keys")


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/test")
@signed_in
def test_endpoint(project_id: int, service_id: int):
    """The Test pane: {endpoint_id, body} in; the dry run's status, JSON result and latency out."""
    user = console_user()
    _project, asset = load_service(project_id, service_id, "project.edit")
    sent = request.get_json(silent=True)
    if not isinstance(sent, dict) or not isinstance(sent.get("endpoint_id"), str):
        return jsonify({"status": 400, "latency_ms": 0, "body": {"error": {"message": "pick an endpoint"}}}), 200
    endpoint_id, payload = sent["endpoint_id"], sent.get("body")
    started = time.perf_counter()
    try:
        outcome = serving.dry_run(user, asset, endpoint_id, Call("POST", {}, payload))
        status, body = 200, outcome.body
    except APIError as err:
        status, body = err.status, err.body()
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return jsonify({"status": status, "latency_ms": latency_ms, "body": body})


LOG_FILTERS = ("endpoint_id", "key_id", "status", "errors_only", "since", "until", "version")
PAGE_SIZE = 50


@bp.get("/projects/<int:project_id>/settings/services/<int:service_id>/logs")
@signed_in
def service_logs(project_id: int, service_id: int):
    project, asset = load_service(project_id, service_id)
    values = {name: text(request.args, name) for name in (*LOG_FILTERS, "offset")}
    errors = FormErrors()
    query = {k: v for k, v in values.items() if v}
    filters = load(LogQuerySchema(), {**query, "limit": PAGE_SIZE}, errors)
    page = (
        list_logs(asset, filters) if filters is not None else {"items": [], "total": 0, "offset": 0, "limit": PAGE_SIZE}
    )
    histogram = log_histogram(asset, filters) if filters is not None and page["total"] else None
    key_names = {k.id: f"{k.name} ({k.prefix}…)" for k in keys.list_api_keys(asset)}
    pages = page_links(page, query, PAGE_SIZE)
    status = 422 if errors else 200
    return render_template(
        "console/logs.html",
        project=project,
        service=asset,
        page=page,
        values=values,
        errors=errors,
        endpoints=endpoints_of(asset),
        key_names=key_names,
        pages=pages,
        histogram=histogram,
    ), status
