"""Readiness checks of the database, Redis and the Celery workers."""

from __future__ import annotations

import contextlib
import json
import logging
import time

from flask import Flask
from sqlalchemy import text

from app.extensions import db, redis_store
from tasks.celery_app import QUEUES
from tasks.heartbeat import TTL_SECONDS, WORKER_KEY_PATTERN

log = logging.getLogger(__name__)


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        result = {"ok": True}
        if detail:
            result.update(detail)
    except Exception as exc:  # readiness reports every failure instead of raising
        result = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)[:200]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def worker_processes(app: Flask) -> list[dict]:
    """Every live worker process from its own heartbeat: `{node, pid, host, queues, concurrency, in_flight,
    heartbeat}` (heartbeat: the Unix time of its last beat), sorted by node and pid. Two
    workers started with the same node name (DuplicateNodenameWarning) are still two entries."""
    client = redis_store.get(app)
    keys = sorted(client.scan_iter(match=WORKER_KEY_PATTERN, count=1000))
    found = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between SCAN and MGET
            continue
        with contextlib.suppress(ValueError, TypeError, KeyError):  # a malformed record is skipped, not fatal
            record = json.loads(raw)
            found.append(
                {
                    "node": str(record["node"]),
                    "pid": int(record["pid"]),
                    "host": str(record.get("host", "")),
                    "queues": sorted(str(q) for q in record.get("queues", [])),
                    "concurrency": int(record.get("concurrency", 0)),
                    "in_flight": int(record.get("in_flight", 0)),
                    "heartbeat": float(record.get("heartbeat", 0.0)),
                }
            )
    return sorted(found, key=lambda w: (w["node"], w["pid"]))


def heartbeat_workers(app: Flask) -> dict[str, list[str]]:
    """Live workers seen through their heartbeats (no broadcast wait): `{node: [queues]}`; a node name shared by
    several processes is listed once per process as `node (pid N)`. A worker gone for TTL_SECONDS is not listed."""
    processes = worker_processes(app)
    nodes = [w["node"] for w in processes]
    return {
        (w["node"] if nodes.count(w["node"]) == 1 else f"{w['node']} (pid {w['pid']})"): w["queues"] for w in processes
    }


def queue_workers(processes: list[dict]) -> dict[str, list[str]]:
    """`{queue: [every live worker consuming it]}`: the four shared queues always (an empty list when none), plus
    any dedicated queue a worker consumes."""
    nodes = [w["node"] for w in processes]
    found: dict[str, list[str]] = {queue: [] for queue in QUEUES}
    for w in processes:
        name = w["node"] if nodes.count(w["node"]) == 1 else f"{w['node']} (pid {w['pid']})"
        for queue in w["queues"]:
            found.setdefault(queue, []).append(name)
    return found


def readiness(app: Flask) -> dict:
    def database():
        db.session.execute(text("SELECT 1"))

    def redis_check():
        redis_store.get(app).ping()

    def workers():
        processes = worker_processes(app)
        if not processes:
            raise RuntimeError(f"no Celery worker has announced itself in the last {TTL_SECONDS} s")
        nodes = [w["node"] for w in processes]
        named = {
            (w["node"] if nodes.count(w["node"]) == 1 else f"{w['node']} (pid {w['pid']})"): w["queues"]
            for w in processes
        }
        return {"workers": named, "queues": queue_workers(processes)}

    checks = {"database": _timed(database), "redis": _timed(redis_check)}
    checks["worker"] = _timed(workers) if checks["redis"]["ok"] else {"ok": False, "error": "redis is down"}
    return {"status": "ok" if all(c["ok"] for c in checks.values()) else "unavailable", "checks": checks}


def readiness_summary(report: dict) -> dict:
    """What anyone may see: each check's ok, never error text (database addresses) or worker host names. The
    failures themselves go to the server log; org admins and `flask workers status` get the details."""
    for name, check in report["checks"].items():
        if not check["ok"]:
            log.warning("readiness check %s failed: %s", name, check.get("error"))
    summary = {"status": report["status"], "checks": {name: {"ok": c["ok"]} for name, c in report["checks"].items()}}
    queues = report["checks"]["worker"].get("queues")
    if queues is not None:  # how many live workers each queue has, without their names
        summary["checks"]["worker"]["queues"] = {queue: len(names) for queue, names in queues.items()}
    return summary
