"""Default-queue index builds: after a publish, index the warehouse columns its lookups and eq filters match on."""

from celery import shared_task

# Long enough for CREATE INDEX CONCURRENTLY on a large table (the build's own statement timeout is 540 s).
TIME_LIMIT_SECONDS = 600


@shared_task(name="tasks.indexing.build_lookup_indexes", time_limit=TIME_LIMIT_SECONDS, acks_late=False)
def build_lookup_indexes(asset_id: int, version: int | None) -> dict:
    from app.datasets.indexing import build_asset_indexes

    return build_asset_indexes(asset_id, version)
