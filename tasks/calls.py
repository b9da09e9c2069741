"""Send work to a Celery queue and wait for its answer with a deadline: 503 with no live worker (naming the queue)
or past an organization's fair share of a shared queue, 504 past the deadline."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid

import redis
from flask import current_app

from app.errors import APIError, overloaded, unavailable
from app.extensions import redis_store
from app.ops.metrics import observe_task
from tasks.heartbeat import HEARTBEAT_KEY, NODE_KEY, TASK_NODE_KEY
from tasks.leases import (
    CLAIM_HEADER,
    Full,
    Lease,
    LeasedSemaphore,
    WaitedTooLong,
    cancel_claim,
    claim_key,
    queue_capacity,
    wait_for_start,
)
from tasks.replies import RELEASE_HEADER, REPLY_HEADER, TaskFailed, reply_client, wait_reply

log = logging.getLogger(__name__)

# The queues every organization shares; a named queue (`predict.fraud`) belongs to the endpoints that name it.
SHARED_QUEUES = ("predict", "functions")
# Calls of one organization waiting for its share of one queue, at most (each holds a web thread meanwhile).
FAIR_MAX_WAITING = 1024


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


_capacity_seen: dict[tuple[int, str], tuple[float, int]] = {}


def fair_share_limit(queue: str) -> int:
    """Task slots one organization may hold on a shared queue: FAIR_SHARE of the live workers' concurrency on it
    (their heartbeats say it), at least 1. Read at most once a second per process, like the worker's liveness."""
    client = redis_store.get()
    slot = (id(client), queue)
    seen = _capacity_seen.get(slot)
    if seen is None or time.monotonic() - seen[0] >= ALIVE_MEMO_S:
        seen = (time.monotonic(), queue_capacity(client, queue))
        _capacity_seen[slot] = seen
    return max(1, math.floor(float(current_app.config["FAIR_SHARE"]) * seen[1]))


def fair_share_slot(queue: str, org_id: int, wait_until: float, run_s: float, queue_bound: bool) -> Lease:
    """A slot of `org_id`'s share of a shared `queue`, waiting until `wait_until` (monotonic) at most."""
    semaphore = LeasedSemaphore(redis_store.get(), f"apiary:fair:{queue}:{org_id}")
    lease_s = max(0.0, wait_until - time.monotonic()) + run_s + 2
    try:
        return semaphore.acquire(fair_share_limit(queue), lease_s, FAIR_MAX_WAITING, wait_until)
    except Full:
        raise overloaded(f"this organization's share of the {queue} queue is taken", "fair_share") from None
    except WaitedTooLong:
        if queue_bound:
            raise overloaded("the call waited past its queue_timeout_ms", "queue_timeout") from None
        # A call without a pool waits for its turn as it would in the queue: past its own deadline it is a 504.
        raise APIError(504, "timeout", f"no answer within {run_s:g} s") from None


def call_worker(
    task,
    args: list,
    queue: str,
    timeout_s: float,
    summary: str,
    org_id: int | None = None,
    queue_deadline: float | None = None,
    watch_node: bool = True,
    timed: bool = False,
) -> dict:
    """Run `task` on `queue` and return its result; a worker's {"error": ...} answer is raised as that APIError.
    The task expires unrun past the deadline, so a late worker never does work nobody waits for, and a retry by the
    client never finds the first attempt still queued.

    The answer comes back on a per-call Redis list (tasks/replies.py: one BLPOP, nothing to subscribe to or forget),
    not through Celery's result backend, which the task skips (`ignore_result`).

    With `watch_node` (model and function calls, whose worker notes that it received them), a worker that dies while
    running the call is a 502 within seconds; training, which a surviving worker retries, waits on.

    `summary` stands for the arguments in the message headers (worker logs, events, monitoring tools): callers'
    payloads (feature rows, function input) stay out of them, and Celery skips building a repr of every row.

    `org_id`: whose work it is; on a shared queue the call first takes a slot of that organization's fair share.
    `queue_deadline` (time.monotonic(), from the endpoint's pool): the task must have started by then, else the call
    is a 503 and the task, claimed as given up, never runs.
    `timed`: the task takes `sent_at` and answers its queue wait and working time as `timing` ({queue, score |
    function} in ms), kept in the answer, the queue wait trimmed so the parts never exceed the wait seen here.
    """
    if not queue_has_worker(queue):
        raise APIError(
            503,
            "no_worker",
            f"no worker is consuming the {queue} queue; try again shortly",
            {"queue": queue},
            headers={"Retry-After": 5},
        )
    wait_until = queue_deadline if queue_deadline is not None else time.monotonic() + timeout_s
    lease = None
    if org_id is not None and queue in SHARED_QUEUES:
        try:
            lease = fair_share_slot(queue, org_id, wait_until, timeout_s, queue_deadline is not None)
        except redis.RedisError as exc:
            log.warning("fair share of %s unavailable: %s", queue, exc)
            raise unavailable(
                "broker_unavailable", "the task queue is unavailable; try again shortly", headers={"Retry-After": 1}
            ) from None
    # Without a pool the call's own timeout bounds the whole call, its wait for a fair-share slot included; with one,
    # the task must start by the pool's deadline and then has its whole timeout.
    run_s = timeout_s if queue_deadline is not None else wait_until - time.monotonic()
    # The worker gives the slot back in its reply's round trip when the reply goes to the Redis the slot is in.
    handover = lease.handover() if lease is not None and _replies_share_redis() else None
    replied: list[bool] = []
    try:
        if run_s <= 0:
            raise APIError(504, "timeout", f"no answer within {timeout_s:g} s")
        return _send_and_wait(
            task, args, queue, run_s, summary, queue_deadline, watch_node, timed, handover, replied, timeout_s
        )
    finally:
        if lease is not None and not (handover and replied):
            try:
                lease.release()
            except redis.RedisError:
                log.warning("could not release a fair-share slot of %s; its lease runs out by itself", queue)


