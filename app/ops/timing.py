"""Where a keyed call's time goes: named parts measured here or reported by a worker, answered as `Server-Timing`."""

from __future__ import annotations

import time
from contextvars import ContextVar

# In the order a call goes through them; `total` is the whole call as the web process saw it.
PARTS = ("auth", "ratelimit", "cache", "query", "queue", "score", "function")

_current: ContextVar[Timing | None] = ContextVar("apiary_timing", default=None)


class Timing:
    """The parts of one call, in milliseconds; a part measured twice (two worker round trips) adds up."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.cpu_started = time.thread_time()  # the call runs on one thread of the web process from start to end
        self.parts: dict[str, float] = {}

    def add(self, name: str, ms: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + max(0.0, float(ms))

    def total_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def cpu_ms(self) -> float:
        """CPU time the web process's thread spent on the call so far: `total` without the waits (Redis, the
        database, a worker, and other threads or processes holding the CPU or the GIL)."""
        return (time.thread_time() - self.cpu_started) * 1000

    def summary(self, total_ms: float | None = None) -> dict[str, float]:
        """{part: ms, ..., "cpu": ms, "total": ms}: each part clamped to the total (a worker's clock may be slightly
        off); `cpu` is not a part of the total but the web thread's own CPU time within it."""
        total = self.total_ms() if total_ms is None else total_ms
        out = {name: round(min(self.parts[name], total), 3) for name in PARTS if name in self.parts}
        out["cpu"] = round(min(self.cpu_ms(), total), 3)
        out["total"] = round(total, 3)
        return out


def server_timing_header(summary: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms:.3f}" for name, ms in summary.items())


def start_timing() -> Timing:
    timing = Timing()
    _current.set(timing)
    return timing


def current_timing() -> Timing | None:
    return _current.get()


def record_part(name: str, ms: float) -> None:
    timing = _current.get()
    if timing is not None:
        timing.add(name, ms)


def record_worker_parts(parts: dict | None) -> None:
    """Add the parts a worker reported with its answer (`queue`, `score`, `function`)."""
    if not isinstance(parts, dict):
        return
    for name, ms in parts.items():
        if name in PARTS and isinstance(ms, int | float):
            record_part(name, ms)


class timed:  # noqa: N801 - used as a function: `with timed("auth"): ...`
    """Add the block's wall time to part `name` of the call in progress (a class, not a generator: a keyed call
    times five blocks, and @contextmanager costs several calls each)."""

    __slots__ = ("name", "started")

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc_info) -> None:
        record_part(self.name, (time.perf_counter() - self.started) * 1000)


def worker_parts(sent_at: float | None, started: float, part: str, started_perf: float) -> dict[str, float]:
    """On a worker: `{queue: ms waited since the web process sent the task (wall clocks), part: ms of work}`."""
    parts = {part: round((time.perf_counter() - started_perf) * 1000, 3)}
    if isinstance(sent_at, int | float):
        parts["queue"] = round(max(0.0, (started - sent_at) * 1000), 3)
    return parts
