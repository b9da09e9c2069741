"""Indexes for published lookups and `eq` filters: queuing their build on a worker (app/datasets/index_builds.py
builds them) and showing a dataset's indexes."""

from __future__ import annotations

import logging

from sqlalchemy import select

from app.datasets.index_builds import indexed_queries
from app.db import AssetVersion, Dataset, DatasetIndex, PublishedAsset
from app.extensions import db, warehouse
from app.warehouse.indexes import INDEX_PREFIX, list_indexes
from tasks.indexing import build_lookup_indexes

log = logging.getLogger(__name__)


def queue_index_build(asset: PublishedAsset, config: dict | None = None) -> bool:
    """After a publish has committed: ask a worker to index what the published version (`config`, by default the
    asset's, which a publish has just copied) filters on. Never fails the publish (no broker: logged, and the next
    publish tries again)."""
    if not indexed_queries(asset.asset_type, asset.config if config is None else config):
        return False
    try:
        build_lookup_indexes.apply_async(args=[asset.id, asset.published_version])
    except Exception as exc:  # indexing is an optimisation: the publish stands without it
        log.warning("could not queue the index build of asset %s: %s", asset.id, exc)
        return False
    return True


def _dataset_names(query: dict) -> set[str]:
    refs = [query.get("source") or {}, *(j for j in query.get("joins") or [] if isinstance(j, dict))]
    return {f"{ref.get('schema')}.{ref.get('table')}" for ref in refs if isinstance(ref, dict)}


def queue_dataset_reindex(dataset: Dataset) -> int:
    """After a dataset's table was replaced (its indexes dropped with it): queue the index build of every published
    asset of its project that filters it with `eq`; how many were queued."""
    assets = db.session.scalars(
        select(PublishedAsset).where(
            PublishedAsset.project_id == dataset.project_id, PublishedAsset.status == "published"
        )
    )
    queued = 0
    for asset in assets:
        version = db.session.scalar(
            select(AssetVersion).where(
                AssetVersion.asset_id == asset.id, AssetVersion.version == asset.published_version
            )
        )
        if version is None:
            continue
        queries = indexed_queries(asset.asset_type, version.config or {})
        if any(dataset.name in _dataset_names(q) for q in queries):
            queued += queue_index_build(asset, version.config)
    return queued


def dataset_indexes(dataset: Dataset) -> list[dict]:
    """The table's indexes as the warehouse reports them, each with its origin (`apiary` built it for a published
    service, or it was `existing`) and status; plus Apiary's builds that are still running or failed."""
    reflected = list_indexes(warehouse.get(), dataset.schema_name, dataset.table_name)
    records = {r.name: r for r in db.session.scalars(select(DatasetIndex).where(DatasetIndex.dataset_id == dataset.id))}
    views = []
    for ix in reflected:
        record = records.pop(ix.name, None)
        origin = "apiary" if record is not None or ix.name.startswith(INDEX_PREFIX) else "existing"
        if ix.valid:
            status, error = "ready", ""
        else:
            status = "building" if record is not None and record.status == "building" else "invalid"
            error = record.error if record is not None else ""
        columns = list(ix.columns) or (list(record.columns) if record is not None else [])
        views.append(
            {
                "name": ix.name,
                "columns": columns,
                "origin": origin,
                "unique": ix.unique,
                "status": status,
                "error": error,
            }
        )
    for record in records.values():
        if record.status == "ready":  # gone from the warehouse (the table was replaced): the next publish rebuilds
            continue
        views.append(
            {
                "name": record.name,
                "columns": list(record.columns),
                "origin": "apiary",
                "unique": False,
                "status": record.status,
                "error": record.error,
            }
        )
    return views
