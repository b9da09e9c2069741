"""Audit retention: serving call records and refused-key records older than AUDIT_RETENTION_DAYS are deleted, a
batch at a time."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from app.db import AuditLog, AuthFailure
from app.db.columns import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

BATCH = 5000


def purge_audit_logs(retention_days: int) -> int:
    """Delete audit rows and refused-key records created more than `retention_days` days ago; returns how many
    audit rows were deleted. Small batches keep each transaction short, so serving's audit flushes never wait long
    on the table."""
    cutoff = utcnow() - timedelta(days=retention_days)
    deleted = _purge(AuditLog, cutoff)
    failures = _purge(AuthFailure, cutoff)
    if failures:
        log.info("deleted %d refused-key record(s) older than %d days", failures, retention_days)
    if deleted:
        log.info("deleted %d audit record(s) older than %d days", deleted, retention_days)
    return deleted


def _purge(model, cutoff) -> int:
    deleted = 0
    while True:
        ids = db.session.scalars(select(model.id).where(model.created_at < cutoff).limit(BATCH)).all()
        if not ids:
            return deleted
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
