"""A process's audit records on their way to Redis. A served call hands its record to the outbox and answers; the
next keyed call of the process carries the waiting records in its own round trip (the serve script writes them
before its rate limit, app/keys/ratelimit.py), so a call's bookkeeping costs no round trip of its own. When no call
comes, a writer thread sends them within `WRITER_TICK_S`.

What a record costs when something fails: Redis down, the records are dropped and counted (`dropped`), as a record
the buffer could not take always was; the process killed outright (SIGKILL, OOM), the records of its last moments
(at most `WRITER_TICK_S` of them when idle, the last few calls' under load) are lost. A process that exits normally
(gunicorn's graceful stop, a worker's shutdown) sends what is left first (`atexit`), and `flush_serving_records`
sends this process's records before it moves the buffer to the database.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque

import redis
from flask import Flask, current_app

from app.extensions import _PerProcess, redis_store
from app.keys.usage import LAST_USED_KEY
from app.namespace import run_script

log = logging.getLogger(__name__)

AUDIT_KEY = "apiary:audit"
FLUSH_THROTTLE_KEY = "apiary:flush_scheduled"  # set for 2 s when a flush is scheduled: at most one every 2 s
AUDIT_MAX_LEN = 100_000  # the buffer's cap: if the flush falls behind, the oldest records go (Redis memory bounded)
# What a script writing records is given: the audit list, the keys' last-use hash, the flush flag, the list's cap.
BOOKKEEPING = (AUDIT_KEY, LAST_USED_KEY, FLUSH_THROTTLE_KEY, AUDIT_MAX_LEN)
MAX_PENDING = 10_000  # records held in the process while Redis cannot take them; the oldest go first
CARRIED = 50  # records a keyed call carries at most (its round trip stays small)
BATCH = 500  # records per run of the writer's script (Lua's unpack has a stack limit of a few thousand values)
WRITER_TICK_S = 0.05  # how long a record waits at most when no call comes to carry it
IDLE_EXIT_S = 5.0  # the writer thread ends after this long without records; the next record starts another

# ARGV: the cap, n, n records, then n (key id, time) pairs (the records part of app/keys/ratelimit.py's _SERVE).
_SEND = """
local cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local length = redis.call('RPUSH', KEYS[1], unpack(ARGV, 3, 2 + n))
if length > cap then redis.call('LTRIM', KEYS[1], -cap, -1) end
redis.call('HSET', KEYS[2], unpack(ARGV, 3 + n, 2 + 3 * n))
local flush = redis.call('SET', KEYS[3], 1, 'NX', 'EX', 2)
return {length, flush and 1 or 0}
"""

Record = tuple[str, str, str]  # (record JSON, key id, time of use)


class AuditOutbox:
    """Records of this process not yet in Redis, and the thread that sends those no call carried (see above)."""

    def __init__(self, app: Flask, client: redis.Redis):
        self._app = app
        self._redis = client
        self._script = client.register_script(_SEND)
        self._pending: deque[Record] = deque()
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one writer run at a time: `flush` waits for the writer's batch
        self._writer: threading.Thread | None = None
        self._retick = threading.Event()
        self.tick_s = WRITER_TICK_S
        self.dropped = 0  # records lost since start: Redis errors, the pending cap, the buffer's cap

    def put(self, record: str, key_id: int) -> None:
        """Queue one call's record (JSON text, see `audit_entry`) and its key's last use; returns at once."""
        with self._lock:
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append((record, str(key_id), f"{time.time():.3f}"))
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, name="apiary-audit-outbox", daemon=True)
                self._writer.start()

    def take(self, limit: int = CARRIED) -> tuple[Record, ...]:
        """Up to `limit` of the oldest pending records, for a keyed call's round trip to carry."""
        if not self._pending:
            return ()
        with self._lock:
            return tuple(self._pending.popleft() for _ in range(min(limit, len(self._pending))))

    def count_dropped(self, n: int) -> None:
        with self._lock:
            self.dropped += n

    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Send every pending record now, from this thread (after a batch the writer is sending, if any). When Redis
        cannot take a batch, the rest is dropped too (counted) rather than tried batch by batch: a process exiting
        while Redis is away must not wait a connect timeout per batch."""
        while True:
            sent = self._send(self.take(BATCH))
            if sent is None:
                return
            if not sent:
                with self._lock:
                    self.dropped += len(self._pending)
                    self._pending.clear()
                return

    def set_tick(self, seconds: float) -> None:
        """How long a record waits at most when no call carries it; from now on (a waiting writer is woken)."""
        self.tick_s = seconds
        self._retick.set()

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            if self._retick.wait(self.tick_s):
                self._retick.clear()  # woken by `set_tick`: wait again, the new tick
                continue
            if self._pending:
                self.flush()
                idle_since = time.monotonic()
                continue
            with self._lock:
                if not self._pending and time.monotonic() - idle_since >= IDLE_EXIT_S:
                    self._writer = None  # a later `put` starts a new thread
                    return

    def _send(self, batch: tuple[Record, ...]) -> bool | None:
        """One script run writing `batch`: True when Redis took it, False when it could not (the batch is dropped and
        counted), None when there was nothing to send."""
        if not batch:
            return None
        args: list = [AUDIT_MAX_LEN, len(batch), *(record for record, _, _ in batch)]
        for _, key_id, at in batch:
            args += [key_id, at]
        with self._sending:
            try:
                length, flush = run_script(
                    self._redis, self._script, [AUDIT_KEY, LAST_USED_KEY, FLUSH_THROTTLE_KEY], args
                )
            except (redis.RedisError, OSError) as exc:
                self.count_dropped(len(batch))
                log.debug("%d audit records dropped: %s", len(batch), exc)
                return False
        if length > AUDIT_MAX_LEN:
            self.count_dropped(min(len(batch), length - AUDIT_MAX_LEN))
        if flush:
            with self._app.app_context():
                schedule_flush()
        return True


def schedule_flush() -> None:
    """Move the buffered audit records to the database in a second (the task by name: the web process never imports
    the task modules, which load scikit-learn)."""
    try:
        current_app.extensions["celery"].send_task("tasks.maintenance.flush_serving_records", countdown=1)
    except Exception as exc:  # noqa: BLE001 - auditing must never fail a served call; the next call schedules it
        log.warning("could not schedule the audit flush: %s", exc)


def _make_outbox(app: Flask) -> AuditOutbox:
    outbox = AuditOutbox(app, redis_store.get(app))
    atexit.register(outbox.flush)  # a normal exit sends what is left
    return outbox


# One per process (rebuilt after a fork: a thread does not survive one).
audit_outboxes = _PerProcess("apiary_audit_outbox", _make_outbox)


def audit_outbox(app: Flask | None = None) -> AuditOutbox:
    return audit_outboxes.get(app)
