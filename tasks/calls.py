"""Send work to a Celery queue and wait for its answer with a deadline: 503 with no live worker, 504 past it."""

from __future__ import annotations

import logging
import time

import redis
from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeoutError as CeleryTimeout

from app.errors import APIError
from app.extensions import redis_store
from app.ops.metrics import observe_task
from tasks.heartbeat import HEARTBEAT_KEY

log = logging.getLogger(__name__)


# A worker's heartbeat lives TTL_SECONDS (6 s) in Redis, so "a worker is alive" is already seconds old when read;
# remembering a yes for one more second per process saves a Redis round trip on nearly every model/function call.
# A no is never remembered: a worker that starts is used at once.
ALIVE_MEMO_S = 1.0
_alive_seen: dict[tuple[int, str], float] = {}


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


def call_worker(task, args: list, queue: str, timeout_s: float, summary: str, timed: bool = False) -> dict:
    """Run `task` on `queue` and return its result; a worker's {"error": ...} answer is raised as that APIError.
    The task expires unrun past the deadline, so a late worker never does work nobody waits for, and a retry by the
    client never finds the first attempt still queued.

    `summary` stands for the arguments in the message headers (worker logs, events, monitoring tools): callers'
    payloads (feature rows, function input) stay out of them, and Celery skips building a repr of every row.

    `timed`: the task takes `sent_at` and answers its queue wait and working time as `timing` ({queue, score |
    function} in ms), kept in the answer, the queue wait trimmed so the parts never exceed the wait seen here.
    """
    if not queue_has_worker(queue):
        raise APIError(
            503, "no_worker", f"no worker is consuming the {queue} queue; try again shortly", headers={"Retry-After": 5}
        )
    kwargs = {"sent_at": time.time()} if timed else {}
    sent = time.perf_counter()
    try:
        result = task.apply_async(
            args=args, kwargs=kwargs, queue=queue, expires=timeout_s, argsrepr=summary, kwargsrepr="{}"
        )
    except Exception as exc:  # noqa: BLE001 - kombu raises many types when the broker is unreachable
        log.warning("could not enqueue %s: %s", task.name, exc)
        observe_task(queue, None, "broker_unavailable")
        raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
    try:
        answer = result.get(timeout=timeout_s, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        result.revoke()
        observe_task(queue, time.perf_counter() - sent, "timeout")
        raise APIError(504, "timeout", f"no answer within {timeout_s:g} s") from None
    except WorkerLostError:
        observe_task(queue, time.perf_counter() - sent, "worker_lost")
        # The pool process running the call died (OOM killer, SIGKILL); nothing was answered, a retry may succeed.
        log.warning("%s: the worker process running it was lost", task.name)
        raise APIError(
            502,
            "worker_lost",
            f"the {queue} worker running this call was lost; retry the call",
            headers={"Retry-After": 1},
        ) from None
    finally:
        result.forget()
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


def _trimmed(parts: dict, waited_ms: float) -> dict:
    """The worker's parts with its queue wait cut so that queue + work <= the wait measured on this side."""
    clean = {k: float(v) for k, v in parts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    work = sum(v for k, v in clean.items() if k != "queue")
    if "queue" in clean:
        clean["queue"] = max(0.0, min(clean["queue"], waited_ms - work))
    return clean
