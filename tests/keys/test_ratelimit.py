"""The per-key rate limiter: exact budgets under concurrency, standard headers, refill, and failing open."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.keys.ratelimit import RateLimiter
from app.redis_server import free_port


def test_fresh_key_admits_exactly_its_limit_then_refuses(redis_client):
    limiter = RateLimiter(redis_client)
    decisions = [limiter.hit("key:1", 5) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]


def test_headers_tell_the_client_its_budget(redis_client):
    limiter = RateLimiter(redis_client)
    first = limiter.hit("key:1", 3)
    assert first.headers() == {"RateLimit-Limit": "3", "RateLimit-Remaining": "2", "RateLimit-Reset": "20"}
    limiter.hit("key:1", 3)
    limiter.hit("key:1", 3)
    refused = limiter.hit("key:1", 3)
    headers = refused.headers()
    assert not refused.allowed
    assert headers["RateLimit-Limit"] == "3"
    assert headers["RateLimit-Remaining"] == "0"
    # one slot comes back every 20 s; the whole budget within a minute
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert 40 < int(headers["RateLimit-Reset"]) <= 60


def test_buckets_are_independent(redis_client):
    limiter = RateLimiter(redis_client)
    assert limiter.hit("key:1", 1).allowed
    assert not limiter.hit("key:1", 1).allowed
    assert limiter.hit("key:2", 1).allowed


def test_fifty_concurrent_threads_share_one_budget(redis_url):
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=60)
    client = redis.Redis(connection_pool=pool)
    client.delete("apiary:rl:key:7")
    limiter = RateLimiter(client)
    start = threading.Barrier(50)

    def call(_):
        start.wait()
        return limiter.hit("key:7", 10).allowed

    with ThreadPoolExecutor(max_workers=50) as executor:
        results = list(executor.map(call, range(50)))
    pool.disconnect()
    assert results.count(True) == 10


def _hit_from_process(redis_url: str, start, calls: int, results) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url))
    start.wait()
    results.put(sum(limiter.hit("key:9", 10).allowed for _ in range(calls)))


def test_two_processes_share_one_budget(redis_client, redis_url):
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [ctx.Process(target=_hit_from_process, args=(redis_url, start, 25, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    admitted = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert sum(admitted) == 10


def test_budget_refills_over_time(redis_client):
    limiter = RateLimiter(redis_client)
    # 600/min: one slot comes back every 0.1 s
    while limiter.hit("key:3", 600).allowed:
        pass
    deadline = time.monotonic() + 1.0
    while not limiter.hit("key:3", 600).allowed:
        assert time.monotonic() < deadline, "no request admitted again within 1 s"
        time.sleep(0.02)


def test_script_is_reloaded_after_the_server_forgets_it(redis_client):
    limiter = RateLimiter(redis_client)
    assert limiter.hit("key:1", 2).allowed
    redis_client.script_flush()
    assert limiter.hit("key:1", 2).allowed
    assert not limiter.hit("key:1", 2).allowed


def test_redis_down_lets_requests_through_and_warns_once(caplog):
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RateLimiter(down)
    with caplog.at_level(logging.WARNING, logger="app.keys.ratelimit"):
        decisions = [limiter.hit("key:1", 1) for _ in range(3)]
    assert all(d.allowed for d in decisions)
    assert "Retry-After" not in decisions[0].headers()
    assert len([r for r in caplog.records if "cannot reach Redis" in r.getMessage()]) == 1


@pytest.mark.parametrize("limit", [0, -5, 2.5, None])
def test_nonsense_limit_is_refused(redis_client, limit):
    with pytest.raises(ValueError, match="limit_per_minute"):
        RateLimiter(redis_client).hit("key:1", limit)


def test_the_serve_script_runs_on_a_namespaced_client_under_its_prefix(redis_url, redis_client):
    from app.keys.ratelimit import Probe
    from app.namespace import namespaced_redis

    limiter = RateLimiter(namespaced_redis(redis_url, "apiary-rs-test"))
    decision = limiter.hit_serving("key:7", 5, Probe("serving:generation"))
    assert decision.known and decision.allowed and decision.remaining == 4
    # The bucket lives under the namespace, like every other key of the installation; nothing outside it.
    assert redis_client.exists("apiary-rs-test:apiary:rl:key:7")
    assert not redis_client.exists("apiary:rl:key:7")
    redis_client.delete("apiary-rs-test:apiary:rl:key:7")


def test_the_serve_script_is_sent_again_to_a_server_that_lost_it(redis_client):
    from app.keys.ratelimit import Probe

    limiter = RateLimiter(redis_client)
    assert limiter.hit_serving("key:8", 5, Probe("gen")).remaining == 4
    redis_client.script_flush()  # a restarted or flushed server
    second = limiter.hit_serving("key:8", 5, Probe("gen"))
    assert second.known and second.remaining == 3


def test_a_connection_the_server_dropped_does_not_fail_the_next_serve_script(redis_url, redis_client):
    from app.keys.ratelimit import Probe

    name = f"limiter-{time.monotonic_ns()}"
    client = redis.Redis.from_url(redis_url, client_name=name)
    limiter = RateLimiter(client)
    assert limiter.hit_serving("key:9", 5, Probe("gen")).remaining == 4
    # The limiter's pooled connection is killed server-side (only it: the session's workers share this Redis), so
    # it is dead when the next call takes it.
    (mine,) = [entry for entry in redis_client.client_list() if entry.get("name") == name]
    assert redis_client.client_kill_filter(_id=mine["id"]) == 1
    third = limiter.hit_serving("key:9", 5, Probe("gen"))
    assert third.known and third.remaining == 3
    client.close()


def test_a_script_that_timed_out_is_never_sent_again(redis_url, redis_client):
    # Its reply was late, but it ran: sent again, a key's budget would be spent twice and a record written twice.
    from app.namespace import run_script

    client = redis.Redis.from_url(redis_url, socket_timeout=0.2)
    slow = client.register_script(
        "redis.call('INCR', KEYS[1]) local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
        "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > 400000 return 1"
    )
    slow.sha = client.script_load(slow.script)
    with pytest.raises(redis.TimeoutError):
        run_script(client, slow, ["apiary:test:runs"], [])
    time.sleep(0.6)
    assert redis_client.get("apiary:test:runs") == b"1"
    client.close()
