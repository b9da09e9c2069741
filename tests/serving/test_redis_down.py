"""Issue 12 item 16: with Redis down, serving goes on with one warning per outage (not per request) and no
`RateLimit-*` headers claiming a budget nobody could count."""

import logging

from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture


def test_serving_without_redis_warns_once_and_claims_no_budget(client, admin, service, caplog):  # noqa: F811
    from app import create_app

    key = mint(client, admin, service, rate_limit=5)["key"]
    # The same database and warehouse, but its Redis is a closed port.
    broken = create_app("testing", {"REDIS_URL": "redis://127.0.0.1:1/0"}).test_client()
    caplog.set_level(logging.WARNING)
    responses = [broken.get("/api/service/sales-serving/top", headers={"X-API-Key": key}) for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 8  # fail open: no 429 although the key allows 5
    for resp in responses:
        assert not any(name.startswith("RateLimit-") for name in resp.headers.keys()), dict(resp.headers)
    limiter_warnings = [r for r in caplog.records if r.name == "app.keys.ratelimit"]
    cache_warnings = [r for r in caplog.records if r.name == "app.query.cache"]
    assert len(limiter_warnings) == 1, [r.getMessage() for r in limiter_warnings]
    assert len(cache_warnings) == 1, [r.getMessage() for r in cache_warnings]


def test_an_invalidation_is_not_skipped_while_the_cache_backs_off(redis_client):
    """The cache now lives per process, so its back-off after a Redis error spans requests: an invalidation (a
    publish, a masking change) in that window must still reach Redis, or stale answers come back with Redis."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from app.query import ResultCache

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    cache = ResultCache(dead, retry_after_s=60)
    assert cache.get("apiary:rc:1:g0:v1:x") is None  # the failure starts the back-off
    cache.redis = redis_client  # Redis is back (a restart, a failover) within the back-off
    assert cache.generation(7) is None  # reads still back off: served uncached, which is safe
    cache.invalidate_asset(7)
    assert redis_client.get("apiary:rc:gen:7") == b"1"
