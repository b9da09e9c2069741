"""The audit trail of serving calls: buffered in a capped Redis list so a request never waits on a database write,
flushed into the audit_logs table by a worker, and listed back."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from sqlalchemy import Select, func, select

from app.db import AuditLog, PublishedAsset
from app.extensions import db, redis_store
from app.keys.service import store_last_used
from app.keys.usage import UsageTracker

log = logging.getLogger(__name__)

AUDIT_KEY = "apiary:audit"


def audit_entry(
    *,
    asset_id: int | None,
    endpoint_id: str | None,
    key_id: int | None,
    status: int,
    latency_ms: float,
    method: str,
    org_id: int | None = None,
    project_id: int | None = None,
    model_id: int | None = None,
    error_code: str | None = None,
    ts: datetime | None = None,
    context: dict | None = None,
) -> dict:
    """One audit record with every field the persisting task expects; `ts` defaults to now (ISO 8601 UTC)."""
    when = (ts or datetime.now(UTC)).astimezone(UTC)
    entry = {
        "ts": when.isoformat().replace("+00:00", "Z"),
        "asset_id": asset_id,
        "endpoint_id": endpoint_id,
        "key_id": key_id,
        "status": status,
        "latency_ms": round(latency_ms, 3),
        "model_id": model_id,
        "org_id": org_id,
        "project_id": project_id,
        "method": method,
        "error_code": error_code,
    }
    if context is not None:
        entry["context"] = context  # a model call's caller context (at most 4 KB)
    return entry


class AuditBuffer:
    """`record` appends in one round trip and never raises; a worker `drain`s the oldest records in batches.

    The list is capped at `max_len`: if the worker falls behind, the oldest records are trimmed so Redis memory
    stays bounded. Records lost that way or to an unreachable Redis are counted in `dropped`.
    """

    def __init__(self, redis_client: redis.Redis, key: str = AUDIT_KEY, max_len: int = 100_000):
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.redis = redis_client
        self.key = key
        self.max_len = max_len
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """Records this process lost since start: Redis errors plus the oldest ones trimmed by the cap."""
        return self._dropped

    def record(self, entry: dict, with_commands: Callable[[redis.client.Pipeline], None] | None = None) -> list:
        """Append `entry` (see `audit_entry`) at the tail; fills `ts` when missing.

        `with_commands(pipe)` may queue more commands on the same MULTI, so a served call pays one round trip for
        all its bookkeeping; their replies are returned, or [] when Redis could not be reached.
        """
        if "ts" not in entry:
            entry = {**entry, "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        try:
            # MULTI/EXEC in one round trip: push and trim together, so the cap holds under concurrent writers.
            pipe = self.redis.pipeline(transaction=True)
            pipe.rpush(self.key, json.dumps(entry, default=str, separators=(",", ":")))
            pipe.ltrim(self.key, -self.max_len, -1)
            if with_commands is not None:
                with_commands(pipe)
            length, _, *replies = pipe.execute()
        except (redis.RedisError, OSError, TypeError, ValueError) as exc:
            self._count_drops(1)
            log.debug("audit record dropped: %s", exc)
            return []
        if length > self.max_len:
            self._count_drops(length - self.max_len)
        return replies

    def drain(self, batch: int = 1000) -> list[dict]:
        """Remove and return up to `batch` of the oldest records, oldest first; raises if Redis is down."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        raw = self.redis.lpop(self.key, batch) or []  # LPOP with a count (Redis >= 6.2) is atomic
        out = []
        for item in raw:
            try:
                out.append(json.loads(item))
            except ValueError:
                log.warning("skipping malformed audit record %r", item[:200])
        return out

    def _count_drops(self, n: int) -> None:
        with self._lock:
            self._dropped += n


def flush_serving_records(batch: int = 1000) -> int:
    """Move buffered audit records and last-used times into the database; returns how many records."""
    client = redis_store.get()
    buffer = AuditBuffer(client)
    written = 0
    while True:
        entries = buffer.drain(batch)
        if not entries:
            break
        db.session.execute(AuditLog.__table__.insert(), [_audit_row(e) for e in entries])
        db.session.commit()
        written += len(entries)
    store_last_used(UsageTracker(client).drain())
    return written


def _audit_row(entry: dict) -> dict:
    ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
    return {
        "created_at": ts.replace(tzinfo=None),
        "org_id": entry.get("org_id"),
        "project_id": entry.get("project_id"),
        "asset_id": entry["asset_id"],
        "endpoint_id": entry.get("endpoint_id"),
        "key_id": entry.get("key_id"),
        "method": entry.get("method") or "",
        "status": entry["status"],
        "latency_ms": entry["latency_ms"],
        "model_id": entry.get("model_id"),
        "error_code": entry.get("error_code"),
        "context": entry.get("context"),
    }


def filtered_logs(asset: PublishedAsset, filters: dict) -> Select:
    """The asset's audit records matching the log filters (endpoint, key, status, since, until, errors only)."""
    stmt = select(AuditLog).where(AuditLog.asset_id == asset.id)
    for name in ("endpoint_id", "key_id", "status"):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(AuditLog, name) == filters[name])
    if filters.get("since") is not None:
        stmt = stmt.where(AuditLog.created_at >= filters["since"])
    if filters.get("until") is not None:
        stmt = stmt.where(AuditLog.created_at < filters["until"])
    if filters.get("errors_only"):
        stmt = stmt.where(AuditLog.status >= 400)
    return stmt


def list_logs(asset: PublishedAsset, filters: dict) -> dict:
    stmt = filtered_logs(asset, filters)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(
        stmt.order_by(AuditLog.created_at.desc(), AuditLog.id.desc()).limit(filters["limit"]).offset(filters["offset"])
    )
    return {"items": list(rows), "total": total, "limit": filters["limit"], "offset": filters["offset"]}
