"""When each API key was last used, gathered in a Redis hash and written to the database in batches."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis

log = logging.getLogger(__name__)

LAST_USED_KEY = "apiary:key_last_used"


class UsageTracker:
    """`touch` on every served request costs one HSET; a periodic task `drain`s the hash into one UPDATE batch."""

    def __init__(self, redis_client: redis.Redis, key: str = LAST_USED_KEY):
        self.redis = redis_client
        self.key = key

    def touch(self, key_id: int) -> None:
        """Note that key `key_id` was used now; never raises, since losing a timestamp must not fail a request."""
        try:
            self.queue_touch(self.redis, key_id)
        except (redis.RedisError, OSError) as exc:
            log.debug("could not record last use of key %s: %s", key_id, exc)

    def queue_touch(self, pipe: redis.Redis | redis.client.Pipeline, key_id: int) -> None:
        """The HSET of `touch`, sent on `pipe` (a client, or a pipeline the caller executes)."""
        pipe.hset(self.key, str(key_id), f"{time.time():.3f}")

    def drain(self) -> dict[int, datetime]:
        """Read and clear the hash in one transaction: `{key_id: last_used_at (UTC)}`; raises if Redis is down.

        A touch that lands after the transaction starts a fresh hash for the next drain, so none falls in between.
        """
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.key)
        pipe.delete(self.key)
        raw, _ = pipe.execute()
        out: dict[int, datetime] = {}
        for field, value in raw.items():
            try:
                out[int(field)] = datetime.fromtimestamp(float(value), UTC)
            except (TypeError, ValueError):
                log.warning("ignoring malformed last-used entry %r=%r", field, value)
        return out
