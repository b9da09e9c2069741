"""The published-asset lifecycle: draft edits, publish as an immutable version, unpublish, rollback, diff."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import delete, func, select

from app.auth.permissions import has_permission, require_permission
from app.datasets.indexing import queue_index_build
from app.db import ApiKey, AssetVersion, DeletedAsset, MLModel, Project, PublishedAsset, RoutingChange, User
from app.errors import APIError, conflict, invalid, not_found
from app.extensions import db
from app.publishing.asset_config import validate_asset_config
from app.publishing.diff import diff_documents
from app.publishing.endpoint_config import endpoints_in
from app.publishing.routing import Routing, parse_routing, single, stored_routing
from app.serving.cache import result_cache
from app.serving.state import bump_serving_generation

log = logging.getLogger(__name__)


PRESENTATION_FIELDS = ("theme", "icon", "sort_order", "is_public", "roles")


def visible_to(user: User, asset: PublishedAsset) -> bool:
    """Whether the asset shows for the user: `roles` empty means every role; org admins always see every asset."""
    return not asset.roles or user.role in asset.roles or has_permission(user, "org.admin")


def get_asset(user: User, asset_id: int, permission: str = "project.view") -> PublishedAsset:
    """An asset of the caller's organization that the caller's role sees (404 otherwise) and may `permission`."""
    asset = db.session.get(PublishedAsset, asset_id)
    if asset is None or asset.org_id != user.org_id or not visible_to(user, asset):
        raise not_found("asset")
    require_permission(user, permission)
    return asset


def list_assets(user: User, asset_type: str | None, status: str | None, project_id: int | None) -> list[PublishedAsset]:
    """The organization's assets the user's role sees, ordered by sort_order, then title."""
    stmt = (
        select(PublishedAsset)
        .where(PublishedAsset.org_id == user.org_id)
        .order_by(PublishedAsset.sort_order, PublishedAsset.title, PublishedAsset.id)
    )
    if asset_type:
        stmt = stmt.where(PublishedAsset.asset_type == asset_type)
    if status:
        stmt = stmt.where(PublishedAsset.status == status)
    if project_id is not None:
        stmt = stmt.where(PublishedAsset.project_id == project_id)
    return [asset for asset in db.session.scalars(stmt) if visible_to(user, asset)]


def create_asset(user: User, project: Project | None, data: dict) -> PublishedAsset:
    if data["asset_type"] == "api_service" and project is None:
        raise APIError(
            400,
            "validation_error",
            "X-Project-Id header is required for an api_service",
            {"fields": {"X-Project-Id": ["required for api_service"]}},
        )
    if db.session.scalar(select(PublishedAsset.id).where(PublishedAsset.asset_key == data["asset_key"])):
        raise conflict(
            f"asset_key {data['asset_key']!r} is already taken", {"fields": {"asset_key": ["already taken"]}}
        )
    config = validate_asset_config(data["asset_type"], data["config"], user, project, previous=None)
    asset = PublishedAsset(
        id=_unused_asset_id(),
        org_id=user.org_id,
        project_id=project.id if project else None,
        asset_type=data["asset_type"],
        asset_key=data["asset_key"],
        title=data["title"],
        description=data.get("description", ""),
        config=config,
        status="draft",
        created_by=user.id,
        theme=data.get("theme") or {},
        icon=data.get("icon") or "",
        sort_order=data.get("sort_order") or 0,
        is_public=bool(data.get("is_public")),
        roles=_roles(data.get("roles")),
    )
    db.session.add(asset)
    db.session.commit()
    return asset


def _roles(roles: list[str] | None) -> list[str]:
    return list(dict.fromkeys(roles or []))


def _unused_asset_id() -> int | None:
    """None (the database numbers it) except on SQLite, which hands a deleted row's id out again: there the id goes
    past every deleted asset's, so a new asset never inherits a deleted one's audit log."""
    if db.session.get_bind().dialect.name != "sqlite":
        return None
    last_deleted = db.session.scalar(select(func.max(DeletedAsset.id)))
    last_live = db.session.scalar(select(func.max(PublishedAsset.id)))
    if last_deleted is None or (last_live or 0) > last_deleted:
        return None
    return last_deleted + 1


def _project_of(asset: PublishedAsset) -> Project | None:
    return db.session.get(Project, asset.project_id) if asset.project_id else None


def check_config(user: User, asset: PublishedAsset, config: object) -> dict:
    """The config as `update_asset` would save it, or the 400/422 naming its field."""
    if not isinstance(config, dict):
        raise invalid("config", "expected an object")
    return validate_asset_config(asset.asset_type, config, user, _project_of(asset), asset.config)


def update_asset(user: User, asset: PublishedAsset, data: dict) -> PublishedAsset:
    """Edit the draft; what is served stays the published version until the next publish."""
    if "config" in data:
        asset.config = validate_asset_config(asset.asset_type, data["config"], user, _project_of(asset), asset.config)
    for field in ("title", "description", "theme", "icon", "sort_order", "is_public"):
        if field in data:
            setattr(asset, field, data[field])
    if "roles" in data:
        asset.roles = _roles(data["roles"])
    if data.get("change_note"):
        asset.draft_note = data["change_note"]
    db.session.commit()
    return asset


def _next_version(asset: PublishedAsset) -> int:
    current = db.session.scalar(select(func.max(AssetVersion.version)).where(AssetVersion.asset_id == asset.id))
    return (current or 0) + 1


def _snapshot(
    user: User, asset: PublishedAsset, config: dict, title: str, description: str, note: str, activate: bool = True
) -> int:
    """A new immutable version; with `activate` it takes all the traffic (the routing goes back to `single` on it),
    without it the version waits for a routing change to send it any."""
    before = current_routing(asset)
    version = AssetVersion(
        asset_id=asset.id,
        version=_next_version(asset),
        title=title,
        description=description,
        config=config,
        published_by=user.username,
        change_note=note,
    )
    db.session.add(version)
    asset.draft_note = ""
    if activate:
        asset.status = "published"
        asset.published_version = version.version
        asset.routing = None
        _record_routing_change(user, asset, before, single(version.version), f"publish version {version.version}")
    db.session.commit()
    _invalidate_cache(asset.id)
    queue_index_build(asset)
    warm_versions(asset, [version.version])
    return version.version


def publish_asset(user: User, asset: PublishedAsset, change_note: str | None, activate: bool = True) -> int:
    """Publish the draft as a new version; `activate=False` makes the version without routing traffic to it (the
    asset must already serve a version, 409 otherwise)."""
    if not activate and (asset.status != "published" or asset.published_version is None):
        raise conflict("activate=false needs a published asset: publish a first version with activate=true")
    # Tables, columns and models may have changed since the draft was saved: check again.
    config = validate_asset_config(asset.asset_type, asset.config, user, _project_of(asset), asset.config)
    note = change_note if change_note is not None else asset.draft_note
    return _snapshot(user, asset, config, asset.title, asset.description, note or "", activate)


def current_routing(asset: PublishedAsset) -> Routing | None:
    """The routing in force (None before a first publish): `single` on published_version unless set otherwise."""
    return stored_routing(asset.routing, asset.published_version)


def _published_versions(asset: PublishedAsset) -> set[int]:
    return set(db.session.scalars(select(AssetVersion.version).where(AssetVersion.asset_id == asset.id)))


def _record_routing_change(user: User, asset: PublishedAsset, before: Routing | None, after: Routing, why: str):
    if before == after:
        return
    db.session.add(
        RoutingChange(
            asset_id=asset.id,
            changed_by=user.username,
            before=before.to_dict() if before else {},
            after=after.to_dict(),
            reason=why[:200],
        )
    )


def set_routing(user: User, asset: PublishedAsset, body: object) -> Routing:
    """Replace the routing (422 naming the field; every version named must be a version of this asset). Setting or
    changing the shadow version needs org.admin. Effective on the next call on every server; the newly routed
    versions' models are preloaded on the predict workers."""
    if asset.published_version is None:
        raise conflict("publish a first version before routing traffic")
    routing = parse_routing(body, _published_versions(asset))
    before = current_routing(asset)
    if routing.shadow_version is not None and routing.shadow_version != (before.shadow_version if before else None):
        require_permission(user, "org.admin")
    asset.routing = routing.to_dict()
    asset.published_version = routing.primary
    _record_routing_change(user, asset, before, routing, "routing")
    db.session.commit()
    _invalidate_cache(asset.id)
    fresh = set(routing.versions) | ({routing.shadow_version} if routing.shadow_version else set())
    warm_versions(asset, sorted(fresh - set(before.versions if before else ())))
    return routing


