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
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(sa.String(256), nullable=True)
    timing: Mapped[dict | None] = mapped_column(JSONType, nullable=True)  # {auth, ..., total} in ms
    # Endpoints with `log: "payload"`: the request and the answer as JSON text, clipped at AUDIT_PAYLOAD_MAX_BYTES.
    request_payload: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    response_payload: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    __table_args__ = (
        sa.Index("ix_audit_logs_asset_created", "asset_id", "created_at"),
        sa.Index("ix_audit_logs_asset_version", "asset_id", "version"),
    )


class AuthFailure(db.Model):
    """Refused API keys (unknown, revoked, expired, another asset's): one row per client address, key prefix, route
    and reason per minute, with how many attempts it stands for. Never the secret: only its public prefix."""

    __tablename__ = "auth_failures"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the first attempt of the minute
    org_id: Mapped[int | None] = mapped_column()  # the organization targeted (or owning the key); None: nobody's
    asset_id: Mapped[int | None] = mapped_column()
    key_prefix: Mapped[str | None] = mapped_column(sa.String(16))
    client_ip: Mapped[str | None] = mapped_column(sa.String(64))
    route: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(40))
    count: Mapped[int] = mapped_column(default=1)

    __table_args__ = (sa.Index("ix_auth_failures_org_created", "org_id", "created_at"),)
