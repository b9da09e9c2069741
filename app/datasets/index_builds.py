"""Index builds on a worker: which warehouse columns a published version filters with `eq` (through the catalog),
building the missing indexes and recording the outcome on the dataset. Below tasks/indexing.py, which runs it."""

from __future__ import annotations

import logging

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


def index_targets(asset: PublishedAsset, config: dict) -> dict[int, set[tuple[str, ...]]]:
    """Dataset id -> column tuples to index, for the datasets of the asset's project its config filters on.

    Every name goes through the catalog and is resolved against the reflected table: nothing reaches DDL unchecked.
    """
    project = db.session.get(Project, asset.project_id) if asset.project_id else None
    catalog = Catalog.for_scope(asset.org_id, project)
    engine = warehouse.get()
    targets: dict[int, set[tuple[str, ...]]] = {}
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
                targets.setdefault(dataset.id, set()).add((spec.column.name,))
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
    for dataset_id, column_sets in index_targets(asset, row.config).items():
        dataset = db.session.get(Dataset, dataset_id)
        for columns in sorted(column_sets):
            outcome.update(_ensure_index(dataset, columns))
    return outcome


def _ensure_index(dataset: Dataset, columns: tuple[str, ...]) -> dict[str, str]:
    engine = warehouse.get()
    name = index_name(dataset.table_name, columns)
    try:
        present = covering_index(list_indexes(engine, dataset.schema_name, dataset.table_name), columns)
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
        if covering_index(list_indexes(engine, dataset.schema_name, dataset.table_name), columns) is None:
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
