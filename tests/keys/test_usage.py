"""Last-used timestamps of API keys: cheap to note on each request, drained in one batch for the database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.keys.usage import LAST_USED_KEY, UsageTracker
from app.redis_server import free_port


def test_touch_then_drain_gives_each_key_its_last_use(redis_client):
    tracker = UsageTracker(redis_client)
    before = datetime.now(UTC) - timedelta(seconds=1)
    tracker.touch(1)
    tracker.touch(2)
    tracker.touch(1)
    drained = tracker.drain()
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert set(drained) == {1, 2}
    for when in drained.values():
        assert when.tzinfo is not None
        assert before <= when <= after


def test_latest_touch_wins(redis_client):
    tracker = UsageTracker(redis_client)
    redis_client.hset(LAST_USED_KEY, "5", "1000.0")
    tracker.touch(5)
    assert tracker.drain()[5] > datetime.fromtimestamp(1000, UTC)


def test_drain_clears_so_the_next_drain_only_has_new_uses(redis_client):
    tracker = UsageTracker(redis_client)
    tracker.touch(1)
    assert set(tracker.drain()) == {1}
    assert tracker.drain() == {}
    tracker.touch(3)
    assert set(tracker.drain()) == {3}


def test_no_touch_is_lost_while_a_worker_drains(redis_client, redis_url):
    writer = UsageTracker(redis.Redis.from_url(redis_url))
    done = threading.Event()

    def touch_all():
        for key_id in range(2000):
            writer.touch(key_id)
        done.set()

    thread = threading.Thread(target=touch_all)
    thread.start()
    drainer = UsageTracker(redis_client)
    seen: set[int] = set()
    while not done.is_set():
        seen |= set(drainer.drain())
    thread.join()
    seen |= set(drainer.drain())
    assert seen == set(range(2000))


def test_malformed_entries_are_skipped(redis_client):
    redis_client.hset(LAST_USED_KEY, mapping={"abc": "1000", "7": "soon", "8": str(time.time())})
    assert set(UsageTracker(redis_client).drain()) == {8}


def test_touch_with_redis_down_does_not_raise():
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    UsageTracker(down).touch(1)
