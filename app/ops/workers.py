"""Operating the workers and queues: who consumes what, how deep and how old each queue is, and Celery's remote
control (grow or shrink a pool, stop consuming) aimed at the workers a heartbeat names."""

from __future__ import annotations

import json
import time

from flask import Flask

from app.errors import APIError
from app.extensions import redis_store
from app.ops.health import worker_processes
from app.procfile import QUEUE_NAME
from tasks.celery_app import QUEUES, SENT_AT_HEADER

CONTROL_TIMEOUT_S = 2.0


def check_queue_name(queue: str) -> str:
    if not QUEUE_NAME.fullmatch(queue):
        raise APIError(
            400,
            "bad_queue",
            f"queue: {queue!r} is not a queue (predict, train, functions, default, or predict.NAME / functions.NAME)",
        )
    return queue


def known_queues(processes: list[dict]) -> list[str]:
    """The shared queues and every dedicated queue a live worker consumes."""
    dedicated = sorted({q for w in processes for q in w["queues"]} - set(QUEUES))
    return [*QUEUES, *dedicated]


def queue_stats(app: Flask, queues: list[str] | None = None, now: float | None = None) -> list[dict]:
    """Per queue: `depth` (messages waiting in its Redis list), `oldest_age_s` (how long the oldest waiting message
    has waited, from the send time every Apiary process stamps in its headers; None when the queue is empty or the
    oldest message carries no stamp, e.g. sent by another Celery client) and `consumers` (live workers)."""
    client = redis_store.get(app)
    processes = worker_processes(app)
    names = queues or known_queues(processes)
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for queue in names:
        pipe.llen(queue)
        pipe.lindex(queue, -1)  # kombu LPUSHes and BRPOPs: the right end is the next message out, the oldest
    answers = pipe.execute()
    stats = []
    for i, queue in enumerate(names):
        depth, oldest = answers[2 * i], answers[2 * i + 1]
        stats.append(
            {
                "queue": queue,
                "depth": int(depth),
                "oldest_age_s": _age(oldest, now),
                "consumers": sum(queue in w["queues"] for w in processes),
            }
        )
    return stats


def _age(raw: bytes | None, now: float) -> float | None:
    if raw is None:
        return None
    try:
        sent = float(json.loads(raw)["headers"][SENT_AT_HEADER])
    except (ValueError, TypeError, KeyError):
        return None
    return round(max(0.0, now - sent), 3)


def purge_queue(app: Flask, queue: str) -> int:
    """Drop every message waiting in `queue` (not those a worker already holds); how many were dropped."""
    check_queue_name(queue)
    celery = app.extensions["celery"]
    with celery.connection_for_write() as conn:
        return int(conn.default_channel.queue_purge(queue) or 0)


def _nodes_consuming(app: Flask, queue: str) -> list[str]:
    return sorted({w["node"] for w in worker_processes(app) if queue in w["queues"]})


def resize_pools(app: Flask, queue: str, n: int, grow: bool) -> dict[str, str]:
    """pool_grow / pool_shrink by `n` on every worker consuming `queue`: `{node: its answer}`."""
    check_queue_name(queue)
    if not 1 <= n <= 64:
        raise APIError(400, "bad_count", "N: grow or shrink by 1 to 64 processes")
    nodes = _nodes_consuming(app, queue)
    if not nodes:
        raise APIError(404, "no_worker", f"no live worker consumes the {queue} queue")
    control = app.extensions["celery"].control
    command = control.pool_grow if grow else control.pool_shrink
    replies = command(n, destination=nodes, reply=True, timeout=CONTROL_TIMEOUT_S) or []
    return _answers(nodes, replies)


def drain_host(app: Flask, host: str) -> dict[str, list[str]]:
    """Every worker on `host` (its host name, or one worker's node name) stops consuming each of its queues; what
    it is running finishes. `{node: [queues it stopped consuming]}`."""
    targets: dict[str, set[str]] = {}
    for w in worker_processes(app):
        if host in (w["host"], w["node"]) or w["node"].endswith("@" + host):
            targets.setdefault(w["node"], set()).update(w["queues"])
    if not targets:
        raise APIError(404, "no_worker", f"no live worker runs on {host!r}")
    control = app.extensions["celery"].control
    drained: dict[str, list[str]] = {}
    for node, queues in sorted(targets.items()):
        for queue in sorted(queues):
            control.cancel_consumer(queue, destination=[node], reply=True, timeout=CONTROL_TIMEOUT_S)
        drained[node] = sorted(queues)
    return drained


def _answers(nodes: list[str], replies: list[dict]) -> dict[str, str]:
    found = {node: "no answer" for node in nodes}
    for reply in replies:
        for node, answer in reply.items():
            found[node] = str(answer.get("ok") or answer.get("error") or answer)
    return found
