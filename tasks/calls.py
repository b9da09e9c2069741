"""Send work to a Celery queue and wait for its answer with a deadline: 503 with no live worker, 504 past it."""

from __future__ import annotations

import contextlib
import logging
import time

import redis
from celery.utils import uuid
from flask import current_app

from app.errors import APIError
from app.extensions import redis_store
from tasks.heartbeat import HEARTBEAT_KEY, NODE_KEY, TASK_NODE_KEY
from tasks.replies import REPLY_HEADER, TaskFailed, reply_client, wait_reply

log = logging.getLogger(__name__)


# A worker's heartbeat lives TTL_SECONDS (6 s) in Redis, so "a worker is alive" is already seconds old when read;
# remembering a yes for one more second per process saves a Redis round trip on nearly every model/function call.
# A no is never remembered: a worker that starts is used at once.
ALIVE_MEMO_S = 1.0
_alive_seen: dict[tuple[int, str], float] = {}
# How often a waiting caller checks that the worker running its call is alive (after the first slice, so a call
# answered within it costs nothing more).
WATCH_SLICE_S = 0.5


def queue_has_worker(queue: str) -> bool:
    client = redis_store.get()
    slot = (id(client), queue)
    if time.monotonic() - _alive_seen.get(slot, -ALIVE_MEMO_S) < ALIVE_MEMO_S:
        return True
    try:
        alive = client.exists(HEARTBEAT_KEY.format(queue=queue)) > 0
    except redis.RedisError:
        return False
    if alive:
        _alive_seen[slot] = time.monotonic()
    else:
        _alive_seen.pop(slot, None)
    return alive


class _NodeLost(Exception):
    """The worker node that started the task stopped beating before answering."""


class _Sent:
    """What send_task hands back for a call answered on its reply list: its id, and nothing to clean up."""

    __slots__ = ("id", "ignored")

    def __init__(self, task_id: str):
        self.id = task_id


def _wait(task_id: str, timeout_s: float, watch_node: bool) -> dict | None:
    """The task's reply within `timeout_s`, else None. With `watch_node`, waits in slices and checks between them that
    the worker which received the task still beats; a dead one (its whole process group SIGKILLed, its host gone) is
    _NodeLost within NODE_TTL_SECONDS instead of a 504 at the deadline."""
    client = _replies()
    if not watch_node:
        return wait_reply(client, task_id, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        reply = wait_reply(client, task_id, min(WATCH_SLICE_S, left))
        if reply is not None:
            return reply
        node = _received_by(task_id)
        if node and not redis_store.get().exists(NODE_KEY.format(node=node)):
            raise _NodeLost(node)


def _received_by(task_id: str) -> str | None:
    """The node name of the worker that received the task (see tasks.heartbeat.WATCHED_TASKS), None before."""
    node = redis_store.get().get(TASK_NODE_KEY.format(task_id=task_id))
    return node.decode() if isinstance(node, bytes) else node


def call_worker(task, args: list, queue: str, timeout_s: float, summary: str, watch_node: bool = True) -> dict:
    """Run `task` on `queue` and return its result; a worker's {"error": ...} answer is raised as that APIError.
    The task expires unrun past the deadline, so a late worker never does work nobody waits for, and a retry by the
    client never finds the first attempt still queued.

    The answer comes back on a per-call Redis list (tasks/replies.py: one BLPOP, nothing to subscribe to or forget),
    not through Celery's result backend, which the task skips (`ignore_result`).

    With `watch_node` (model and function calls, whose worker notes that it received them), a worker that dies while
    running the call is a 502 within seconds; training, which a surviving worker retries, waits on.

    `summary` stands for the arguments in the message headers (worker logs, events, monitoring tools): callers'
    payloads (feature rows, function input) stay out of them, and Celery skips building a repr of every row.
    """
    if not queue_has_worker(queue):
        raise APIError(
            503, "no_worker", f"no worker is consuming the {queue} queue; try again shortly", headers={"Retry-After": 5}
        )
    task_id = uuid()
    try:
        # send_task, not apply_async: the same message, but no AsyncResult, whose clean-up would UNSUBSCRIBE from
        # a result channel this call never subscribed to (a write per call on a pub/sub connection per thread).
        task.app.send_task(
            task.name,
            args=args,
            queue=queue,
            expires=timeout_s,
            argsrepr=summary,
            kwargsrepr="{}",
            task_id=task_id,
            ignore_result=True,
            headers={REPLY_HEADER: 1},
            result_cls=_Sent,
            add_to_parent=False,
        )
    except Exception as exc:  # noqa: BLE001 - kombu raises many types when the broker is unreachable
        log.warning("could not enqueue %s: %s", task.name, exc)
        raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
    try:
        reply = _wait(task_id, timeout_s, watch_node)
    except _NodeLost:
        reply = {"lost": True}
    except (redis.RedisError, OSError) as exc:
        log.warning("%s: lost the reply channel while waiting: %s", task.name, exc)
        raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
    if reply is None:
        with contextlib.suppress(Exception):  # best effort: the task also expires unrun at the deadline
            task.app.control.revoke(task_id)
        raise APIError(504, "timeout", f"no answer within {timeout_s:g} s")
    if reply.get("lost"):
        # The process running the call died (OOM killer, SIGKILL, a lost host); nothing was answered, a retry may
        # succeed on another worker.
        log.warning("%s: the worker process running it was lost", task.name)
        raise APIError(
            502,
            "worker_lost",
            f"the {queue} worker running this call was lost; retry the call",
            headers={"Retry-After": 1},
        )
    if "failed" in reply:
        raise TaskFailed(reply["failed"].get("type", "Exception"), reply["failed"].get("message", ""))
    answer = reply.get("ok")
    # A task answers a client's error as {"error": APIError.to_dict()}; it is raised here, on the web side. (A
    # training run's outcome has an "error" too, but that is its failure sentence, a string.)
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        raise APIError.from_dict(error)
    return answer


def _replies() -> redis.Redis:
    config = current_app.config
    return reply_client(config["CELERY_RESULT_BACKEND"], config["APIARY_NAMESPACE"], socket_timeout=None)
