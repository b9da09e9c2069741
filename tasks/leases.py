"""Admission counters shared by every web process: leased semaphores in Redis, task claims and queue capacity.

A counter held as INCR/DECR leaks a slot for good when a web process dies between the two; here every slot is a
lease (a sorted-set member scored by its expiry, in Redis server time), so a dead holder's slot frees itself when
its lease runs out. Every change is one Lua script, atomic across web servers.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis

from app.namespace import run_script

# KEYS: the running set, the waiting set. The waiting set is ordered by deadline (earliest first), each member ends
# with `.<run lease ms>` so a promoted waiter gets its own lease. A promoted waiter is told on `<waiting>:<member>`.
_PROMOTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(redis.call('GET', KEYS[1] .. ':limit') or '1')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
while redis.call('ZCARD', KEYS[1]) < limit do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 then break end
  local member = head[1]
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], now + tonumber(string.match(member, '%.(%d+)$')), member)
  local go = KEYS[2] .. ':' .. member
  redis.call('RPUSH', go, 1)
  redis.call('PEXPIRE', go, 60000)
end
"""
# ARGV: member, limit, max waiting, waiting ms. 1 = holds a slot, 0 = waiting, -1 = full.
_ACQUIRE = (
    "redis.call('SET', KEYS[1] .. ':limit', ARGV[2], 'PX', 3600000)\n"
    + _PROMOTE
    + """
local member = ARGV[1]
redis.call('PEXPIRE', KEYS[1], 3600000)
redis.call('PEXPIRE', KEYS[2], 3600000)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(string.match(member, '%.(%d+)$')), member)
  return 1
end
if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), member)
  return 0
end
return -1
"""
)
# ARGV: member. 1 = holds a slot, 0 = still waiting, -1 = neither (its wait or lease ran out).
_CHECK = (
    _PROMOTE
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
return -1
"""
)
# ARGV: member. Gives the slot (or the place in line) back and wakes the next waiter.
_RELEASE = (
    """
local held = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[2] .. ':' .. ARGV[1])
"""
    + _PROMOTE
    + "\nreturn held\n"
)

# How often a waiter re-reads its place when nobody released a slot (a lease that ran out frees one silently).
WAIT_SLICE_S = 0.25


# The shortest timeout a blocking read sends. Redis turns the seconds into whole milliseconds, truncating, and reads 0
# as "block forever": 0.0004 s, or 0.001 s (0.999... ms once parsed), hung the read until the socket timeout.
MIN_BLOCK_S = 0.01


def block_timeout(left: float, slice_s: float = float("inf")) -> float:
    """The timeout of one blocking read with `left` seconds to go: at most `slice_s`, at least MIN_BLOCK_S."""
    return max(min(left, slice_s), MIN_BLOCK_S)


class Full(Exception):
    """No slot and no room to wait."""


class WaitedTooLong(Exception):
    """The wait reached its deadline before a slot freed."""


@dataclass(frozen=True)
class Lease:
    semaphore: LeasedSemaphore
    member: str

    def release(self) -> None:
        self.semaphore.release(self.member)

    def handover(self) -> list[str]:
        """What another process needs to release this lease on the same Redis (`release_on`)."""
        return [*self.semaphore.keys, self.member]


def release_on(pipe, handover: object) -> bool:
    """Queue on `pipe` the release of the lease `Lease.handover()` described (a worker releases its caller's slot in
    the round trip of its reply); False, queuing nothing, for anything else."""
    if not (isinstance(handover, list) and len(handover) == 3 and all(isinstance(x, str) for x in handover)):
        return False
    running, waiting, member = handover
    pipe.eval(_RELEASE, 2, running, waiting, member)
    return True


_scripts: dict[int, tuple] = {}


def _registered(client: redis.Redis) -> tuple:
    """The three scripts bound to `client`, registered once per client (EVALSHA, loaded again on NOSCRIPT)."""
    scripts = _scripts.get(id(client))
    if scripts is None or scripts[0] is not client:
        scripts = (client, *(client.register_script(s) for s in (_ACQUIRE, _CHECK, _RELEASE)))
        _scripts[id(client)] = scripts
    return scripts


class LeasedSemaphore:
    """`limit` slots named `base` in Redis; a holder's slot expires after its lease even if never released."""

    def __init__(self, client: redis.Redis, base: str):
        self.client = client
        self.keys = [f"{base}:run", f"{base}:wait"]
        _, self._acquire, self._check, self._release = _registered(client)

    def acquire(self, limit: int, lease_s: float, max_waiting: int, deadline: float) -> Lease:
        """A slot, waiting in line (earliest deadline first) until `deadline` (time.monotonic()) if all are held.

        Raises Full when there is no room to wait, WaitedTooLong past the deadline; redis.RedisError as it comes."""
        member = f"{uuid.uuid4().hex}.{max(1, round(lease_s * 1000))}"
        wait_ms = max(0, round((deadline - time.monotonic()) * 1000))
        state = run_script(self.client, self._acquire, self.keys, [member, limit, max_waiting, wait_ms])
        if state == 1:
            return Lease(self, member)
        if state == -1:
            raise Full
        go = f"{self.keys[1]}:{member}"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.release(member)
                raise WaitedTooLong
            if self.client.blpop([go], timeout=block_timeout(left, WAIT_SLICE_S)):
                return Lease(self, member)
            state = run_script(self.client, self._check, self.keys, [member])
            if state == 1:
                self.client.delete(go)
                return Lease(self, member)
            if state == -1:
                raise WaitedTooLong

    def release(self, member: str) -> None:
        run_script(self.client, self._release, self.keys, [member])

    def held(self) -> int:
        """Slots held now (leases not yet run out)."""
        now_ms = _server_ms(self.client)
        return int(self.client.zcount(self.keys[0], now_ms, "+inf"))


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