def routing_changes(asset: PublishedAsset, limit: int = 50) -> list[RoutingChange]:
    stmt = (
        select(RoutingChange)
        .where(RoutingChange.asset_id == asset.id)
        .order_by(RoutingChange.changed_at.desc(), RoutingChange.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def warm_versions(asset: PublishedAsset, versions: list[int]) -> None:
    """Ask every predict worker to load the models these versions score with (a broadcast, never waited for)."""
    if asset.asset_type != "api_service" or not versions:
        return
    model_ids = set()
    for number in versions:
        config = db.session.scalar(
            select(AssetVersion.config).where(AssetVersion.asset_id == asset.id, AssetVersion.version == number)
        )
        for endpoint in endpoints_in(config):
            if endpoint.kind == "model" and endpoint.model_id is not None:
                model_ids.add(int(endpoint.model_id))
    if model_ids:
        broadcast_preload(sorted(model_ids))


def broadcast_preload(model_ids: list[int]) -> None:
    """Send `PREDICT_WARM_COPIES` preload tasks (one per predict process) naming these models; sent by name, so the
    web process imports no task module (and never scikit-learn). A failure to send never fails the publish."""
    rows = db.session.execute(
        select(MLModel.id, MLModel.artifact_path, MLModel.artifact_sha256, MLModel.sklearn_version).where(
            MLModel.id.in_(model_ids)
        )
    ).all()
    models = [
        {
            "id": row.id,
            "artifact_path": row.artifact_path,
            "artifact_sha256": row.artifact_sha256,
            "sklearn_version": row.sklearn_version,
        }
        for row in rows
        if row.artifact_path and row.artifact_sha256
    ]
    if not models:
        return
    celery = current_app.extensions["celery"]
    try:
        for _ in range(max(0, int(current_app.config["PREDICT_WARM_COPIES"]))):
            celery.send_task("tasks.predict.preload", args=[models], queue="predict", expires=60)
    except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the switch itself is committed
        log.warning("could not send the preload of models %s: %s", model_ids, exc)


def unpublish_asset(asset: PublishedAsset) -> None:
    asset.status = "draft"
    db.session.commit()
    _invalidate_cache(asset.id)


def get_version(asset: PublishedAsset, version: int) -> AssetVersion:
    row = db.session.scalar(
        select(AssetVersion).where(AssetVersion.asset_id == asset.id, AssetVersion.version == version)
    )
    if row is None:
        raise not_found(f"version {version}")
    return row


def rollback_asset(user: User, asset: PublishedAsset, version: int) -> int:
    """Re-apply an old version as a new published version (and as the draft)."""
    require_permission(user, "org.admin")
    old = get_version(asset, version)
    config = validate_asset_config(asset.asset_type, old.config, user, _project_of(asset), asset.config)
    asset.config, asset.title, asset.description = config, old.title, old.description
    return _snapshot(user, asset, config, old.title, old.description, f"rollback to version {version}", True)


def list_versions(asset: PublishedAsset) -> list[AssetVersion]:
    stmt = select(AssetVersion).where(AssetVersion.asset_id == asset.id).order_by(AssetVersion.version.desc())
    return list(db.session.scalars(stmt))


def draft_differs(asset: PublishedAsset) -> bool:
    """Whether publishing now would change what is served (the draft is not the published version)."""
    live = published_snapshot(asset)
    if live is None:
        return True
    return (live.config, live.title, live.description) != (asset.config, asset.title, asset.description)


def published_snapshot(asset: PublishedAsset) -> AssetVersion | None:
    if asset.status != "published" or asset.published_version is None:
        return None
    return get_version(asset, asset.published_version)


def diff_versions(asset: PublishedAsset, a: int, b: int) -> dict:
    def document(v: AssetVersion) -> dict:
        return {"version": v.version, "title": v.title, "description": v.description, "config": v.config}

    left, right = document(get_version(asset, a)), document(get_version(asset, b))
    changes = diff_documents(
        {k: v for k, v in left.items() if k != "version"}, {k: v for k, v in right.items() if k != "version"}
    )
    return {"left": left, "right": right, "diff": changes}


def delete_asset(user: User, asset: PublishedAsset, force: bool = False) -> DeletedAsset:
    """Delete the asset with its versions and keys in one transaction. A published asset is a 409 unless `force`,
    which needs org.admin. The audit rows stay (they are kept by asset id and org, without a foreign key), and a
    DeletedAsset row records the deletion so org admins can still find and read that log."""
    if asset.status == "published":
        if not force:
            raise conflict(
                f"asset {asset.asset_key!r} is published: unpublish it first, or delete with force=true (org admin)"
            )
        require_permission(user, "org.admin")
    tombstone = DeletedAsset(
        id=asset.id,
        org_id=asset.org_id,
        project_id=asset.project_id,
        asset_type=asset.asset_type,
        asset_key=asset.asset_key,
        title=asset.title,
        last_version=db.session.scalar(select(func.max(AssetVersion.version)).where(AssetVersion.asset_id == asset.id)),
        deleted_by=user.username,
    )
    try:
        db.session.execute(delete(ApiKey).where(ApiKey.asset_id == asset.id))
        db.session.execute(delete(RoutingChange).where(RoutingChange.asset_id == asset.id))
        db.session.execute(delete(AssetVersion).where(AssetVersion.asset_id == asset.id))
        db.session.delete(asset)
        db.session.add(tombstone)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _invalidate_cache(tombstone.id)
    log.info("asset %s (%s) deleted by %s", tombstone.id, tombstone.asset_key, user.username)
    return tombstone


def deleted_asset(user: User, asset_id: int) -> DeletedAsset:
    """A deleted asset of the caller's organization, for org admins (its audit log); 404 otherwise."""
    row = db.session.get(DeletedAsset, asset_id)
    if row is None or row.org_id != user.org_id:
        raise not_found("asset")
    require_permission(user, "org.admin")
    return row


def asset_for_logs(user: User, asset_id: int) -> PublishedAsset | DeletedAsset:
    """Whose audit log to read: a live asset the caller may view, or (for org admins) a deleted asset of their org."""
    if db.session.get(PublishedAsset, asset_id) is not None:
        return get_asset(user, asset_id, "project.view")
    return deleted_asset(user, asset_id)


def payloads_visible(user: User) -> bool:
    """Whether the reader sees the request and answer payloads in an audit log. They are what a key saw (unmasked for
    an unmasked key), so only org admins, who see every value anyway, read them; others get the records without."""
    return has_permission(user, "org.admin")


def list_deleted_assets(user: User) -> list[DeletedAsset]:
    require_permission(user, "org.admin")
    stmt = select(DeletedAsset).where(DeletedAsset.org_id == user.org_id).order_by(DeletedAsset.deleted_at.desc())
    return list(db.session.scalars(stmt))


def _invalidate_cache(asset_id: int) -> None:
    result_cache().invalidate_asset(asset_id)
    # Published configs are cached per process: every server drops them on its next keyed call.
    bump_serving_generation()
