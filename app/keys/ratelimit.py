"""Per-key rate limits kept in Redis with one atomic GCRA script, so every web process shares the same budget."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis
from flask import Flask

from app.extensions import _PerProcess, redis_store
from app.namespace import run_script

log = logging.getLogger(__name__)

_WARN_EVERY_S = 60.0

# GCRA (generic cell rate algorithm): one number per bucket, the "theoretical arrival time" (TAT) of the next
# request in microseconds. The script reads the server's TIME so the clocks of web processes don't matter; since
# Redis 5 scripts replicate their effects, so TIME before a write needs no redis.replicate_commands().
# Numbers are written with %.0f because Lua's default number-to-string keeps only 14 digits.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local gen = false
if #KEYS > 1 then gen = redis.call('GET', KEYS[2]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, string.format('%.0f', tat - now), string.format('%.0f', allow_at - now), gen}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, string.format('%.0f', new_tat - now), '0', gen}
"""


# A keyed call's one round trip (issue 15). First the bookkeeping of earlier calls this process answered (their audit
# records, their keys' last use: app/serving/audit_outbox.py), then the GCRA above, the serving generation, and, for a
# result-cached endpoint, the cache's asset and rules generations and the cached answer (KEYS[8] is the entry's name
# with `{G}` and `{R}` standing for the two generations). On a hit that needs nothing else (allowed, serving
# generation as expected), this call's own audit record and its key's last use are written too. Whenever a record
# is written, the flush flag (KEYS[5]) says whether this call should schedule the flush task.
# KEYS: bucket, generation, audit list, last-use hash, flush flag, [asset generation, rules generation, entry].
# ARGV: interval, burst, expected generation, the list's cap, n, n records, n (key id, time) pairs, [the hit's
# record, key id, time].
_SERVE = """
local cap = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local flush = false
if n > 0 then
  if redis.call('RPUSH', KEYS[3], unpack(ARGV, 6, 5 + n)) > cap then redis.call('LTRIM', KEYS[3], -cap, -1) end
  redis.call('HSET', KEYS[4], unpack(ARGV, 6 + n, 5 + 3 * n))
  flush = redis.call('SET', KEYS[5], 1, 'NX', 'EX', 2)
end
local gen = redis.call('GET', KEYS[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, string.format('%.0f', tat - now), string.format('%.0f', allow_at - now), gen, flush and 1 or 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
local remaining = math.floor((now - allow_at) / interval)
local reset = string.format('%.0f', new_tat - now)
if #KEYS < 8 then return {1, remaining, reset, '0', gen, flush and 1 or 0} end
local ag = redis.call('GET', KEYS[6]) or '0'
local rg = redis.call('GET', KEYS[7]) or '0'
local name = string.gsub(string.gsub(KEYS[8], '{G}', ag), '{R}', rg)
local hit = redis.call('GET', name)
local audited = 0
local h = 6 + 3 * n
if hit and #ARGV >= h + 2 and (gen or '0') == ARGV[3] then
  if redis.call('RPUSH', KEYS[3], ARGV[h]) > cap then redis.call('LTRIM', KEYS[3], -cap, -1) end
  redis.call('HSET', KEYS[4], ARGV[h + 1], ARGV[h + 2])
  if not flush then flush = redis.call('SET', KEYS[5], 1, 'NX', 'EX', 2) end
  audited = 1
end
return {1, remaining, reset, '0', gen, flush and 1 or 0, ag, rg, hit, audited}
"""


@dataclass(frozen=True)
class Probe:
    """What the serve script reads and writes beside the rate limit (see `_SERVE`)."""

    generation_key: str
    cache_keys: tuple[str, str, str] | None = None  # asset generation, rules generation, entry template
    expected_generation: int | None = None  # the serving generation the call's cached data belongs to
    bookkeeping: tuple[str, str, str, int] | None = None  # the audit list, last-use hash, flush flag, the list's cap
    records: tuple[tuple[str, str, str], ...] = ()  # earlier calls' (record JSON, key id, time), written first
    hit_record: tuple[str, str, str] | None = None  # this call's (record JSON, key id, time), written on a hit


