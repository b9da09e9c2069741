"""Readiness checks of the database, Redis and the Celery workers."""

from __future__ import annotations

import logging
import time

from flask import Flask
from sqlalchemy import text

from app.extensions import db, redis_store
from tasks.celery_app import QUEUES
from tasks.heartbeat import HEARTBEAT_KEY, TTL_SECONDS

log = logging.getLogger(__name__)


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        result = {"ok": True}
        if detail:
            result.update(detail)
    except Exception as exc:  # noqa: BLE001 - readiness reports every failure instead of raising
        result = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)[:200]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def live_workers(app: Flask, timeout: float = 1.0) -> dict[str, list[str]]:
    """Workers answering a broadcast ping, with the queues each consumes."""
    control = app.extensions["celery"].control
    replies = control.ping(timeout=timeout) or []
    names = [name for reply in replies for name in reply]
    queues: dict[str, list[str]] = {name: [] for name in names}
    if names:
        active = control.inspect(destination=names, timeout=timeout).active_queues() or {}
        for name, qs in active.items():
            queues[name] = sorted(q["name"] for q in qs)
    return queues


def heartbeat_workers(app: Flask) -> dict[str, list[str]]:
    """Workers seen through their heartbeats (one MGET, no broadcast wait): `{hostname: [queues]}`, where each
    queue lists the last live worker that announced it. A worker gone for TTL_SECONDS is no longer listed."""
    values = redis_store.get(app).mget([HEARTBEAT_KEY.format(queue=queue) for queue in QUEUES])
    found: dict[str, list[str]] = {}
    for queue, value in zip(QUEUES, values, strict=True):
        if value is not None:
            name = value.decode() if isinstance(value, bytes) else str(value)
            found.setdefault(name, []).append(queue)
    return {name: sorted(queues) for name, queues in found.items()}


def readiness(app: Flask) -> dict:
    def database():
        db.session.execute(text("SELECT 1"))

    def redis_check():
        redis_store.get(app).ping()

    def workers():
        found = heartbeat_workers(app)
        if not found:
            raise RuntimeError(f"no Celery worker has announced itself in the last {TTL_SECONDS} s")
        return {"workers": found}

    checks = {"database": _timed(database), "redis": _timed(redis_check)}
    checks["worker"] = _timed(workers) if checks["redis"]["ok"] else {"ok": False, "error": "redis is down"}
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "unavailable", "checks": checks}


def readiness_summary(report: dict) -> dict:
    """What anyone may see: each check's ok, never error text (database addresses) or worker host names. The
    failures themselves go to the server log; org admins and `flask workers status` get the details."""
    for name, check in report["checks"].items():
        if not check["ok"]:
            log.warning("readiness check %s failed: %s", name, check.get("error"))
    return {"status": report["status"], "checks": {name: {"ok": c["ok"]} for name, c in report["checks"].items()}}
