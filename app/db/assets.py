"""Published assets (data APIs and API services) and their immutable published versions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db.columns import JSONType, UTCDateTime, utcnow
from app.extensions import db

ASSET_TYPES = ("data_api", "api_service")


class PublishedAsset(db.Model):
    """The draft lives on this row; serving reads only the AssetVersion named by published_version."""

    __tablename__ = "published_assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    asset_type: Mapped[str] = mapped_column(sa.String(20))
    asset_key: Mapped[str] = mapped_column(sa.String(100), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    config: Mapped[dict] = mapped_column(JSONType, default=dict)
    draft_note: Mapped[str] = mapped_column(sa.Text, default="")
    # Presentation and visibility, as Honeyframe clients send them; none of them changes what serving needs.
    theme: Mapped[dict] = mapped_column(JSONType, default=dict)
    icon: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    is_public: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    roles: Mapped[list] = mapped_column(JSONType, default=list)  # org roles that see it; [] = every role
    status: Mapped[str] = mapped_column(sa.String(20), default="draft")
    published_version: Mapped[int | None] = mapped_column()
    # How traffic is split over published versions (app/publishing/routing.py); None: all of it on published_version.
    routing: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        sa.CheckConstraint(f"asset_type IN {ASSET_TYPES}", name="ck_published_assets_type"),
        sa.CheckConstraint("status IN ('draft', 'published')", name="ck_published_assets_status"),
    )


class AssetVersion(db.Model):
    __tablename__ = "asset_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("published_assets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    config: Mapped[dict] = mapped_column(JSONType)
    published_by: Mapped[str] = mapped_column(sa.String(80))
    change_note: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (sa.UniqueConstraint("asset_id", "version", name="uq_asset_versions_asset_version"),)


class RoutingChange(db.Model):
    """Who changed an asset's routing, when, and what it was before and after (publishing with activate too)."""

    __tablename__ = "routing_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("published_assets.id", ondelete="CASCADE"), index=True)
    changed_by: Mapped[str] = mapped_column(sa.String(80))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    before: Mapped[dict] = mapped_column(JSONType)
    after: Mapped[dict] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(sa.String(200), default="")


class DeletedAsset(db.Model):
    """What remains of a deleted asset: who deleted it and when, so its audit rows (kept by asset id and org) stay
    findable and readable by the organization's admins until the audit retention purges them."""

    __tablename__ = "deleted_assets"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # the deleted asset's id
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int | None] = mapped_column()
    asset_type: Mapped[str] = mapped_column(sa.String(20))
    asset_key: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str] = mapped_column(sa.String(200))
    last_version: Mapped[int | None] = mapped_column()
    deleted_by: Mapped[str] = mapped_column(sa.String(80))
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
