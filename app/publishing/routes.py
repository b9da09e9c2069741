"""Published-asset routes: create, list, edit the draft, publish, unpublish, versions, rollback, diff."""

from flask import Blueprint, request

from app.auth.permissions import current_user, login_required, project_in_scope
from app.http import json_body, load_reporting_all
from app.openapi import doc
from app.publishing import service
from app.publishing.schemas import (
    AssetCreateSchema,
    AssetDetailSchema,
    AssetListQuerySchema,
    AssetListSchema,
    AssetSchema,
    AssetUpdateSchema,
    DeleteAssetQuerySchema,
    DeletedAssetListSchema,
    DiffSchema,
    PublishResultSchema,
    PublishSchema,
    RoutingSchema,
    RoutingStateSchema,
)

bp = Blueprint("publishing", __name__)


def _detail(asset) -> dict:
    body = AssetDetailSchema().dump(asset)
    body["versions"] = AssetDetailSchema().dump({"versions": service.list_versions(asset)})["versions"]
    return body


@bp.post("/api/publish/assets")
@doc(
    "Create a published asset as a draft (X-Project-Id required for api_service)",
    body=AssetCreateSchema,
    response=AssetSchema,
    status=201,
)
@login_required("project.edit")
def create_asset():
    data = AssetCreateSchema().load(json_body())
    project = project_in_scope("project.edit", required=False)
    return AssetSchema().dump(service.create_asset(current_user(), project, data)), 201


@bp.get("/api/publish/assets")
@doc(
    "List the organization's assets",
    response=AssetListSchema,
    query={"asset_type": "data_api | api_service", "status": "draft | published", "project_id": "a project id"},
)
@login_required("project.view")
def list_assets():
    args = AssetListQuerySchema().load(request.args.to_dict())
    items = service.list_assets(current_user(), args.get("asset_type"), args.get("status"), args.get("project_id"))
    return AssetListSchema().dump({"items": items})


@bp.get("/api/publish/assets/<int:asset_id>")
@doc("One asset with its versions, newest first", response=AssetDetailSchema)
@login_required()
def get_asset(asset_id: int):
    return _detail(service.get_asset(current_user(), asset_id))


@bp.put("/api/publish/assets/<int:asset_id>")
@doc(
    "Edit the draft; serving keeps the published version until the next publish",
    body=AssetUpdateSchema,
    response=AssetDetailSchema,
)
@login_required()
def update_asset(asset_id: int):
    user = current_user()
    asset = service.get_asset(user, asset_id, "project.edit")
    # Every mistake at once: the config's (checked against the warehouse and the models) with the other fields'.
    checks = {"config": lambda config: service.check_config(user, asset, config)}
    data = load_reporting_all(AssetUpdateSchema(), json_body(), checks)
    return _detail(service.update_asset(user, asset, data))


@bp.delete("/api/publish/assets/<int:asset_id>")
@doc(
    "Delete the asset with its versions and keys; 409 while published unless force=true (org admin). Its audit "
    "log stays readable by org admins at /api/api-services/{id}/logs",
    status=204,
    query={"force": "true deletes a published asset (org admin)"},
)
@login_required()
def delete_asset(asset_id: int):
    user = current_user()
    asset = service.get_asset(user, asset_id, "project.edit")
    args = DeleteAssetQuerySchema().load(request.args.to_dict())
    service.delete_asset(user, asset, force=args["force"])
    return "", 204


@bp.get("/api/publish/deleted-assets")
@doc(
    "Deleted assets of the organization, newest first (org admin): their audit logs stay readable",
    response=DeletedAssetListSchema,
)
@login_required("org.admin")
def list_deleted_assets():
    return DeletedAssetListSchema().dump({"items": service.list_deleted_assets(current_user())})


@bp.post("/api/publish/assets/<int:asset_id>/publish")
@doc(
    "Publish the draft as a new immutable version; a worker then indexes the warehouse columns its lookups and "
    "eq filters match on (GET /api/datasets/{name} lists them)",
    body=PublishSchema,
    response=PublishResultSchema,
)
@login_required()
def publish(asset_id: int):
    user = current_user()
    asset = service.get_asset(user, asset_id, "project.edit")
    data = PublishSchema().load(json_body() if request.get_data() else {})
    version = service.publish_asset(user, asset, data.get("change_note"), data["activate"])
    return PublishResultSchema().dump({"ok": True, "status": asset.status, "version": version})


def _routing_state(asset) -> dict:
    routing = service.current_routing(asset)
    body = routing.to_dict() if routing else {"strategy": "single", "entries": [], "shadow_version": None}
    body["changes"] = RoutingStateSchema().dump({"changes": service.routing_changes(asset)})["changes"]
    return body


@bp.get("/api/publish/assets/<int:asset_id>/routing")
@doc(
    "How traffic is split over the published versions, with the latest routing changes (who, when, before/after)",
    response=RoutingStateSchema,
)
@login_required()
def get_routing(asset_id: int):
    return _routing_state(service.get_asset(current_user(), asset_id, "project.edit"))


@bp.put("/api/publish/assets/<int:asset_id>/routing")
@doc(
    "Route traffic over published versions: single (one entry), random (by weight per call) or hash (by "
    "X-Dispatch-Key, sticky; no key falls back to random). Weights are positive and sum to 100 (422 naming the "
    "field); shadow_version (org admin) runs model and function calls again on that version after answering. "
    "Effective on the next call on every server; the newly routed versions' models are preloaded.",
    body=RoutingSchema,
    response=RoutingStateSchema,
)
@login_required()
def put_routing(asset_id: int):
    user = current_user()
    asset = service.get_asset(user, asset_id, "project.edit")
    service.set_routing(user, asset, json_body())
    return _routing_state(asset)


@bp.post("/api/publish/assets/<int:asset_id>/unpublish")
@doc("Stop serving the asset; it goes back to draft", response=PublishResultSchema)
@login_required()
def unpublish(asset_id: int):
    asset = service.get_asset(current_user(), asset_id, "project.edit")
    service.unpublish_asset(asset)
    return {"ok": True, "status": "draft"}


@bp.post("/api/publish/assets/<int:asset_id>/rollback/<int:version>")
@doc("Re-apply an old version as a new published version (org admin)", response=PublishResultSchema)
@login_required()
def rollback(asset_id: int, version: int):
    user = current_user()
    asset = service.get_asset(user, asset_id, "project.edit")
    new_version = service.rollback_asset(user, asset, version)
    return PublishResultSchema().dump({"ok": True, "status": "published", "version": new_version})


@bp.get("/api/publish/assets/<int:asset_id>/versions/<int:a>/diff/<int:b>")
@doc("What changed between two versions", response=DiffSchema)
@login_required()
def diff(asset_id: int, a: int, b: int):
    asset = service.get_asset(current_user(), asset_id)
    return DiffSchema().dump(service.diff_versions(asset, a, b))
