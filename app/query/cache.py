"""The result cache: served query results in Redis, keyed by asset version, generation, params and key policy."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from app.query.policy import KeyPolicy

log = logging.getLogger(__name__)

_UNCACHED = "uncached"


class ResultCache:
    """Best-effort cache: every Redis failure is swallowed so serving carries on uncached.

    Old entries are never deleted, they become unreachable: the published version is part of the key (a publish or
    rollback makes a new version), and so is a per-asset generation counter that `invalidate_asset` bumps (call it
    on publish, unpublish and rollback, which also covers unpublishing and republishing the same version). Entries
    expire by their TTL.

    The rules an answer was computed under are part of the key too: the key's policy (its fingerprint: masking
    level, ceiling, allowed columns, row scope) and the organization's rules generation, which
    `invalidate_rules(org_id)` bumps whenever a dataset of the organization changes (settings such as masking,
    replaced data, deletion). An answer computed under the old rules is unreachable from the next request on.

    After a Redis failure the cache stays off for `retry_after_s` seconds, so a Redis outage costs one failed call
    rather than a connect timeout on every request; the failure is logged once per outage.
    """

    def __init__(self, redis_client: Any, prefix: str = "apiary:rc", retry_after_s: float = 5.0):
        self.redis = redis_client
        self.prefix = prefix
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._outage_logged = False

    def make_key(
        self,
        asset_id: int,
        version: int,
        endpoint_id: str,
        params: Mapping[str, Any],
        policy: KeyPolicy,
        used_params: Iterable[str] | None = None,
        org_id: int | None = None,
    ) -> str:
        """The cache key of one request; with `used_params`, params the query ignores do not split the cache.

        With `org_id`, the organization's rules generation is part of the key (see `invalidate_rules`)."""
        digest = _digest(endpoint_id, params, policy, used_params)
        generation, rules = self._generations(asset_id, org_id)
        if generation is None or rules is None:
            # Without the generations an old, invalidated entry could be hit: this request goes uncached.
            return f"{self.prefix}:{asset_id}:{_UNCACHED}"
        return f"{self.prefix}:{asset_id}:g{generation}:r{rules}:v{version}:{digest}"

    def probe_keys(
        self,
        asset_id: int,
        version: int,
        endpoint_id: str,
        params: Mapping[str, Any],
        policy: KeyPolicy,
        used_params: Iterable[str] | None,
        org_id: int,
    ) -> tuple[str, str, str]:
        """For a script that reads the generations and the entry in one round trip: (asset generation key, rules
        generation key, the entry's key with `{G}` and `{R}` in place of the two generations)."""
        digest = _digest(endpoint_id, params, policy, used_params)
        template = f"{self.prefix}:{asset_id}:g{{G}}:r{{R}}:v{version}:{digest}"
        return self._generation_key(asset_id), self._rules_key(org_id), template

    @staticmethod
    def filled(template: str, generations: tuple[int, int]) -> str:
        """The entry's key once the probe read the (asset, rules) generations."""
        return template.replace("{G}", str(generations[0])).replace("{R}", str(generations[1]))

    @staticmethod
    def served_text(raw: Any) -> bytes | None:
        """A cached entry as the JSON text to send (entries hold the served body, see `encode`); None for anything
        that is not one (a miss)."""
        if isinstance(raw, str):
            raw = raw.encode()
        if not isinstance(raw, bytes) or not raw.startswith(b"{") or not raw.endswith(b"}"):
            return None
        return raw

    @staticmethod
    def encode(value: dict) -> str:
        """The entry of an answer: its JSON as the serving route sends it (compact, keys sorted, ASCII, as Flask's
        JSON provider writes it), so a hit is sent as stored, without decoding and encoding it again."""
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)

    def generation(self, asset_id: int) -> int | None:
        """The asset's invalidation counter (0 before the first invalidation); None when Redis cannot say."""
        return self._generations(asset_id, None)[0]

    def _generations(self, asset_id: int, org_id: int | None) -> tuple[int | None, int | None]:
        """(asset generation, organization rules generation; 0 without an org), read in one round trip."""
        names = [self._generation_key(asset_id)] + ([self._rules_key(org_id)] if org_id is not None else [])
        ok, raws = self._call(lambda: self.redis.mget(names), with_status=True)
        if not ok or raws is None:
            return None, None
        values = []
        for raw in raws:
            try:
                values.append(int(raw) if raw is not None else 0)
            except (TypeError, ValueError):
                values.append(None)
        return values[0], values[1] if org_id is not None else 0

    def get(self, key: str) -> dict | None:
        if key.endswith(_UNCACHED):
            return None
        raw = self._call(lambda: self.redis.get(key))
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except (TypeError, ValueError):
            return None

    def set(self, key: str, value: dict, ttl_seconds: int) -> None:
        """Store `value` for `ttl_seconds`; a TTL of 0 (or less) means the endpoint is not cached."""
        if not ttl_seconds or ttl_seconds <= 0 or key.endswith(_UNCACHED):
            return
        payload = self.encode(value)
        self._call(lambda: self.redis.set(key, payload, ex=int(ttl_seconds)))

    def entry_write(self, key: str, value: dict, ttl_seconds: int) -> tuple[str, str, int] | None:
        """`(key, text, ttl)` for a caller that writes the entry in a round trip of its own (`set` otherwise), or
        None when the answer is not to be cached."""
        if not ttl_seconds or ttl_seconds <= 0 or key.endswith(_UNCACHED):
            return None
        return key, self.encode(value), int(ttl_seconds)

    def invalidate_asset(self, asset_id: int) -> None:
        """Make every cached result of the asset unreachable (publish, unpublish, rollback)."""
        # Always tried, even inside the outage back-off: a skipped invalidation would make stale answers reachable
        # again once Redis is back (the cache lives per process, so the back-off spans requests).
        self._call(lambda: self.redis.incr(self._generation_key(asset_id)), force=True)

    def invalidate_rules(self, org_id: int) -> None:
        """Make every cached result of the organization unreachable: a dataset's masking, columns or data changed."""
        self._call(lambda: self.redis.incr(self._rules_key(org_id)), force=True)

    def _rules_key(self, org_id: int) -> str:
        return f"{self.prefix}:rules:{org_id}"

    def _generation_key(self, asset_id: int) -> str:
        return f"{self.prefix}:gen:{asset_id}"

    def flush(self, asset_id: int | None = None) -> int:
        """Drop cached results: one asset's, or every asset's. Returns how many entries were deleted.

        The generations are bumped first, so no entry cached before the flush is served again even while the
        deletion runs (or when a request writes an entry between the scan and the delete). Unlike the serving
        calls, a Redis failure raises: an operator must know when a flush did not happen."""
        prefix = self.prefix.encode()
        entries: list[bytes] = []
        assets: set[bytes] = set()
        glob = _glob_escape(self.prefix) + (f":{asset_id}:*" if asset_id is not None else ":*")
        for key in self.redis.scan_iter(match=glob, count=1000):
            key = key if isinstance(key, bytes) else str(key).encode()
            parts = key[len(prefix) + 1 :].split(b":")
            if parts[0] == b"gen":
                assets.add(parts[1] if len(parts) > 1 else b"")
            elif parts[0].isdigit():
                entries.append(key)
                assets.add(parts[0])
        if asset_id is not None:
            assets = {str(asset_id).encode()}
        for asset in sorted(a for a in assets if a.isdigit()):
            self.redis.incr(self._generation_key(int(asset)))
        deleted = 0
        for start in range(0, len(entries), 500):
            deleted += self.redis.delete(*entries[start : start + 500])
        return deleted

    def _call(self, fn, with_status: bool = False, force: bool = False) -> Any:
        """fn()'s result, or None when Redis fails; with_status, (succeeded, result); force: even while backing off."""
        if not force and time.monotonic() < self._down_until:
            return (False, None) if with_status else None
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - any Redis or socket failure must leave serving working
            self._down_until = time.monotonic() + self.retry_after_s
            if not self._outage_logged:
                log.warning("result cache unavailable, serving uncached: %s", exc)
                self._outage_logged = True
            return (False, None) if with_status else None
        if self._outage_logged:
            log.info("result cache available again")
            self._outage_logged = False
        return (True, result) if with_status else result


# Part of every entry's digest: entries of an older layout (answers stored in another shape) are never read.
ENTRY_FORMAT = 2


def _digest(endpoint_id: str, params: Mapping[str, Any], policy: KeyPolicy, used_params: Iterable[str] | None) -> str:
    """What identifies one answer within an asset version: the endpoint, the params the query reads and the key's
    policy fingerprint."""
    keep = set(used_params) if used_params is not None else None
    normalised = sorted((str(k), str(v)) for k, v in params.items() if keep is None or k in keep)
    body = json.dumps([ENTRY_FORMAT, str(endpoint_id), normalised, policy.fingerprint()], separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def _glob_escape(text: str) -> str:
    """`text` matched literally in a Redis SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
