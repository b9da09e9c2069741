"""The published-asset lifecycle: draft edits, publish as an immutable version, unpublish, rollback, diff."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from app.auth.permissions import require_permission
from app.db import AssetVersion, Project, PublishedAsset, User
from app.errors import APIError, invalid, not_found
from app.extensions import db
from app.publishing.diff import diff_documents
from app.serving.asset_config import validate_asset_config

log = logging.getLogger(__name__)


def get_asset(user: User, asset_id: int, permission: str = "project.view") -> PublishedAsset:
    """An asset of the caller's organization (404 otherwise) that the caller may `permission`."""
    asset = db.session.get(PublishedAsset, asset_id)
    if asset is None or asset.org_id != user.org_id:
        raise not_found("asset")
    require_permission(user, permission)
    return asset


def list_assets(user: User, asset_type: str | None, status: str | None, project_id: int | None) -> list[PublishedAsset]:
    stmt = select(PublishedAsset).where(PublishedAsset.org_id == user.org_id).order_by(PublishedAsset.id)
    if asset_type:
        stmt = stmt.where(PublishedAsset.asset_type == asset_type)
    if status:
        stmt = stmt.where(PublishedAsset.status == status)
    if project_id is not None:
        stmt = stmt.where(PublishedAsset.project_id == project_id)
    return list(db.session.scalars(stmt))


def create_asset(user: User, project: Project | None, data: dict) -> PublishedAsset:
    if data["asset_type"] == "api_service" and project is None:
        raise APIError(400, "validation_error", "X-Project-Id header is required for an api_service",
                       {"fields": {"X-Project-Id": ["required for api_service"]}})  # fmt: skip
    if db.session.scalar(select(PublishedAsset.id).where(PublishedAsset.asset_key == data["asset_key"])):
        raise APIError(409, "conflict", f"asset_key {data['asset_key']!r} is already taken",
                       {"fields": {"asset_key": ["already taken"]}})  # fmt: skip
    config = validate_asset_config(data["asset_type"], data["config"], user, project, previous=None)
    asset = PublishedAsset(
        org_id=user.org_id,
        project_id=project.id if project else None,
        asset_type=data["asset_type"],
        asset_key=data["asset_key"],
        title=data["title"],
        description=data.get("description", ""),
        config=config,
        status="draft",
        created_by=user.id,
    )
    db.session.add(asset)
    db.session.commit()
    return asset


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
    for field in ("title", "description"):
        if field in data:
            setattr(asset, field, data[field])
    if data.get("change_note"):
        asset.draft_note = data["change_note"]
    db.session.commit()
    return asset


def _next_version(asset: PublishedAsset) -> int:
    current = db.session.scalar(select(func.max(AssetVersion.version)).where(AssetVersion.asset_id == asset.id))
    return (current or 0) + 1


def _snapshot(user: User, asset: PublishedAsset, config: dict, title: str, description: str, note: str) -> int:
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
    asset.status = "published"
    asset.published_version = version.version
    asset.draft_note = ""
    db.session.commit()
    _invalidate_cache(asset.id)
    return version.version


def publish_asset(user: User, asset: PublishedAsset, change_note: str | None) -> int:
    # Tables, columns and models may have changed since the draft was saved: check again.
    config = validate_asset_config(asset.asset_type, asset.config, user, _project_of(asset), asset.config)
    note = change_note if change_note is not None else asset.draft_note
    return _snapshot(user, asset, config, asset.title, asset.description, note or "")


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
    return _snapshot(user, asset, config, old.title, old.description, f"rollback to version {version}")


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


def _invalidate_cache(asset_id: int) -> None:
    from app.serving.cache import result_cache

    result_cache().invalidate_asset(asset_id)
    # Published configs are cached per process: every server drops them on its next keyed call.
    from app.serving.state import bump_serving_generation

    bump_serving_generation()
