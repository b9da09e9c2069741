"""Index builds on a worker: which warehouse columns a published version filters with `eq` (through the catalog),
building the missing indexes and recording the outcome on the dataset. Below tasks/indexing.py, which runs it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from app.datasets.catalog import Catalog
from app.db import AssetVersion, Dataset, DatasetIndex, Project, PublishedAsset
from app.db.columns import utcnow
from app.errors import APIError
from app.extensions import db, warehouse
from app.publishing.endpoint_config import endpoints_in
from app.query.validation import resolve_query_config
from app.warehouse.indexes import build_index, covering_index, index_name, list_indexes

log = logging.getLogger(__name__)

MAX_ERROR = 500


def indexed_queries(asset_type: str, config: dict) -> list[dict]:
    """The (logical) query configs of a published config that filter with `eq`: a data_api's query, each sql
    endpoint's query, each lookup as the one-filter query it stands for."""
    if asset_type == "data_api":
        queries = [config]
    else:
        queries = [endpoint.query or {} for endpoint in endpoints_in(config) if endpoint.answers_with_query]
    return [q for q in queries if any(isinstance(f, dict) and f.get("op") == "eq" for f in q.get("filters") or [])]


# A served sql query sorting the rows its `eq` filters select gets one index on (eq columns..., sort columns...), so
# the database reads the first rows in order instead of sorting every match; this wide at most.
MAX_EQ_COLUMNS, MAX_SORT_COLUMNS = 3, 2


@dataclass(frozen=True, order=True)
class IndexTarget:
    """An index to build: equality columns (leading, in any order) then sort columns (in this order)."""

    eq: tuple[str, ...]
    sort: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.eq + self.sort


def index_targets(asset: PublishedAsset, config: dict) -> dict[int, set[IndexTarget]]:
    """Dataset id -> indexes to build, for the datasets of the asset's project its config filters on: each `eq`
    column alone, and for a query that sorts its source table's `eq` matches, (eq columns..., sort columns...).

    Every name goes through the catalog and is resolved against the reflected table: nothing reaches DDL unchecked.
    """
    project = db.session.get(Project, asset.project_id) if asset.project_id else None
    catalog = Catalog.for_scope(asset.org_id, project)
    engine = warehouse.get()
    targets: dict[int, set[IndexTarget]] = {}
    for query in indexed_queries(asset.asset_type, config):
        try:
            resolved = resolve_query_config(catalog.physical_query(query, "config"), engine, "config")
        except APIError as err:  # a table or column gone since the publish: nothing to index there
            log.info("asset %s: a query no longer resolves, not indexed: %s", asset.id, err.message)
            continue
        for spec in resolved.filters:
            if spec.op != "eq":
                continue
            dataset = catalog.by_physical.get((spec.column.table.schema, spec.column.table.table))
            if dataset is not None:
                targets.setdefault(dataset.id, set()).add(IndexTarget((spec.column.name,)))
        source = resolved.source
        dataset = catalog.by_physical.get((source.schema, source.table))
        eq = tuple(dict.fromkeys(f.column.name for f in resolved.filters if f.op == "eq" and f.column.table == source))
        sort = tuple(dict.fromkeys(o.column.name for o in resolved.order_by))
        sorts_source = all(o.column.table == source for o in resolved.order_by)
        if dataset is not None and eq and sort and sorts_source and not set(eq) & set(sort):
            targets.setdefault(dataset.id, set()).add(IndexTarget(eq[:MAX_EQ_COLUMNS], sort[:MAX_SORT_COLUMNS]))
    return targets


def build_asset_indexes(asset_id: int, version: int | None) -> dict[str, str]:
    """Build the missing indexes for one published version; index name -> outcome (`built`, `present`, `failed`).

    Failures are logged and recorded on the dataset (its page and API show them); they never raise."""
    asset = db.session.get(PublishedAsset, asset_id)
    if asset is None or asset.status != "published":
        return {}
    row = db.session.scalar(
        select(AssetVersion).where(AssetVersion.asset_id == asset_id, AssetVersion.version == version)
    )
    if row is None:
        return {}
    outcome: dict[str, str] = {}
    for dataset_id, wanted in index_targets(asset, row.config).items():
        dataset = db.session.get(Dataset, dataset_id)
        # Widest first: an `eq` column leading a sorted index is served by it and needs no index of its own.
        for target in sorted(wanted, key=lambda t: (-len(t.columns), t)):
            outcome.update(_ensure_index(dataset, target))
    return outcome


def _ensure_index(dataset: Dataset, target: IndexTarget) -> dict[str, str]:
    engine = warehouse.get()
    columns = target.columns
    name = index_name(dataset.table_name, columns)
    try:
        present = covering_index(list_indexes(engine, dataset.schema_name, dataset.table_name), target.eq, target.sort)
    except APIError as err:
        log.error("indexing %s: the warehouse did not answer: %s", dataset.name, err.message)
        return {name: "failed"}
    if present is not None:
        if present.name == name:
            _record(dataset, name, columns, "ready", "")
        return {present.name: "present"}
    _record(dataset, name, columns, "building", "")
    try:
        build_index(engine, dataset.schema_name, dataset.table_name, columns)
        if (
            covering_index(list_indexes(engine, dataset.schema_name, dataset.table_name), target.eq, target.sort)
            is None
        ):
            # PostgreSQL's IF NOT EXISTS skips when any relation of the schema has the name, not only this index.
            raise RuntimeError(f"{name} names another object of schema {dataset.schema_name}")
    except Exception as exc:  # recorded and logged; serving works without the index
        log.error("building index %s on %s failed", name, dataset.name, exc_info=True)
        detail = getattr(exc, "orig", None) or exc
        _record(dataset, name, columns, "failed", f"{type(exc).__name__}: {detail}"[:MAX_ERROR])
        return {name: "failed"}
    _record(dataset, name, columns, "ready", "")
    log.info("index %s built on %s (%s)", name, dataset.name, ", ".join(columns))
    return {name: "built"}


def _record(dataset: Dataset, name: str, columns: tuple[str, ...], status: str, error: str) -> None:
    record = db.session.scalar(
        select(DatasetIndex).where(DatasetIndex.dataset_id == dataset.id, DatasetIndex.name == name)
    )
    if record is None:
        record = DatasetIndex(dataset_id=dataset.id, name=name)
        db.session.add(record)
    record.columns, record.status, record.error = list(columns), status, error
    record.updated_at = utcnow()  # when Apiary last checked it, even when nothing changed
    db.session.commit()
