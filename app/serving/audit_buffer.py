"""The audit trail of serving calls, buffered in a capped Redis list so a request never waits on a database write."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import redis

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
