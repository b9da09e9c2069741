"""An API service's Manage panel: endpoints (read-modify-write of the draft config), publish and unpublish."""

from __future__ import annotations

import copy
import json

from flask import flash, redirect, render_template, request, url_for

from app.console.blueprint import bp, can, console_user, project_for, signed_in
from app.console.chart_views import service_traffic
from app.console.endpoint_form import (
    KIND_LABELS,
    KINDS,
    POLICIES,
    endpoint_from_form,
    enrichment_error_paths,
    enrichment_values,
    form_values,
    posted_values,
)
from app.console.forms import FormErrors, from_api_error
from app.console.key_reveal import take_reveal
from app.datasets import service as datasets
from app.db import Project, PublishedAsset
from app.errors import APIError, not_found
from app.keys import service as keys
from app.publishing import service as publishing
from app.publishing.endpoint_config import endpoint_dicts, endpoint_index, endpoint_of, endpoints_in
from app.registry import service as models
from app.serving.traffic import WINDOWS


def load_service(project_id: int, service_id: int, permission: str = "project.view") -> tuple[Project, PublishedAsset]:
    """The project's API service, with the same checks as the API (404 outside the org or project, 403 by role)."""
    project = project_for(project_id)
    asset = publishing.get_asset(console_user(), service_id, permission)
    if asset.project_id != project.id or asset.asset_type != "api_service":
        raise not_found("api service")
    return project, asset


def endpoints_of(asset: PublishedAsset) -> list[dict]:
    """The draft's endpoints as saved, for the templates."""
    return endpoint_dicts(asset.config)


def _editor_choices(project: Project) -> dict:
    return {"datasets": datasets.list_datasets(project), "models": models.list_models(project, None)}


def _test_examples(asset: PublishedAsset, models: list) -> dict[str, str]:
    """A starting JSON for the Test pane per endpoint: its parameters, or the model's features."""
    features = {m.id: m.feature_columns for m in models}
    examples = {}
    for ep in endpoints_in(asset.config):
        if ep.kind == "lookup":
            example = {ep.key_param: ""}
        elif ep.kind == "sql":
            filters = (ep.query or {}).get("filters") or []
            example = {f["param"]: "" for f in filters if isinstance(f, dict) and f.get("param")}
        elif ep.kind == "model":
            example = {"features": {name: None for name in features.get(ep.model_id, [])}}
        else:
            example = {}
        examples[ep.id] = json.dumps(example, indent=2)
    return examples


def render_service(project: Project, asset: PublishedAsset, status: int = 200, **context):
    """The Manage panel; `context` may carry editor values and errors, key errors or a freshly minted key."""
    editing = context.pop("editing", None)
    window = context.pop("window", None)
    context["traffic"] = service_traffic(asset, window if window in WINDOWS else "day")
    if "editor" not in context:
        current = endpoint_of(asset.config, editing) if editing else None
        context["editor"] = form_values(current.raw if current else None)
        context["original_id"] = current.id if current else ""
    context.setdefault("editor_errors", FormErrors())
    context.setdefault("key_errors", FormErrors())
    context.setdefault(
        "key_values",
        {
            "name": "",
            "rate_limit": "100",
            "expires_days": "90",
            "masking_level": "masked",
            "sensitivity_max": "medium",
            "allowed_columns": "",
            "row_scope": "",
        },
    )
    api_keys = keys.list_api_keys(asset) if can("project.edit") else []
    choices = _editor_choices(project)
    return render_template(
        "console/service.html",
        project=project,
        service=asset,
        endpoints=endpoints_of(asset),
        versions=publishing.list_versions(asset),
        draft_changed=publishing.draft_differs(asset),
        api_keys=api_keys,
        kinds=KINDS,
        kind_labels=KIND_LABELS,
        policies=POLICIES,
        blank_enrichment=enrichment_values(None),
        examples=_test_examples(asset, choices["models"]),
        **choices,
        **context,
    ), status


@bp.get("/projects/<int:project_id>/settings/services/<int:service_id>")
@signed_in
def service(project_id: int, service_id: int):
    project, asset = load_service(project_id, service_id)
    context = {}
    if request.args.get("reveal"):  # the page a key mint redirected to: its secret, this once
        context["revealed"] = take_reveal(request.args["reveal"], console_user().id, asset.id)
        context["reveal_gone"] = context["revealed"] is None
    return render_service(
        project, asset, editing=request.args.get("edit"), window=request.args.get("window"), **context
    )


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/endpoints")
@signed_in
def save_endpoint(project_id: int, service_id: int):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    values = posted_values(request.form)
    original_id = request.form.get("original_id") or ""
    config = copy.deepcopy(asset.config or {"endpoints": []})
    endpoints = config.setdefault("endpoints", [])
    index = endpoint_index(config, original_id) if original_id else None
    errors = FormErrors()
    endpoint = endpoint_from_form(values, endpoints[index] if index is not None else None, errors)
    if endpoint is not None:
        if index is None:
            index = len(endpoints)
            endpoints.append(endpoint)
        else:
            endpoints[index] = endpoint
        try:
            publishing.update_asset(user, asset, {"config": config})
        except APIError as err:
            prefix = f"config.endpoints[{index}]."
            if isinstance(err.details, dict) and isinstance(err.details.get("fields"), dict):
                blocks = values.get("_enrichment_blocks") or []
                err.details = {**err.details, "fields": enrichment_error_paths(err.details["fields"], prefix, blocks)}
            from_api_error(err, errors, field_for={"enrichments": ""}, prefix=prefix)
        else:
            flash(f"Endpoint {endpoint['id']} saved to the draft. Publish to serve it.", "success")
            return redirect(url_for("console.service", project_id=project.id, service_id=asset.id) + "#endpoints")
    return render_service(project, asset, 422, editor=values, editor_errors=errors, original_id=original_id)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/endpoints/<endpoint_id>/delete")
@signed_in
def remove_endpoint(project_id: int, service_id: int, endpoint_id: str):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    config = copy.deepcopy(asset.config or {})
    kept = [ep for ep in config.get("endpoints", []) if ep.get("id") != endpoint_id]
    if len(kept) == len(config.get("endpoints", [])):
        raise not_found(f"endpoint {endpoint_id!r}")
    try:
        publishing.update_asset(user, asset, {"config": {**config, "endpoints": kept}})
    except APIError as err:
        flash(f"Could not remove {endpoint_id}: {err.message}", "error")
    else:
        flash(f"Endpoint {endpoint_id} removed from the draft. Publish to stop serving it.", "success")
    return redirect(url_for("console.service", project_id=project.id, service_id=asset.id) + "#endpoints")


def _back(project: Project, asset: PublishedAsset):
    if request.form.get("back") == "settings":
        return redirect(url_for("console.settings", project_id=project.id) + "#services")
    return redirect(url_for("console.service", project_id=project.id, service_id=asset.id))


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/publish")
@signed_in
def publish_service(project_id: int, service_id: int):
    user = console_user()
    project, asset = load_service(project_id, service_id, "project.edit")
    try:
        version = publishing.publish_asset(user, asset, request.form.get("change_note") or None)
    except APIError as err:
        flash(f"Could not publish {asset.title}: {err.message}", "error")
    else:
        flash(f"{asset.title} is published as version {version}: its endpoints answer keyed calls.", "success")
    return _back(project, asset)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/unpublish")
@signed_in
def unpublish_service(project_id: int, service_id: int):
    project, asset = load_service(project_id, service_id, "project.edit")
    publishing.unpublish_asset(asset)
    flash(f"{asset.title} is back to draft: its endpoints no longer answer.", "success")
    return _back(project, asset)
