"""The answer of a call a web request waits on (tasks/calls.py), delivered on a per-call Redis list.

The web side sends the task with Celery's `ignore_result` and the REPLY_HEADER, then waits with one BLPOP on
`apiary:reply:<task id>`; the pool process that ran the task pushes its answer there (RPUSH + EXPIRE, one round
trip, which also gives the caller's fair-share slot back when the task came with RELEASE_HEADER). Against Celery's Redis result backend this saves, per call, the SUBSCRIBE and UNSUBSCRIBE of the task's result
channel on the web side, the SET + PUBLISH of the result on the worker side, and the DEL of `forget()`
(bench/predict_roundtrip.py measures both paths).

Replies, JSON: {"ok": answer} | {"failed": {"type", "message"}} (the task raised) | {"lost": true} (the pool process
running it died: the worker's main process answers for it, so the web side says 502 worker_lost at once).
"""

from __future__ import annotations

import json
import logging
import os

import redis
from billiard.exceptions import WorkerLostError
from celery.signals import task_failure, task_success

from app.namespace import namespaced_redis
from tasks.leases import block_timeout, release_on

log = logging.getLogger(__name__)

REPLY_HEADER = "apiary_reply"
# The caller's fair-share lease (`Lease.handover()`), released by the worker in its reply's round trip.
RELEASE_HEADER = "apiary_release"
REPLY_KEY = "apiary:reply:{task_id}"
# A reply nobody waits for any more (the web side gave up with a 504) goes away by itself.
REPLY_TTL_SECONDS = 300

_clients: dict[tuple[int, str, str], redis.Redis] = {}


class TaskFailed(Exception):
    """The task raised instead of answering (a bug, not a client's error): the web side answers 500."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name


def reply_key(task_id: str) -> str:
    return REPLY_KEY.format(task_id=task_id)


def reply_client(url: str, namespace: str, socket_timeout: float | None) -> redis.Redis:
    """One client (connection pool) per process, URL and namespace, rebuilt after a fork.

    The web side's has no socket timeout: BLPOP's own timeout bounds the wait (a blocked read would otherwise hit the
    socket timeout first); keepalive notices a peer that vanished."""
    slot = (os.getpid(), url, namespace)
    client = _clients.get(slot)
    if client is None:
        client = namespaced_redis(
            url, namespace, socket_connect_timeout=1, socket_timeout=socket_timeout, socket_keepalive=True
        )
        _clients[slot] = client
    return client


def wait_reply(client: redis.Redis, task_id: str, timeout_s: float) -> dict | None:
    """The reply of `task_id`, or None past `timeout_s`. Raises redis.RedisError when Redis is unreachable."""
    popped = client.blpop([reply_key(task_id)], timeout=block_timeout(timeout_s))
    return None if popped is None else json.loads(popped[1])


# --- worker side ----------------------------------------------------------------------------------------------------


def _push(app, task_id: str, reply: dict, release: object = None) -> None:
    """The reply, and with `release` (the RELEASE_HEADER's lease) the caller's fair-share slot given back, in one
    round trip: the slot frees as the task ends, and the caller does not release it again."""
    client = reply_client(app.conf.result_backend, app.conf.apiary_namespace, socket_timeout=2)
    pipe = client.pipeline(transaction=False)
    pipe.rpush(reply_key(task_id), json.dumps(reply))
    pipe.expire(reply_key(task_id), REPLY_TTL_SECONDS)
    if release is not None:
        release_on(pipe, release)
    try:
        pipe.execute()
    except redis.RedisError as exc:  # the web side times out (504) as it would had the worker never answered
        log.warning("could not push the reply of task %s: %s", task_id, exc)


def _wants_reply(task) -> bool:
    return bool(getattr(task.request, REPLY_HEADER, None))


@task_success.connect
def _reply_success(sender=None, result=None, **_kwargs) -> None:
    # In the pool process that ran the task, with its request still current.
    if sender is not None and _wants_reply(sender):
        _push(sender.app, sender.request.id, {"ok": result}, getattr(sender.request, RELEASE_HEADER, None))


@task_failure.connect
def _reply_failure(sender=None, task_id=None, exception=None, **_kwargs) -> None:
    if sender is None or task_id is None:
        return
    if isinstance(exception, WorkerLostError):
        # In the worker's main process, where the request's headers are out of reach: the reply goes out whoever
        # sent the task, and expires unread when nobody waits on it.
        _push(sender.app, task_id, {"lost": True})
    elif _wants_reply(sender):
        failed = {"failed": {"type": type(exception).__name__, "message": str(exception)[:500]}}
        _push(sender.app, task_id, failed, getattr(sender.request, RELEASE_HEADER, None))
