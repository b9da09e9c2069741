"""A blocking wait on Redis never sends a timeout under a millisecond: Redis reads BLPOP's timeout in whole
milliseconds, so 0.0004 s became 0, "block forever", and the call hit the client's 2 s socket timeout. A model call
waiting its last moment for a fair-share slot was then a 503 broker_unavailable instead of its 504 (a suite flake)."""

import time

import pytest

from tasks.leases import Full, LeasedSemaphore, WaitedTooLong, wait_for_start


def test_a_wait_with_under_a_millisecond_left_ends_as_a_timeout(app, redis_client):
    from app.extensions import redis_store

    with app.app_context():
        client = redis_store.get()
        semaphore = LeasedSemaphore(client, "apiary:test:slices")
        held = semaphore.acquire(1, 30, 10, time.monotonic() + 1)
        try:
            for left in [n * 0.0001 for n in range(1, 16)]:  # around the moment a round trip takes
                started = time.monotonic()
                with pytest.raises((WaitedTooLong, Full)):  # no room to wait at all, or none left
                    semaphore.acquire(1, 30, 1000, time.monotonic() + left)
                assert not wait_for_start(client, "apiary:test:claim", time.monotonic() + left)
                assert time.monotonic() - started < 0.5, left
        finally:
            held.release()
