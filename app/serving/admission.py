"""Admission control of model and function endpoints: the endpoint's pool (calls in flight and queued, counted in
Redis across every web server) and the queue its work goes to."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from flask import current_app

from app.errors import overloaded, unavailable
from app.extensions import redis_store
from app.publishing.endpoint_config import Endpoint
from app.publishing.pool_config import PoolConfig, pool_of, queue_of
from tasks.leases import Full, LeasedSemaphore, WaitedTooLong

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkRoute:
    """Where a call's work goes: its queue, whose work it is (for the fair share), and by when (time.monotonic())
    its task must have started (None: no pool, the call's own timeout bounds the wait)."""

    queue: str
    org_id: int
    deadline: float | None = None
    pool: str | None = None  # the endpoint pool whose slot the call holds (calls of two pools are never grouped)


def pool_key(asset_id: int, endpoint_id: str) -> str:
    return f"apiary:pool:{asset_id}:{endpoint_id}"


def run_seconds(kind: str) -> float:
    """The longest a call of `kind` may run once admitted: a model call scores (its wait behind a batch of its model
    included) and then explains, a deadline each; a function call its handler's deadline plus the jail's kill
    grace."""
    config = current_app.config
    if kind == "model":
        return 2 * float(config["PREDICT_TIMEOUT_SECONDS"])
    return float(config["FUNCTION_TIMEOUT_SECONDS"]) + 5


@contextmanager
def admitted(endpoint: Endpoint, org_id: int, scope: tuple[int, int] | None) -> Iterator[WorkRoute]:
    """Hold a slot of the endpoint's pool while its work runs (live calls only: `scope` is (asset id, version),
    None for the Test pane's dry run, which no pool counts). 503 `overloaded` with `Retry-After` at once when
    `max_in_flight` calls run and `max_queued` wait, or once a queued call has waited `queue_timeout_ms`."""
    route = WorkRoute(queue_of(endpoint), org_id)
    pool = pool_of(endpoint) if scope is not None else None
    if pool is None:
        yield route
        return
    deadline = time.monotonic() + pool.queue_timeout_s
    lease = _take_slot(pool, scope[0], endpoint.id, run_seconds(endpoint.kind), deadline)
    try:
        yield WorkRoute(route.queue, org_id, deadline, pool_key(scope[0], endpoint.id))
    finally:
        try:
            lease.release()
        except redis.RedisError:
            log.warning("could not release a pool slot of endpoint %s; its lease runs out by itself", endpoint.id)


def _take_slot(pool: PoolConfig, asset_id: int, endpoint_id: str, run_s: float, deadline: float):
    semaphore = LeasedSemaphore(redis_store.get(), pool_key(asset_id, endpoint_id))
    # A holder that dies mid-call (its web process killed) frees its slot when this lease runs out.
    lease_s = pool.queue_timeout_s + run_s + 2
    try:
        return semaphore.acquire(pool.max_in_flight, lease_s, pool.max_queued, deadline)
    except Full:
        raise overloaded(
            f"endpoint {endpoint_id!r} is at its limit of {pool.max_in_flight} calls in flight and "
            f"{pool.max_queued} queued; try again shortly",
            "full",
        ) from None
    except WaitedTooLong:
        raise overloaded(
            f"endpoint {endpoint_id!r}: the call waited past its queue_timeout_ms ({pool.queue_timeout_ms})",
            "queue_timeout",
        ) from None
    except redis.RedisError as exc:
        log.warning("admission counters unavailable: %s", exc)
        raise unavailable(
            "broker_unavailable", "the task queue is unavailable; try again shortly", headers={"Retry-After": 1}
        ) from None