def _replies_share_redis() -> bool:
    """Whether replies (Celery's result backend URL) go to the Redis that holds the fair-share slots."""
    config = current_app.config
    return config["CELERY_RESULT_BACKEND"] == config["REDIS_URL"]


def _send_and_wait(
    task,
    args: list,
    queue: str,
    timeout_s: float,
    summary: str,
    queue_deadline: float | None,
    watch_node: bool,
    timed: bool,
    handover: list | None = None,
    replied: list | None = None,
    deadline_s: float | None = None,
):
    """Send the task and wait `timeout_s` for its reply. `handover`: the caller's fair-share lease, for the worker to
    release with its reply (RELEASE_HEADER); `replied` gets True once a reply that the task's own process pushed (which
    released it) came back; `deadline_s`: the call's whole deadline, which a 504 names (default `timeout_s`)."""
    task_id = uuid.uuid4().hex
    claim = claim_key(task_id) if queue_deadline is not None else None
    queue_left = max(0.0, queue_deadline - time.monotonic()) if queue_deadline is not None else 0.0
    kwargs = {"sent_at": time.time()} if timed else {}
    sent = time.perf_counter()
    try:
        # send_task, not apply_async: the same message, but no AsyncResult, whose clean-up would UNSUBSCRIBE from
        # a result channel this call never subscribed to (a write per call on a pub/sub connection per thread).
        task.app.send_task(
            task.name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            expires=queue_left + timeout_s,
            argsrepr=summary,
            kwargsrepr="{}",
            task_id=task_id,
            ignore_result=True,
            headers={
                REPLY_HEADER: 1,
                **({CLAIM_HEADER: claim} if claim else {}),
                **({RELEASE_HEADER: handover} if handover else {}),
            },
            result_cls=_Sent,
            add_to_parent=False,
        )
    except Exception as exc:  # noqa: BLE001 - kombu raises many types when the broker is unreachable
        log.warning("could not enqueue %s: %s", task.name, exc)
        observe_task(queue, None, "broker_unavailable")
        raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
    try:
        if claim is not None:
            _await_start(claim, queue, queue_deadline, queue_left + timeout_s + 60)
        reply = _wait(task_id, timeout_s, watch_node)
    except _NodeLost:
        reply = {"lost": True}
    except (redis.RedisError, OSError) as exc:
        log.warning("%s: lost the reply channel while waiting: %s", task.name, exc)
        observe_task(queue, None, "broker_unavailable")
        raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
    if reply is None:
        with contextlib.suppress(Exception):  # best effort: the task also expires unrun at the deadline
            task.app.control.revoke(task_id)
        observe_task(queue, time.perf_counter() - sent, "timeout")
        raise APIError(504, "timeout", f"no answer within {deadline_s or timeout_s:g} s")
    if reply.get("lost"):
        observe_task(queue, time.perf_counter() - sent, "worker_lost")
        # The process running the call died (OOM killer, SIGKILL, a lost host); nothing was answered, a retry may
        # succeed on another worker.
        log.warning("%s: the worker process running it was lost", task.name)
        raise APIError(
            502,
            "worker_lost",
            f"the {queue} worker running this call was lost; retry the call",
            headers={"Retry-After": 1},
        )
    if replied is not None and ("ok" in reply or "failed" in reply):
        replied.append(True)  # pushed by the process that ran the task, with the release (tasks/replies.py)
    if "failed" in reply:
        raise TaskFailed(reply["failed"].get("type", "Exception"), reply["failed"].get("message", ""))
    answer = reply.get("ok")
    # A task answers a client's error as {"error": APIError.to_dict()}; it is raised here, on the web side. (A
    # training run's outcome has an "error" too, but that is its failure sentence, a string.)
    waited = time.perf_counter() - sent
    error = answer.get("error") if isinstance(answer, dict) else None
    observe_task(queue, waited, "error" if isinstance(error, dict) else "success")
    if isinstance(error, dict):
        raise APIError.from_dict(error)
    if timed and isinstance(answer, dict) and isinstance(answer.get("timing"), dict):
        answer["timing"] = _trimmed(answer["timing"], waited * 1000)
    return answer


def _await_start(claim: str, queue: str, deadline: float, claim_ttl_s: float) -> None:
    """Return once a worker has started the claimed task; past `deadline` give it up (503) unless a worker started it
    this very moment."""
    client = redis_store.get()
    try:
        if wait_for_start(client, claim, deadline) or not cancel_claim(client, claim, claim_ttl_s):
            return
    except redis.RedisError as exc:
        log.warning("could not follow a task's claim: %s", exc)
        raise unavailable(
            "broker_unavailable", "the task queue is unavailable; try again shortly", headers={"Retry-After": 1}
        ) from None
    raise overloaded(f"the call waited past its queue_timeout_ms in the {queue} queue", "queue_timeout")


def _trimmed(parts: dict, waited_ms: float) -> dict:
    """The worker's parts with its queue wait cut so that queue + work <= the wait measured on this side."""
    clean = {k: float(v) for k, v in parts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    work = sum(v for k, v in clean.items() if k != "queue")
    if "queue" in clean:
        clean["queue"] = max(0.0, min(clean["queue"], waited_ms - work))
    return clean


def _replies() -> redis.Redis:
    config = current_app.config
    return reply_client(config["CELERY_RESULT_BACKEND"], config["APIARY_NAMESPACE"], socket_timeout=None)
