"""Warm jails: a few running jails per worker process, each serving one published endpoint version only.

A jail is kept for the next call of exactly the same key (organization, asset, published version, endpoint, handler
source, limits), never lent to another key, and ended after `max_calls` calls, `max_age_s` seconds after it started
(idle or not), any failed call, or a call that leaves a process or thread of the handler running.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from app.sandbox.jail import JailLimits
from app.sandbox.jail_process import JailProcess


@dataclass(frozen=True)
class WarmKey:
    """Which published endpoint version a jail serves; the source hash guards against anything else changing."""

    org_id: int
    asset_id: int
    version: int
    endpoint_id: str
    source_sha256: str

    @classmethod
    def for_endpoint(cls, identity: dict | None, source: str) -> WarmKey | None:
        """The key of a live call's endpoint; None (a fresh jail) for dry runs and anything not fully identified."""
        if not isinstance(identity, dict):
            return None
        org_id, asset_id, version = identity.get("org_id"), identity.get("asset_id"), identity.get("version")
        endpoint_id = identity.get("endpoint_id")
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in (org_id, asset_id, version)):
            return None
        if not isinstance(endpoint_id, str) or not endpoint_id:
            return None
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(org_id, asset_id, version, endpoint_id, digest)


@dataclass(frozen=True)
class Slot:
    """What a warm jail can be reused for: the same endpoint version, with the same limits and interpreter."""

    key: WarmKey
    limits: JailLimits
    python: str


class WarmPool:
    """At most `size` idle jails of one worker process, least recently used evicted (and killed) first.

    A slot may hold several idle jails: calls of one endpoint version running at once (a threads pool) each take
    one, and each is kept for the slot's next calls, instead of all but one being killed and started again cold."""

    def __init__(self, size: int, max_calls: int, max_age_s: float) -> None:
        self.size, self.max_calls, self.max_age_s = size, max_calls, max_age_s
        self.pid = os.getpid()
        self._idle: OrderedDict[Slot, list[JailProcess]] = OrderedDict()  # least recently used slot first
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.size >= 1 and self.max_calls >= 2 and self.max_age_s > 0

    def checkout(self, slot: Slot) -> JailProcess | None:
        """The idle jail of `slot`, taken out of the pool while it serves a call; None when there is none alive."""
        with self._lock:
            stack = self._idle.get(slot)
            jail = stack.pop() if stack else None  # the most recently used jail of the slot
            if stack is not None and not stack:
                del self._idle[slot]
        if jail is None:
            return None
        if self._expired(jail) or not jail.alive():
            jail.kill()  # killed from outside, or too old: the caller starts a fresh one
            return None
        return jail

    def checkin(self, slot: Slot, jail: JailProcess) -> None:
        """Keep `jail` for the next call of `slot`, or kill it when it has served its calls, its time or is not idle."""
        if jail.calls >= self.max_calls or self._expired(jail) or not jail.settled():
            jail.kill()
            return
        ended = []
        with self._lock:
            self._idle.setdefault(slot, []).append(jail)
            self._idle.move_to_end(slot)
            while sum(len(stack) for stack in self._idle.values()) > self.size:
                oldest = next(iter(self._idle))
                ended.append(self._idle[oldest].pop(0))
                if not self._idle[oldest]:
                    del self._idle[oldest]
            if self._reaper is None:
                self._stop.clear()
                self._reaper = threading.Thread(target=self._reap, name="apiary-jail-reaper", daemon=True)
                self._reaper.start()
        for old in ended:
            old.kill()

    def jails(self) -> list[tuple[Slot, JailProcess]]:
        """The idle jails with their slots, least recently used first."""
        with self._lock:
            return [(slot, jail) for slot, stack in self._idle.items() for jail in stack]

    def close(self) -> None:
        """Kill every idle jail (and stop the reaper)."""
        self._stop.set()
        with self._lock:
            ended, self._idle = [jail for stack in self._idle.values() for jail in stack], OrderedDict()
        for jail in ended:
            jail.kill()

    def forget(self) -> None:
        """In a forked child: the jails belong to the parent; close our copies of their descriptors, kill nothing."""
        for stack in self._idle.values():
            for jail in stack:
                jail.forget()
        self._idle = OrderedDict()
        self._lock = threading.Lock()
        self._reaper = None

    def _expired(self, jail: JailProcess) -> bool:
        return time.monotonic() - jail.started_at >= self.max_age_s

    def _reap(self) -> None:
        """Kill jails past their age while nobody calls them, so an idle jail never outlives `max_age_s`."""
        interval = min(1.0, max(0.05, self.max_age_s / 4))
        me = threading.current_thread()
        while True:
            stopped = self._stop.wait(interval)
            with self._lock:
                jails = []
                for slot, stack in list(self._idle.items()):
                    # One look per jail: asked twice, a jail that crossed its age in between left the pool unkilled.
                    ended = [jail for jail in stack if self._expired(jail)]
                    jails += ended
                    stack[:] = [jail for jail in stack if jail not in ended]
                    if not stack:
                        del self._idle[slot]
                done = stopped or not self._idle
                if done and self._reaper is me:
                    self._reaper = None
            for jail in jails:
                jail.kill()
            if done:
                return


_process_pool: WarmPool | None = None


def process_pool(size: int, max_calls: int, max_age_s: float) -> WarmPool:
    """This worker process's pool, rebuilt when its settings change or after a fork."""
    global _process_pool
    pool = _process_pool
    if (
        pool is not None
        and pool.pid == os.getpid()
        and (pool.size, pool.max_calls, pool.max_age_s)
        == (
            size,
            max_calls,
            max_age_s,
        )
    ):
        return pool
    if pool is not None:
        if pool.pid == os.getpid():
            pool.close()
        else:
            pool.forget()
    _process_pool = WarmPool(size, max_calls, max_age_s)
    return _process_pool


def _forget_after_fork() -> None:
    if _process_pool is not None and _process_pool.pid != os.getpid():
        _process_pool.forget()


os.register_at_fork(after_in_child=_forget_after_fork)
