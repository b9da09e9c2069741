"""The serving result cache, over this process's Redis client."""

from app.extensions import redis_store
from app.query.cache import ResultCache


def result_cache() -> ResultCache:
    return ResultCache(redis_store.get())


def flush_results(asset_id: int | None = None) -> int:
    """Operators: drop the cached results of one asset, or of all; how many entries went (raises when Redis fails)."""
    return result_cache().flush(asset_id)
