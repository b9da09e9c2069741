"""The serving audit buffer: records kept in order, capped, drained in batches, and never failing a request."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.redis_server import free_port
from app.serving.audit import AuditBuffer, audit_entry
from app.serving.audit_outbox import AUDIT_KEY

FIELDS = {
    "ts",
    "asset_id",
    "endpoint_id",
    "key_id",
    "status",
    "latency_ms",
    "model_id",
    "org_id",
    "project_id",
    "method",
    "error_code",
}


def _entry(n: int, **extra) -> dict:
    return audit_entry(asset_id=1, endpoint_id="top", key_id=n, status=200, latency_ms=1.5, method="GET", **extra)


def test_entry_has_every_field_and_a_utc_timestamp():
    entry = audit_entry(
        asset_id=3,
        endpoint_id="risk",
        key_id=9,
        status=429,
        latency_ms=0.12345,
        method="POST",
        org_id=1,
        project_id=2,
        model_id=12,
        error_code="rate_limited",
        ts=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    assert set(entry) == FIELDS
    assert entry["ts"] == "2024-05-01T12:00:00Z"
    assert entry["error_code"] == "rate_limited"
    assert entry["latency_ms"] == 0.123
    now = _entry(1)["ts"]  # defaults to now
    assert now.endswith("Z") and datetime.fromisoformat(now).tzinfo is not None


def test_records_come_back_in_order_and_in_batches(redis_client):
    buffer = AuditBuffer(redis_client)
    for n in range(5):
        buffer.record(_entry(n))
    first = buffer.drain(batch=3)
    rest = buffer.drain(batch=3)
    assert [e["key_id"] for e in first] == [0, 1, 2]
    assert [e["key_id"] for e in rest] == [3, 4]
    assert set(first[0]) == FIELDS
    assert buffer.drain() == []


def test_record_fills_a_missing_timestamp(redis_client):
    buffer = AuditBuffer(redis_client)
    buffer.record({"asset_id": 1, "status": 200})
    (entry,) = buffer.drain()
    assert datetime.fromisoformat(entry["ts"]).tzinfo is not None


def test_cap_keeps_the_newest_records_and_counts_the_rest(redis_client):
    buffer = AuditBuffer(redis_client, max_len=10)
    for n in range(25):
        buffer.record(_entry(n))
    assert [e["key_id"] for e in buffer.drain(batch=100)] == list(range(15, 25))
    assert buffer.dropped == 15


def test_concurrent_writers_and_a_drainer_lose_nothing(redis_client, redis_url):
    writers = [AuditBuffer(redis.Redis.from_url(redis_url)) for _ in range(4)]
    threads = [
        threading.Thread(target=lambda w=w, i=i: [w.record(_entry(i * 1000 + n)) for n in range(250)])
        for i, w in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    drainer = AuditBuffer(redis_client)
    seen = []
    while any(thread.is_alive() for thread in threads):
        seen += drainer.drain(batch=50)
    seen += drainer.drain(batch=10_000)
    ids = [e["key_id"] for e in seen]
    assert sorted(ids) == sorted(i * 1000 + n for i in range(4) for n in range(250))
    for i in range(4):  # each writer's records stay in its own order
        mine = [k for k in ids if k // 1000 == i]
        assert mine == sorted(mine)


def test_more_commands_ride_on_the_same_transaction(redis_client):
    buffer = AuditBuffer(redis_client)

    def more(pipe):
        pipe.hset("usage-test", "7", "1.5")
        pipe.set("throttle-test", 1, nx=True, ex=2)

    assert buffer.record(_entry(1), more) == [1, True]
    assert buffer.record(_entry(2), more) == [0, None]  # the field existed; the throttle key was already set
    assert redis_client.hget("usage-test", "7") == b"1.5"
    assert [e["key_id"] for e in buffer.drain()] == [1, 2]


def test_malformed_records_are_skipped(redis_client):
    redis_client.rpush(AUDIT_KEY, b"{not json", b'{"key_id": 1}')
    assert AuditBuffer(redis_client).drain() == [{"key_id": 1}]


def test_redis_down_drops_the_record_without_raising():
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    buffer = AuditBuffer(down)
    buffer.record(_entry(1))
    assert buffer.record(_entry(2), lambda pipe: pipe.set("x", 1)) == []
    assert buffer.dropped == 2


def test_a_served_calls_bookkeeping_is_one_script_run(redis_client):
    from app.keys.usage import LAST_USED_KEY
    from app.serving.audit_outbox import FLUSH_THROTTLE_KEY

    buffer = AuditBuffer(redis_client, max_len=2)
    # The first record finds the flush flag free (schedule a flush); the next ones within 2 s do not.
    assert buffer.record_call(_entry(1), 1, ("apiary:rc:test-entry", '{"rows":[]}', 30)) is True
    assert buffer.record_call(_entry(2), 2) is False
    assert buffer.record_call(_entry(3), 3) is False
    assert 0 < redis_client.ttl(FLUSH_THROTTLE_KEY) <= 2
    # The list keeps its cap and counts what it trimmed; every record got its timestamp.
    assert [e["key_id"] for e in buffer.drain()] == [2, 3] and buffer.dropped == 1
    # The key's last use, and the result-cache entry with its TTL.
    assert set(redis_client.hgetall(LAST_USED_KEY)) == {b"1", b"2", b"3"}
    assert redis_client.get("apiary:rc:test-entry") == b'{"rows":[]}'
    assert 0 < redis_client.ttl("apiary:rc:test-entry") <= 30


def test_a_served_calls_bookkeeping_without_redis_is_dropped_without_raising():
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    buffer = AuditBuffer(down)
    assert buffer.record_call(_entry(1), 1) is False
    assert buffer.dropped == 1