# --- task claims: a task whose caller gave up never runs --------------------------------------------------------

CLAIM_KEY = "apiary:claim:{task_id}"
CLAIM_HEADER = "apiary_claim"


def claim_key(task_id: str) -> str:
    return CLAIM_KEY.format(task_id=task_id)


_START = """
if redis.call('SET', KEYS[1], 'started', 'NX', 'PX', ARGV[1]) then
  redis.call('RPUSH', KEYS[1] .. ':started', 1)
  redis.call('PEXPIRE', KEYS[1] .. ':started', ARGV[1])
  return 1
end
redis.call('SET', KEYS[1], 'skipped', 'XX', 'KEEPTTL')
return 0
"""
# A blocking read never outlasts the client's socket timeout (2 s): longer waits are taken in slices.
BLOCK_SLICE_S = 1.0


def start_claim(client: redis.Redis, key: str, ttl_s: float = 3600) -> bool:
    """The worker is about to run the task: True when its caller still waits (who is told at once), False when it
    gave up (the claim is then marked `skipped`)."""
    return bool(client.eval(_START, 1, key, round(ttl_s * 1000)))


def wait_for_start(client: redis.Redis, key: str, until: float) -> bool:
    """Whether a worker starts the claimed task by `until` (time.monotonic()); then the caller waits for its answer,
    else it gives the task up (`cancel_claim`)."""
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return False
        if client.blpop([f"{key}:started"], timeout=block_timeout(left, BLOCK_SLICE_S)):
            return True


def cancel_claim(client: redis.Redis, key: str, ttl_s: float) -> bool:
    """The caller gives up on a queued task: True when the task had not started (it now never will)."""
    return bool(client.set(key, "cancelled", nx=True, px=max(1, round(ttl_s * 1000))))


# --- queue capacity: the live workers' concurrency, from their heartbeats ---------------------------------------

CAPACITY_KEY = "apiary:queue_capacity:{queue}"
_ANNOUNCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], ARGV[2])
  redis.call('ZADD', key .. ':seen', now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', key, 3600000)
  redis.call('PEXPIRE', key .. ':seen', 3600000)
end
"""
_CAPACITY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1] .. ':seen', '-inf', now)
for _, worker in ipairs(gone) do
  redis.call('HDEL', KEYS[1], worker)
  redis.call('ZREM', KEYS[1] .. ':seen', worker)
end
local total = 0
for _, slots in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(slots) end
return total
"""


def announce_capacity(client: redis.Redis, queues: list[str], worker: str, concurrency: int, ttl_s: float) -> None:
    """A worker's heartbeat: `concurrency` task slots on each of `queues`, for `ttl_s` unless announced again."""
    if queues:
        keys = [CAPACITY_KEY.format(queue=q) for q in queues]
        client.eval(_ANNOUNCE, len(keys), *keys, worker, concurrency, round(ttl_s * 1000))


def queue_capacity(client: redis.Redis, queue: str) -> int:
    """Task slots of the live workers consuming `queue` (0 when none announced itself lately)."""
    return int(client.eval(_CAPACITY, 1, CAPACITY_KEY.format(queue=queue)))
