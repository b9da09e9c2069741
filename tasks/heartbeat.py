"""Workers announce themselves and the queues they consume in Redis every second, so the web process knows at
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
from celery.signals import task_received, worker_ready, worker_shutdown
from celery.worker import state as worker_state

from app.namespace import namespaced_redis
from tasks.leases import announce_capacity

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "apiary:queue_alive:{queue}"
WORKER_KEY = "apiary:worker:{node}:{pid}"
WORKER_KEY_PATTERN = "apiary:worker:*"
# A node's own short-lived key: a caller waiting on a task that node started learns within NODE_TTL_SECONDS that the
# node died (SIGKILL, a lost host), instead of waiting out its deadline.
NODE_KEY = "apiary:node_alive:{node}"
# Which node received a model or function call: its caller watches that node's NODE_KEY while it waits (a call
# the node only reserved, not yet started, is lost with the node too).
TASK_NODE_KEY = "apiary:task_node:{task_id}"
TASK_NODE_TTL_SECONDS = 120
WATCHED_TASKS = frozenset({"tasks.predict.score", "tasks.predict.explain", "tasks.functions.run_function"})
INTERVAL_SECONDS = 1
TTL_SECONDS = 6
NODE_TTL_SECONDS = 3
_stop = threading.Event()
_clients: dict[int, redis.Redis] = {}


def heartbeat_client(app) -> redis.Redis:
    """A client of the worker's Redis inside its installation's namespace (`app` is the Celery app)."""
    return namespaced_redis(app.conf.broker_url, app.conf.apiary_namespace, socket_connect_timeout=1, socket_timeout=2)


def worker_record(consumer, started: float) -> dict:
    """What `flask workers status` and /readyz show of this worker: read afresh at each beat, so a drained queue
    (cancel_consumer) or a grown pool (pool_grow) shows within a second."""
    task_consumer = consumer.task_consumer
    queues = sorted(q.name for q in task_consumer.queues) if task_consumer else []
    try:
        concurrency = int(consumer.pool.num_processes)
    except (AttributeError, TypeError, ValueError):  # a pool without processes (solo, threads)
        concurrency = int(getattr(consumer.controller, "concurrency", 0) or 0)
    return {
        "node": consumer.hostname,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "queues": queues,
        "concurrency": concurrency,
        "in_flight": len(worker_state.active_requests),
        "reserved": len(worker_state.reserved_requests),
        "started": started,
        "heartbeat": time.time(),
    }


def _beat(sender) -> None:
    client = heartbeat_client(sender.app)
    pid, started = os.getpid(), time.time()
    worker_key = WORKER_KEY.format(node=sender.hostname, pid=pid)
    while not _stop.is_set():
        try:
            record = worker_record(sender, started)
            pipe = client.pipeline(transaction=False)
            pipe.set(worker_key, json.dumps(record), ex=TTL_SECONDS)
            pipe.set(NODE_KEY.format(node=sender.hostname), pid, ex=NODE_TTL_SECONDS)
            for queue in record["queues"]:
                pipe.set(HEARTBEAT_KEY.format(queue=queue), sender.hostname, ex=TTL_SECONDS)
            pipe.execute()
            # The task slots this worker offers each queue: the fair share of a shared queue is a part of them.
            announce_capacity(
                client, record["queues"], f"{sender.hostname}:{pid}", max(1, record["concurrency"]), TTL_SECONDS
            )
        except redis.RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
        except RuntimeError as exc:  # the consumer's queue set changed while being read: next beat
            log.debug("worker heartbeat skipped: %s", exc)
        _stop.wait(INTERVAL_SECONDS)
    # A deliberate stop leaves the list at once instead of TTL_SECONDS later.
    try:
        client.delete(worker_key, NODE_KEY.format(node=sender.hostname))
    except redis.RedisError:
        log.debug("could not remove the worker's heartbeat on shutdown")


def receiver_client_name(node: str) -> str:
    """`apiary-receiver:<node>`, with any character Redis refuses in a client name (a space, a newline, anything
    outside printable ASCII, which a worker's `-n` may hold) as `_`: a refused name would fail every connect."""
    return "apiary-receiver:" + "".join(c if "!" <= c <= "~" else "_" for c in node)


def receiver_client(app, node: str) -> redis.Redis:
    """The client that notes which node received a watched call (`app`: the Celery app), one per app, named in
    Redis's CLIENT LIST after the node."""
    client = _clients.get(id(app))
    if client is None:
        client = namespaced_redis(
            app.conf.broker_url,
            app.conf.apiary_namespace,
            socket_connect_timeout=1,
            socket_timeout=2,
            client_name=receiver_client_name(node),
        )
        _clients[id(app)] = client
    return client


def connect_receiver_client(app, node: str) -> None:
    """Open the noting connection before the first call arrives. Celery logs "received" before task_received fires,
    and a node killed between the two leaves its call unnoted: the caller then waits out its deadline (504) instead of
    learning within NODE_TTL_SECONDS that the node died. Connecting lazily put a connect and a handshake into that
    window at every worker's first call; connected ahead, the window is one SET on an open connection."""
    try:
        receiver_client(app, node).ping()
    except redis.RedisError as exc:  # Redis not there yet: the first call connects, as before
        log.debug("could not connect the receiver-noting client: %s", exc)


@task_received.connect
def _note_receiver(sender=None, request=None, **_kwargs) -> None:
    if request is None or request.name not in WATCHED_TASKS:
        return
    client = receiver_client(sender.app, sender.hostname)
    try:
        client.set(TASK_NODE_KEY.format(task_id=request.id), sender.hostname, ex=TASK_NODE_TTL_SECONDS)
    except redis.RedisError as exc:  # the caller then waits for the answer or its deadline, as before
        log.debug("could not note the receiver of %s: %s", request.id, exc)


@worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs) -> None:
    if sender.hostname.startswith("celery@"):
        log.warning(
            "this worker has Celery's default node name %s: give each worker its own with -n (e.g. "
            "-n predict@%%h), or broadcast commands cannot tell workers apart",
            sender.hostname,
        )
    connect_receiver_client(sender.app, sender.hostname)
    threading.Thread(target=_beat, args=(sender,), name="apiary-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_kwargs) -> None:
    _stop.set()
