"""The serving result cache: one per process, over this process's Redis client."""

from flask import Flask

from app.extensions import _PerProcess, redis_store
from app.query.cache import ResultCache


def _make_result_cache(app: Flask) -> ResultCache:
    return ResultCache(redis_store.get(app))


# Per process, not per request: the cache's outage state (skip Redis for a few seconds, log once) must span requests.
result_caches = _PerProcess("apiary_result_cache", _make_result_cache)


def result_cache() -> ResultCache:
    return result_caches.get()
