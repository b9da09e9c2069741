"""The result cache: hits and misses, no sharing across key policies, invalidation, and Redis being down."""

from __future__ import annotations

import logging

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.query import KeyPolicy, ResultCache, query_param_names
from app.redis_server import free_port

RESULT = {"rows": [{"name": "Al****"}], "count": 1, "limit": 100, "offset": 0}


def test_miss_then_hit(redis_client):
    cache = ResultCache(redis_client)
    key = cache.make_key(7, 1, "top", {"region": "EU"}, KeyPolicy())
    assert cache.get(key) is None
    cache.set(key, RESULT, ttl_seconds=60)
    assert cache.get(key) == RESULT
    assert 0 < redis_client.ttl(key) <= 60


def test_ttl_zero_means_not_cached(redis_client):
    cache = ResultCache(redis_client)
    key = cache.make_key(7, 1, "top", {}, KeyPolicy())
    cache.set(key, RESULT, ttl_seconds=0)
    assert cache.get(key) is None


def test_params_are_normalised_and_unused_ones_ignored(redis_client):
    cache = ResultCache(redis_client)
    used = query_param_names({"filters": [{"column": "region", "op": "eq", "param": "region"}]})
    a = cache.make_key(7, 1, "top", {"region": "EU", "limit": "5"}, KeyPolicy(), used)
    b = cache.make_key(7, 1, "top", {"limit": "5", "utm_source": "mail", "region": "EU"}, KeyPolicy(), used)
    assert a == b
    assert a != cache.make_key(7, 1, "top", {"region": "US", "limit": "5"}, KeyPolicy(), used)
    assert a != cache.make_key(7, 1, "other", {"region": "EU", "limit": "5"}, KeyPolicy(), used)


def test_keys_with_different_policies_never_share_entries(redis_client):
    cache = ResultCache(redis_client)
    masked = cache.make_key(7, 1, "top", {}, KeyPolicy())
    cache.set(masked, RESULT, 60)
    for policy in (
        KeyPolicy.admin(),
        KeyPolicy.from_key_fields(masking_level="unmasked"),
        KeyPolicy.from_key_fields(sensitivity_max="high"),
        KeyPolicy.from_key_fields(allowed_columns=["name"]),
        KeyPolicy.from_key_fields(row_scope={"region": ["EU"]}),
    ):
        assert cache.get(cache.make_key(7, 1, "top", {}, policy)) is None
    assert cache.get(cache.make_key(7, 1, "top", {}, KeyPolicy.from_key_fields())) == RESULT


def test_a_new_version_or_an_invalidation_makes_old_entries_unreachable(redis_client):
    cache = ResultCache(redis_client)
    v1 = cache.make_key(7, 1, "top", {}, KeyPolicy())
    cache.set(v1, RESULT, 60)
    assert cache.get(cache.make_key(7, 2, "top", {}, KeyPolicy())) is None
    cache.invalidate_asset(7)  # unpublish, then publish the same version again
    assert cache.get(cache.make_key(7, 1, "top", {}, KeyPolicy())) is None
    other_asset = cache.make_key(8, 1, "top", {}, KeyPolicy())
    cache.set(other_asset, RESULT, 60)
    cache.invalidate_asset(7)
    assert cache.get(cache.make_key(8, 1, "top", {}, KeyPolicy())) == RESULT


def test_redis_down_serving_carries_on_uncached_and_logs_once(caplog):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    cache = ResultCache(dead)
    with caplog.at_level(logging.WARNING, logger="app.query.cache"):
        key = cache.make_key(7, 1, "top", {"region": "EU"}, KeyPolicy())
        cache.set(key, RESULT, 60)
        assert cache.get(key) is None
        cache.invalidate_asset(7)
        assert cache.get(key) is None
    assert len([r for r in caplog.records if "result cache unavailable" in r.message]) == 1


def test_cache_comes_back_after_an_outage(redis_client):
    cache = ResultCache(redis_client, retry_after_s=0)
    key = cache.make_key(7, 1, "top", {}, KeyPolicy())
    healthy = cache.redis
    cache.redis = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    cache.set(key, RESULT, 60)
    assert cache.get(key) is None
    cache.redis = healthy
    cache.set(key, RESULT, 60)
    assert cache.get(key) == RESULT


def test_a_request_whose_generation_cannot_be_read_is_not_cached(redis_client):
    cache = ResultCache(redis_client, retry_after_s=0)
    stale = cache.make_key(7, 1, "top", {}, KeyPolicy())
    cache.set(stale, RESULT, 60)
    cache.invalidate_asset(7)
    healthy = cache.redis
    cache.redis = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    key = cache.make_key(7, 1, "top", {}, KeyPolicy())  # the generation read fails here
    cache.redis = healthy
    assert cache.get(key) is None  # not the stale entry from before the invalidation
    cache.set(key, RESULT, 60)
    assert cache.get(key) is None
