"""A model or function endpoint's `pool`: its admission limits and the queue its work goes to, checked on save."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import invalid
from app.publishing.endpoint_config import Endpoint

# The queue each kind shares with every organization unless its endpoint names one of its own.
SHARED_QUEUES = {"model": "predict", "function": "functions"}
# A named queue is the kind's shared queue plus a dot and a short lowercase name: `predict.fraud`,
# `functions.billing`. The name becomes a Celery queue (a Redis key) and a `-Q` argument, so nothing else is taken.
QUEUE_NAME = {
    "model": re.compile(r"predict(\.[a-z0-9][a-z0-9_-]{0,39})?"),
    "function": re.compile(r"functions(\.[a-z0-9][a-z0-9_-]{0,39})?"),
}
POOL_FIELDS = ("max_in_flight", "max_queued", "queue_timeout_ms", "queue")
DEFAULTS = {"max_in_flight": 8, "max_queued": 32, "queue_timeout_ms": 2000}
BOUNDS = {"max_in_flight": (1, 1000), "max_queued": (0, 10_000), "queue_timeout_ms": (1, 600_000)}


@dataclass(frozen=True)
class PoolConfig:
    """At most `max_in_flight` calls of the endpoint run at once (installation-wide), `max_queued` more wait, each
    at most `queue_timeout_ms` until its task starts; anything beyond is refused at once."""

    max_in_flight: int
    max_queued: int
    queue_timeout_ms: int
    queue: str

    @property
    def queue_timeout_s(self) -> float:
        return self.queue_timeout_ms / 1000


def validate_pool(value, field: str, kind: str) -> dict:
    """The `pool` object normalised (every field filled), or a 422 naming `<field>.<name>`."""
    if not isinstance(value, dict):
        raise invalid(field, "expected an object {max_in_flight, max_queued, queue_timeout_ms, queue}")
    unknown = sorted(set(value) - set(POOL_FIELDS))
    if unknown:
        raise invalid(f"{field}.{unknown[0]}", f"unknown field; a pool takes {', '.join(POOL_FIELDS)}")
    normal: dict = {}
    for name, default in DEFAULTS.items():
        number = value.get(name, default)
        low, high = BOUNDS[name]
        if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
            raise invalid(f"{field}.{name}", f"an integer from {low} to {high}")
        normal[name] = number
    queue = value.get("queue", SHARED_QUEUES[kind])
    if not isinstance(queue, str) or not QUEUE_NAME[kind].fullmatch(queue):
        shared = SHARED_QUEUES[kind]
        raise invalid(
            f"{field}.queue",
            f"{shared!r} (shared) or {shared}.<name> with 1-40 lowercase letters, digits, _ or - (e.g. {shared}.fraud)",
        )
    normal["queue"] = queue
    return normal


def pool_of(endpoint: Endpoint) -> PoolConfig | None:
    """The saved (already validated) pool of a model or function endpoint; None when it has none."""
    pool = endpoint.get("pool")
    if not pool:
        return None
    return PoolConfig(pool["max_in_flight"], pool["max_queued"], pool["queue_timeout_ms"], pool["queue"])


def queue_of(endpoint: Endpoint) -> str:
    """The queue a model or function endpoint's work goes to."""
    pool = endpoint.get("pool")
    return pool["queue"] if pool else SHARED_QUEUES[endpoint.kind]
