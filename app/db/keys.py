"""Data-API keys: minted per published asset, stored only as a SHA-256 hash with a short prefix."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db.columns import JSONType, UTCDateTime, utcnow
from app.extensions import db


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_id: Mapped[int] = mapped_column(sa.ForeignKey("published_assets.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # After a rotation the old secret keeps working until previous_key_expires_at (the grace period).
    previous_key_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True, unique=True)
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rate_limit: Mapped[int] = mapped_column(default=100)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    masking_level: Mapped[str] = mapped_column(sa.String(10), default="masked")
    sensitivity_max: Mapped[str] = mapped_column(sa.String(10), default="medium")
    allowed_columns: Mapped[list] = mapped_column(JSONType, default=list)
    allowed_endpoints: Mapped[list | None] = mapped_column(JSONType)
    row_scope: Mapped[dict | None] = mapped_column(JSONType)
    # May pin a call to a published version with the X-Service-Version request header.
    can_force_version: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    is_active: Mapped[bool] = mapped_column(default=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
