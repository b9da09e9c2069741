"""Training run bookkeeping shared by the web side (which queues runs) and the worker (which executes them)."""

from __future__ import annotations

import logging
import os

from flask import current_app
from sqlalchemy import update

from app.db import Recipe, RecipeRun
from app.db.columns import utcnow
from app.extensions import db
from app.ml.store import delete_artifact

log = logging.getLogger(__name__)


def run_config(recipe: Recipe) -> dict:
    """The config a run of this recipe trains with; the model is named after the recipe unless it says otherwise."""
    return {**recipe.config, "model_name": recipe.config.get("model_name") or recipe.name}


def run_outcome(run: RecipeRun) -> dict:
    if run.status == "success":
        return {"status": "success", "run_id": run.id, "model_id": run.model_id, "metrics": run.metrics or {}}
    if run.status == "failed":
        return {"status": "failed", "run_id": run.id, "error": run.error or "training failed"}
    return {"status": run.status, "run_id": run.id}


def fail_if_queued(run_id: int, error: str) -> bool:
    """Mark a run failed only if no worker has claimed it yet (the same atomic check a worker claims with)."""
    return mark_failed(run_id, error, only_queued=True)


def mark_failed(run_id: int, error: str, *, only_queued: bool = False, only_unfinished: bool = False) -> bool:
    stmt = update(RecipeRun).where(RecipeRun.id == run_id)
    if only_queued:
        stmt = stmt.where(RecipeRun.status == "queued")
    if only_unfinished:
        stmt = stmt.where(RecipeRun.status.in_(("queued", "running")))
    result = db.session.execute(stmt.values(status="failed", error=error[:2000], finished_at=utcnow()))
    db.session.commit()
    return result.rowcount > 0


def remove_artifact(path: str | None) -> None:
    """Delete an artifact file, only ever inside the model store."""
    if not path:
        return
    store = os.path.realpath(current_app.config["MODEL_STORE"])
    real = os.path.realpath(path)
    if os.path.commonpath([store, real]) != store:
        log.warning("not deleting artifact outside the model store: %s", path)
        return
    try:
        delete_artifact(real)
    except OSError as exc:
        log.warning("could not delete artifact %s: %s", path, exc)
