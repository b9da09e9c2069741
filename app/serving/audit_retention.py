"""Audit retention: serving call records older than AUDIT_RETENTION_DAYS are deleted, a batch at a time."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select

from app.db import AuditLog
from app.db.columns import utcnow
from app.extensions import db

log = logging.getLogger(__name__)

BATCH = 5000


def purge_audit_logs(retention_days: int) -> int:
    """Delete audit rows created more than `retention_days` days ago; returns how many were deleted. Small batches
    keep each transaction short, so serving's audit flushes never wait long on the table."""
    cutoff = utcnow() - timedelta(days=retention_days)
    deleted = 0
    while True:
        ids = db.session.scalars(select(AuditLog.id).where(AuditLog.created_at < cutoff).limit(BATCH)).all()
        if not ids:
            break
        db.session.execute(delete(AuditLog).where(AuditLog.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
    if deleted:
        log.info("deleted %d audit record(s) older than %d days", deleted, retention_days)
    return deleted
