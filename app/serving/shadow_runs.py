"""What a shadow run or a warm switch leaves behind, written by the worker that ran it: the shadow run's audit record
(paired with the call by `call_id`) and its slot among the runs in flight; which processes preloaded which models.
Kept apart from app/serving/shadow.py so tasks import only this."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time

from app.extensions import redis_store
from app.serving.audit import AuditBuffer, audit_entry
from app.serving.audit_outbox import FLUSH_THROTTLE_KEY

log = logging.getLogger(__name__)

IN_FLIGHT_KEY = "apiary:shadow_in_flight"  # sorted set: call id -> time queued
DROPPED_KEY = "apiary:shadow_dropped"
WARMED_KEY = "apiary:warmed:{model_id}"  # set of host:pid that preloaded the model (an hour)
MAX_SUMMARY_PREDICTIONS = 50


def summarize(kind: str, body: dict) -> dict | None:
    """An answer in brief: a model's first predictions (and their count), a function result's digest."""
    if kind == "model" and isinstance(body.get("predictions"), list):
        predictions = body["predictions"]
        return {"predictions": predictions[:MAX_SUMMARY_PREDICTIONS], "count": len(predictions)}
    if kind == "function" and "result" in body:
        canonical = json.dumps(body["result"], sort_keys=True, separators=(",", ":"), default=str)
        return {"digest": hashlib.sha256(canonical.encode()).hexdigest()[:16]}
    return None


def admit_shadow(call_id: str, limit: int, expires_s: float) -> bool:
    """Whether one more shadow run fits under `limit` waiting or running (entries older than the expiry are
    forgotten: their tasks were dropped unrun or died). A refused run is counted in `DROPPED_KEY`."""
    client = redis_store.get()
    now = time.time()
    pipe = client.pipeline(transaction=True)
    pipe.zremrangebyscore(IN_FLIGHT_KEY, "-inf", now - expires_s - 5)
    pipe.zcard(IN_FLIGHT_KEY)
    _, count = pipe.execute()
    if count >= limit:
        client.incr(DROPPED_KEY)
        return False
    client.zadd(IN_FLIGHT_KEY, {call_id: now})
    return True


def dropped_shadow_runs() -> int:
    return int(redis_store.get().get(DROPPED_KEY) or 0)


def record_shadow_run(
    record: dict, status: int, latency_ms: float, summary: dict | None, error_code: str | None
) -> bool:
    """Buffer the shadow run's audit record and free its slot; True when an audit flush should be scheduled."""
    entry = audit_entry(
        asset_id=record["asset_id"],
        endpoint_id=record["endpoint_id"],
        key_id=record.get("key_id"),
        status=status,
        latency_ms=latency_ms,
        method="SHADOW",
        org_id=record.get("org_id"),
        project_id=record.get("project_id"),
        model_id=record.get("model_id"),
        error_code=error_code,
        version=record["version"],
        shadow=True,
        call_id=record["call_id"],
        summary=summary,
    )
    client = redis_store.get()

    def bookkeeping(pipe) -> None:
        pipe.zrem(IN_FLIGHT_KEY, record["call_id"])
        pipe.set(FLUSH_THROTTLE_KEY, 1, nx=True, ex=2)

    replies = AuditBuffer(client).record(entry, bookkeeping)
    return bool(replies and replies[-1])


def note_warmed(model_ids: list[int]) -> None:
    """Record that this process holds these models (operators and tests read it: `warmed_by`)."""
    try:
        pipe = redis_store.get().pipeline(transaction=False)
        for model_id in model_ids:
            key = WARMED_KEY.format(model_id=model_id)
            pipe.sadd(key, f"{socket.gethostname()}:{os.getpid()}")
            pipe.expire(key, 3600)
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - bookkeeping only
        log.debug("could not record the preload: %s", exc)


def warmed_by(model_id: int) -> set[str]:
    """The worker processes (host:pid) that preloaded the model within the hour."""
    return {m.decode() for m in redis_store.get().smembers(WARMED_KEY.format(model_id=model_id))}
