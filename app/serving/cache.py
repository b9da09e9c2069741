"""The serving result cache (one per process, over this process's Redis client) and its invalidation when a
dataset changes."""

from __future__ import annotations

import logging

from flask import Flask, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.db import Dataset, Project
from app.extensions import _PerProcess, redis_store
from app.query.cache import ResultCache
from app.serving.state import bump_serving_generation

log = logging.getLogger(__name__)
_CHANGED_ORGS = "apiary_rules_changed_orgs"


def _make_result_cache(app: Flask) -> ResultCache:
    return ResultCache(redis_store.get(app))


# Per process, not per request: the cache's outage state (skip Redis for a few seconds, log once) must span requests.
result_caches = _PerProcess("apiary_result_cache", _make_result_cache)


def result_cache() -> ResultCache:
    return result_caches.get()


@event.listens_for(Session, "before_flush")
def _note_dataset_changes(session: Session, _flush_context, _instances) -> None:
    """Remember the organizations whose datasets this transaction adds, changes or deletes.

    Any attribute set counts (`session.dirty`), not only net changes: an upload with replace rewrites the warehouse
    table and sets the row's fields again, which may be equal to the old ones while the data is not.
    """
    project_ids = {
        obj.project_id
        for obj in (*session.new, *session.dirty, *session.deleted)
        if isinstance(obj, Dataset) and obj.project_id is not None
    }
    if not project_ids:
        return
    with session.no_autoflush:
        orgs = session.scalars(select(Project.org_id).where(Project.id.in_(project_ids))).all()
    session.info.setdefault(_CHANGED_ORGS, set()).update(orgs)


@event.listens_for(Session, "after_commit")
def _invalidate_changed_rules(session: Session) -> None:
    """Once the change is committed, answers cached under the old masking, columns or data become unreachable."""
    orgs = session.info.pop(_CHANGED_ORGS, None)
    if not orgs:
        return
    if not has_app_context():
        log.warning("dataset change committed outside an app context: cached results not invalidated")
        return
    cache = result_cache()
    for org_id in orgs:
        cache.invalidate_rules(org_id)
    # Masking and reflected columns are cached per process (app/serving/state.py): every server drops them.
    bump_serving_generation()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_changes(session: Session) -> None:
    session.info.pop(_CHANGED_ORGS, None)
