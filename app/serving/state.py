"""What serving computes once per process: keys, published configs, prepared queries, masking, scoring models.

Every entry is valid for one *serving generation*, a counter in Redis (`apiary:serving_gen`, under the
installation's namespace) that `bump_serving_generation()` increments after any change that could alter a served
answer: publish, unpublish, rollback, a key revoked, updated or rotated, a dataset's settings, data or deletion, a
model activated or deleted. A keyed call reads the generation in the same Redis round trip as its rate limit (the
limiter's script returns it); when it differs from the generation this call's cached data belongs to, the process
drops everything it cached and the call is checked again from the database before anything is served. So a change
made through one server is effective on the very next call on every server, and a cached call issues no SQL.

Fail safe when Redis cannot be asked: the cache is only trusted for `TRUST_S` (1 s) after the generation was last
read; past that the process drops its cache and serves from the database until Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from flask import Flask, has_app_context

from app.extensions import _PerProcess, redis_store

log = logging.getLogger(__name__)

GENERATION_KEY = "apiary:serving_gen"
TRUST_S = 1.0  # how long cached entries are trusted without a fresh generation from Redis
MAX_ENTRIES = 10_000  # per process: a flood of distinct entries (keys, assets) clears the cache, never grows it


class ServingState:
    """One process's cache of serving data, tied to the serving generation it was read under."""

    def __init__(self, redis_client: Any):
        self.redis = redis_client
        self.generation: int | None = None  # the generation the cached entries belong to (None: nothing cached)
        self.confirmed_at = -float("inf")  # monotonic time the generation was last read from Redis
        self._entries: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def begin(self) -> int | None:
        """At the start of a call: the generation its cached reads belong to. Whether they may be served is decided
        once the call has read the current generation (or failed to: see `trusted`)."""
        return self.generation

    def trusted(self) -> bool:
        """Without a generation from Redis: whether the cache was confirmed within `TRUST_S`; if not, it is dropped."""
        if time.monotonic() - self.confirmed_at <= TRUST_S:
            return True
        self.clear()
        return False

    def observe(self, generation: int | None) -> None:
        """Record a generation read from Redis (None: Redis could not say). A new one drops the cache."""
        if generation is None:
            return
        with self._lock:
            if generation != self.generation:
                self._entries.clear()
                self.generation = generation
            self.confirmed_at = time.monotonic()

    def read_generation(self) -> int | None:
        """One GET of the generation (for calls that end before the rate limit's round trip); None if Redis fails."""
        try:
            return parse_generation(self.redis.get(GENERATION_KEY))
        except Exception as exc:  # noqa: BLE001 - serving must carry on from the database
            log.debug("serving generation unavailable: %s", exc)
            return None

    def get(self, kind: str, key: Any, load: Callable[[], Any], generation: int | None) -> Any:
        """The cached value of (kind, key) under `generation`, else `load()` (kept if the generation still holds)."""
        slot = (kind, key)
        if generation is not None:
            hit = self._entries.get(slot, _MISSING)
            if hit is not _MISSING:
                return hit
        value = load()
        if generation is not None and value is not None:
            with self._lock:
                if self.generation == generation:
                    if len(self._entries) >= MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[slot] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.generation = None
            self.confirmed_at = -float("inf")


_MISSING = object()


def parse_generation(raw: Any) -> int | None:
    if raw is None:
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _make_state(app: Flask) -> ServingState:
    return ServingState(redis_store.get(app))


serving_states = _PerProcess("apiary_serving_state", _make_state)


def serving_state() -> ServingState:
    return serving_states.get()


# During a keyed call: the process's serving state and the generation the call reads under (see `read_under`).
_reading: ContextVar[tuple[ServingState, int] | None] = ContextVar("apiary_serving_reading", default=None)


def begin_keyed_call() -> Token:
    """Open a keyed call's scope (`audited_call`): nothing is read through the cache until `read_under` says so, and
    `end_keyed_call` closes it, so no other work on the thread (dry runs, the console, the CLI) ever does."""
    return _reading.set(None)


def end_keyed_call(token: Token) -> None:
    _reading.reset(token)


def read_under(state: ServingState, generation: int | None) -> None:
    """From here to the end of the keyed call, `memo` reads through `state`'s cache under `generation` (None: load
    everything from the database)."""
    _reading.set(None if generation is None else (state, generation))


def memo(kind: str, key: Any, load: Callable[[], Any]) -> Any:
    """`load()` through this process's cache during a keyed call (after `read_under`); anything else (dry runs, the
    console, the CLI) always loads."""
    reading = _reading.get()
    if reading is None:
        return load()
    return reading[0].get(kind, key, load, reading[1])


def bump_serving_generation() -> None:
    """Make every process drop what it cached for serving, from its next keyed call on. Call it AFTER the change is
    committed (a process reading the database between a bump and a later commit would cache the old data)."""
    if not has_app_context():
        log.warning("serving generation not bumped outside an app context")
        return
    state = serving_state()
    state.clear()  # this process at once, even if Redis is down
    try:
        state.redis.incr(GENERATION_KEY)
    except Exception as exc:  # noqa: BLE001 - the change is committed; other servers catch up within TRUST_S
        log.warning("could not bump the serving generation (other servers trust their cache for %ss): %s", TRUST_S, exc)