@dataclass(frozen=True)
class Decision:
    """The outcome of one hit: whether it may proceed and what to tell the client about its budget."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the whole budget is back
    retry_after_seconds: int  # 0 when allowed, else >= 1
    known: bool = True  # False when Redis could not be asked: the call was let through blind
    generation: int | None = None  # the serving generation read in the same round trip (None: not asked / unknown)
    cache_generations: tuple[int, int] | None = None  # the result cache's (asset, rules) generations, if probed
    cached: bytes | str | None = None  # the cached answer, if probed and present
    audited: bool = False  # the script wrote the call's audit record (a hit)
    flush_due: bool = False  # the script wrote records and the flush flag was free: schedule a flush

    def headers(self) -> dict[str, str]:
        """`RateLimit-*` headers for every response, plus `Retry-After` on a refusal; none when the budget is
        unknown (Redis down), rather than claiming a full one."""
        if not self.known:
            return {}
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_seconds)
        return out


class RateLimiter:
    """`limit_per_minute` requests a minute per bucket (GCRA), with a burst of the whole limit.

    A fresh bucket admits exactly `limit` immediate calls; after that one call is admitted every `60 / limit`
    seconds, and a bucket left alone refills to the full limit within a minute. So the sustained rate is `limit`
    a minute, and no 60 s window ever sees more than `2 * limit - 1` (a full burst, then the refill).

    When Redis cannot be reached the limiter fails open: the call is allowed, with an unknown budget (no
    `RateLimit-*` headers), and a warning is logged at most once per 60 s. After a failure Redis is not asked
    again for `retry_after_s`, so an outage costs one connect timeout, not one per request. Rate limiting
    protects capacity; refusing every paying client because the limiter's store is down would turn a Redis outage
    into a full serving outage, which is the worse failure. Build one limiter per process (`process_rate_limiter`)
    so the throttling of warnings and retries holds across requests.
    """

    def __init__(self, redis_client: redis.Redis, prefix: str = "apiary:rl", retry_after_s: float = 5.0):
        self.redis = redis_client
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        # register_script runs EVALSHA and loads the script on NOSCRIPT (a restarted or flushed server).
        self._script = redis_client.register_script(_GCRA)
        self._serve = redis_client.register_script(_SERVE)
        self._last_warning = -math.inf
        self._down_until = -math.inf

    def hit(self, bucket: str, limit_per_minute: int, generation_key: str | None = None) -> Decision:
        """Count one request against `bucket` (e.g. `key:42`) and say whether it is within `limit_per_minute`.

        With `generation_key`, that counter is read in the same script (one round trip) into `Decision.generation`
        (0 when unset)."""
        if isinstance(limit_per_minute, bool) or not isinstance(limit_per_minute, int) or limit_per_minute < 1:
            raise ValueError(f"limit_per_minute must be a positive integer, got {limit_per_minute!r}")
        interval_us = max(1, round(60_000_000 / limit_per_minute))
        unknown = Decision(True, limit_per_minute, limit_per_minute, 0, 0, known=False)
        if time.monotonic() < self._down_until:
            return unknown
        try:
            keys = [f"{self.prefix}:{bucket}"] + ([generation_key] if generation_key else [])
            allowed, remaining, reset_us, retry_us, *gen = self._script(keys=keys, args=[interval_us, limit_per_minute])
        except (redis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.retry_after_s
            self._warn(exc)
            return unknown
        return Decision(
            allowed=bool(allowed),
            limit=limit_per_minute,
            remaining=max(0, int(remaining)),
            reset_seconds=math.ceil(int(reset_us) / 1_000_000),
            retry_after_seconds=0 if allowed else max(1, math.ceil(int(retry_us) / 1_000_000)),
            generation=_generation(gen[0] if gen else None) if generation_key else None,
        )

    def hit_serving(self, bucket: str, limit_per_minute: int, probe: Probe) -> Decision:
        """`hit` plus, in the same round trip, what `probe` asks (serving generation, cache read, audit record)."""
        if isinstance(limit_per_minute, bool) or not isinstance(limit_per_minute, int) or limit_per_minute < 1:
            raise ValueError(f"limit_per_minute must be a positive integer, got {limit_per_minute!r}")
        interval_us = max(1, round(60_000_000 / limit_per_minute))
        unknown = Decision(True, limit_per_minute, limit_per_minute, 0, 0, known=False)
        if time.monotonic() < self._down_until:
            return unknown
        audit_list, usage_hash, flag, cap = probe.bookkeeping or ("", "", "", 0)
        records = probe.records if probe.bookkeeping is not None else ()
        keys = [f"{self.prefix}:{bucket}", probe.generation_key, audit_list, usage_hash, flag]
        args: list = [interval_us, limit_per_minute, str(probe.expected_generation), cap, len(records)]
        args += [record for record, _, _ in records]
        for _, key_id, at in records:
            args += [key_id, at]
        if probe.cache_keys is not None:
            keys += probe.cache_keys
            if probe.hit_record is not None and probe.bookkeeping is not None and probe.expected_generation is not None:
                args += probe.hit_record
        try:
            reply = run_script(self.redis, self._serve, keys, args)
        except (redis.RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.retry_after_s
            self._warn(exc)
            return unknown
        allowed, remaining, reset_us, retry_us, gen, flush, *rest = reply
        extra = {"flush_due": bool(flush)}
        if rest:
            ag, rg, hit, audited = rest
            generations = (_generation(ag), _generation(rg))
            if None not in generations:
                extra["cache_generations"] = generations
                extra["cached"] = hit
            extra["audited"] = bool(audited)
        return Decision(
            allowed=bool(allowed),
            limit=limit_per_minute,
            remaining=max(0, int(remaining)),
            reset_seconds=math.ceil(int(reset_us) / 1_000_000),
            retry_after_seconds=0 if allowed else max(1, math.ceil(int(retry_us) / 1_000_000)),
            generation=_generation(gen),
            **extra,
        )

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.warning("rate limiter cannot reach Redis, letting requests through: %s", exc)


def _generation(raw) -> int | None:
    if raw is None:  # Lua false (the counter was never set)
        return 0
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _make_rate_limiter(app: Flask) -> RateLimiter:
    return RateLimiter(redis_store.get(app))


# One limiter per process (rebuilt after a fork), so its outage state and warning throttle span requests.
rate_limiter = _PerProcess("apiary_rate_limiter", _make_rate_limiter)


def process_rate_limiter() -> RateLimiter:
    """This process's limiter over this process's Redis client."""
    return rate_limiter.get()
