"""Workers announce themselves and the queues they consume in Redis every few seconds, so the web process knows at
once (one GET, no broadcast) whether a predict or functions call could run at all, and `flask workers status`
lists every worker process even when two share a node name (each announces under its node name and pid)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown

from app.namespace import namespaced_redis
from tasks.leases import announce_capacity

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "apiary:queue_alive:{queue}"
WORKER_KEY = "apiary:worker:{node}:{pid}"
WORKER_KEY_PATTERN = "apiary:worker:*"
INTERVAL_SECONDS = 2
TTL_SECONDS = 6
_stop = threading.Event()


def heartbeat_client(app) -> redis.Redis:
    """A client of the worker's Redis inside its installation's namespace (`app` is the Celery app)."""
    return namespaced_redis(app.conf.broker_url, app.conf.apiary_namespace, socket_connect_timeout=1, socket_timeout=2)


def _beat(sender) -> None:
    client = heartbeat_client(sender.app)
    queues = sorted(q.name for q in sender.task_consumer.queues) if sender.task_consumer else []
    pid = os.getpid()
    record = json.dumps(
        {"node": sender.hostname, "pid": pid, "host": socket.gethostname(), "queues": queues, "started": time.time()}
    )
    worker_key = WORKER_KEY.format(node=sender.hostname, pid=pid)
    while not _stop.is_set():
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(worker_key, record, ex=TTL_SECONDS)
            for queue in queues:
                pipe.set(HEARTBEAT_KEY.format(queue=queue), sender.hostname, ex=TTL_SECONDS)
            pipe.execute()
            # The task slots this worker offers each queue: the fair share of a shared queue is a part of them.
            announce_capacity(client, queues, f"{sender.hostname}:{pid}", _concurrency(sender), TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(INTERVAL_SECONDS)
    # A deliberate stop leaves the list at once instead of TTL_SECONDS later.
    try:
        client.delete(worker_key)
    except redis.RedisError:
        log.debug("could not remove the worker's heartbeat on shutdown")


def _concurrency(sender) -> int:
    """The worker's pool size now (it changes with `pool_grow`/`pool_shrink` and autoscaling)."""
    try:
        return max(1, int(sender.pool.num_processes))
    except (AttributeError, TypeError, ValueError):
        return max(1, int(sender.app.conf.worker_concurrency or 1))


@worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs) -> None:
    if sender.hostname.startswith("celery@"):
        log.warning(
            "this worker has Celery's default node name %s: give each worker its own with -n (e.g. "
            "-n predict@%%h), or broadcast commands cannot tell workers apart",
            sender.hostname,
        )
    threading.Thread(target=_beat, args=(sender,), name="apiary-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_kwargs) -> None:
    _stop.set()
