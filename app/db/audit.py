"""The audit trail of serving calls, flushed from the Redis buffer by a worker."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.db.columns import JSONType, UTCDateTime
from app.extensions import db


class AuditLog(db.Model):
    __tablename__ = "audit_logs"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    org_id: Mapped[int | None] = mapped_column()
    project_id: Mapped[int | None] = mapped_column()
    asset_id: Mapped[int] = mapped_column()
    endpoint_id: Mapped[str | None] = mapped_column(sa.String(100))
    key_id: Mapped[int | None] = mapped_column()
    method: Mapped[str] = mapped_column(sa.String(10))
    status: Mapped[int] = mapped_column()
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    model_id: Mapped[int | None] = mapped_column()
    error_code: Mapped[str | None] = mapped_column(sa.String(60))
    context: Mapped[dict | None] = mapped_column(JSONType, nullable=True)  # a model call's caller context
    version: Mapped[int | None] = mapped_column()  # the published version that answered (or ran the shadow call)
    shadow: Mapped[bool] = mapped_column(default=False, server_default=sa.false())  # a shadow run, never answered
    call_id: Mapped[str | None] = mapped_column(sa.String(32))  # pairs a call with its shadow run
    summary: Mapped[dict | None] = mapped_column(JSONType, nullable=True)  # the answer in brief (predictions, digest)

    __table_args__ = (
        sa.Index("ix_audit_logs_asset_created", "asset_id", "created_at"),
        sa.Index("ix_audit_logs_asset_version", "asset_id", "version"),
    )
