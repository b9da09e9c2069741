"""The serving result cache, over this process's Redis client."""

from app.extensions import redis_store
from app.query.cache import ResultCache


def result_cache() -> ResultCache:
    return ResultCache(redis_store.get())
