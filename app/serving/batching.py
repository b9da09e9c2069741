"""Group scoring: requests for the same model that arrive while one is being scored go to the worker together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.errors import APIError


class _Waiter:
    __slots__ = ("rows", "deadline", "event", "lead", "gone", "result", "error")

    def __init__(self, rows: list[dict], deadline: float):
        self.rows = rows
        self.deadline = deadline  # time.monotonic() past which the caller is answered 504
        self.event = threading.Event()
        self.lead = False
        self.gone = False  # answered 504 at its deadline: never queued or promoted again
        self.result: dict | None = None
        self.error: BaseException | None = None


class GroupScorer:
    """Per process. No waiting window: a request alone is sent at once (no added latency); requests that arrive
    while a call for the same model is in flight queue up and are sent as one call when it returns.

    Every request keeps its own deadline, waiting in line included: a batch is sent with what is left of its oldest
    request's time (the one leading it; the others came later and have more), so no answer comes after the caller's
    deadline and a call queued behind another is a 504 at its deadline, not after a fresh one. When a batch runs out
    of its leader's time, the leader is the 504; the others, with time left, go back to the head of the line."""

    def __init__(self, max_rows: int = 10_000):
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._queues: dict[tuple, list[_Waiter]] = {}
        self._busy: set[tuple] = set()

    def score(self, key: tuple, rows: list[dict], send: Callable[[list[dict], float], dict], timeout_s: float) -> dict:
        """`send(rows, seconds)` scores rows on a worker ({predictions, probabilities}) within `seconds`; every caller
        gets its own slice, within `timeout_s` of this call."""
        me = _Waiter(rows, time.monotonic() + timeout_s)
        with self._lock:
            self._queues.setdefault(key, []).append(me)
            if key not in self._busy:
                self._busy.add(key)
                me.lead = True
        if not me.lead:
            me.event.wait(max(0.0, me.deadline - time.monotonic()))
            with self._lock:
                gave_up = me.result is None and me.error is None and not me.lead
                queue = self._queues.get(key)
                if gave_up:
                    me.gone = True  # never put back in line or promoted later: a leader must be someone waiting
                    if queue and me in queue:
                        queue.remove(me)
            if gave_up:
                raise _timeout(timeout_s)
        if me.result is None and me.error is None:
            left = me.deadline - time.monotonic()
            if left <= 0:  # promoted as its time ran out: the next in line leads instead
                with self._lock:
                    self._queues[key].remove(me)
                    self._pass_on(key)
                raise _timeout(timeout_s)
            self._lead(key, me, send, left, timeout_s)
        if me.error is not None:
            raise me.error
        return me.result

    def _lead(
        self, key: tuple, me: _Waiter, send: Callable[[list[dict], float], dict], left: float, timeout_s: float
    ) -> None:
        with self._lock:
            queue = self._queues.get(key, [])
            batch, total = [], 0
            while queue and (not batch or total + len(queue[0].rows) <= self.max_rows):
                waiter = queue.pop(0)
                batch.append(waiter)
                total += len(waiter.rows)
        try:
            answer = send([row for waiter in batch for row in waiter.rows], left)
            start = 0
            for waiter in batch:
                end = start + len(waiter.rows)
                probabilities = answer.get("probabilities")
                waiter.result = {
                    "predictions": answer["predictions"][start:end],
                    "probabilities": probabilities[start:end] if probabilities is not None else None,
                }
                if "timing" in answer:  # the worker's queue wait and scoring time, the same for the whole batch
                    waiter.result["timing"] = answer["timing"]
                start = end
        except BaseException as exc:  # every caller of the batch gets the same error, but for a timeout
            if isinstance(exc, APIError) and exc.status == 504 and exc.code == "timeout":
                exc = _timeout(timeout_s)  # the callers' deadline, not the part of it the batch was sent with
                with self._lock:  # the leader's time ran out, not theirs: the others go back to the head of the line
                    now = time.monotonic()
                    again = [w for w in batch if w is not me and not w.gone and w.deadline > now]
                    self._queues.setdefault(key, [])[0:0] = again
                batch = [w for w in batch if w not in again]
            for waiter in batch:
                waiter.error = exc
        with self._lock:
            self._pass_on(key)
        for waiter in batch:
            waiter.event.set()

    def _pass_on(self, key: tuple) -> None:
        """The next in line leads; with nobody waiting the model is free. Called with the lock held."""
        queue = self._queues.get(key)
        if queue:
            queue[0].lead = True
            queue[0].event.set()
        else:
            self._queues.pop(key, None)
            self._busy.discard(key)


def _timeout(timeout_s: float) -> APIError:
    return APIError(504, "timeout", f"no answer within {timeout_s:g} s")


_scorer: GroupScorer | None = None
_scorer_lock = threading.Lock()


def group_scorer() -> GroupScorer:
    global _scorer
    with _scorer_lock:
        if _scorer is None:
            _scorer = GroupScorer()
        return _scorer
