"""One training run on a worker: claim it, read the data, train, store the artifact, register the model version."""

from __future__ import annotations

import logging
import re
import uuid

import sqlalchemy as sa
from celery.exceptions import SoftTimeLimitExceeded
from flask import current_app
from sqlalchemy import func, select, update

from app.datasets.catalog import Catalog
from app.db import MLModel, Project, Recipe, RecipeRun
from app.db.columns import utcnow
from app.errors import APIError
from app.extensions import db, warehouse
from app.ml.store import save_artifact
from app.ml.training import train_model
from app.ml.training_config import TrainingConfig, validate_training_config
from app.registry.inputs import check_sensitive_columns, input_columns, sensitive_columns
from app.registry.run_lock import count_retry, run_lock
from app.registry.runs import mark_failed, remove_artifact, run_config, run_outcome
from app.warehouse.engine import reflect_table

log = logging.getLogger(__name__)

_PATHS = re.compile(r"(?:/[\w.\-]+){2,}")


class RunFailed(Exception):
    """A run that cannot succeed, with the sentence its user reads."""


# A run whose worker died mid-run (the train task is redelivered: acks late, reject on worker lost) is taken over
# this many times; after that it is recorded as failed.
MAX_RETRIES = 1


def execute_run(run_id: int) -> dict:
    """Train run `run_id` under its lock: a run another live worker holds is waited for, a finished one only
    reported, one whose worker died mid-run retried once."""
    with run_lock(run_id):
        return _execute_locked(run_id)


def _execute_locked(run_id: int) -> dict:
    if not _claim(run_id):
        run = db.session.get(RecipeRun, run_id)
        return run_outcome(run) if run else {"status": "failed", "run_id": run_id, "error": "run not found"}
    artifact_path = None
    try:
        recipe = db.session.get(Recipe, db.session.get(RecipeRun, run_id).recipe_id)
        project = db.session.get(Project, recipe.project_id)
        cfg = _current_config(project, recipe)
        frame = _read_frame(project, cfg)
        model, artifact_path = _train_and_store(project, recipe, cfg, frame)
        run = db.session.get(RecipeRun, run_id)
        run.status, run.model_id, run.metrics, run.finished_at = "success", model.id, model.metrics, utcnow()
        db.session.commit()
        return run_outcome(run)
    except SoftTimeLimitExceeded:
        error = "training took longer than its time limit; use fewer rows (max_rows) or a simpler algorithm"
    except (RunFailed, APIError) as exc:
        error = exc.message if isinstance(exc, APIError) else str(exc)
    except Exception as exc:  # every failure is recorded on the run, the details only in the log
        log.exception("training run %s failed", run_id)
        error = f"training failed: {_readable(exc)}"
    db.session.rollback()
    remove_artifact(artifact_path)
    mark_failed(run_id, error)
    return run_outcome(db.session.get(RecipeRun, run_id))


def _claim(run_id: int) -> bool:
    # One atomic queued -> running transition: a second delivery of the task, or the web side giving up on a
    # run nobody started, finds nothing left to claim. A run still `running` while we hold its lock was left by a
    # worker that died in it: taken over (once).
    status = db.session.execute(select(RecipeRun.status).where(RecipeRun.id == run_id)).scalar()
    if status == "running":
        retry = count_retry(run_id)
        if retry > MAX_RETRIES:
            log.warning("training run %s: its worker died again; not retrying", run_id)
            mark_failed(run_id, "the training worker stopped before the run finished, twice", only_unfinished=True)
            return False
        log.warning("training run %s: its worker died mid-run; retrying it here (retry %s)", run_id, retry)
        db.session.execute(update(RecipeRun).where(RecipeRun.id == run_id).values(started_at=utcnow()))
        db.session.commit()
        return True
    result = db.session.execute(
        update(RecipeRun)
        .where(RecipeRun.id == run_id, RecipeRun.status == "queued")
        .values(status="running", started_at=utcnow())
    )
    db.session.commit()
    return result.rowcount > 0


def _readable(exc: Exception) -> str:
    """The exception's message without file paths (they say nothing to the user and leak the layout)."""
    message = _PATHS.sub("<path>", str(exc)).strip() or type(exc).__name__
    return message[:500]


def _current_config(project: Project, recipe: Recipe) -> TrainingConfig:
    """The recipe's config checked again: the table may have changed since the recipe was saved."""
    config = run_config(recipe)
    columns = input_columns(project, config["input_table"])
    cfg = validate_training_config(config, columns)
    # Checked again at run time: an admin may have marked a column sensitive since the recipe was saved.
    check_sensitive_columns(project, cfg)
    return cfg


def _read_frame(project: Project, cfg: TrainingConfig):
    import pandas as pd  # lazy: pandas is heavy; only a train worker reads frames

    dataset = Catalog.for_scope(project.org_id, project).dataset(cfg.input_table, "config.input_table")
    engine = warehouse.get()
    table = reflect_table(engine, dataset.schema_name, dataset.table_name)
    if cfg.feature_columns:
        names = [*cfg.feature_columns, cfg.target_column]
    else:
        # Automatic selection never considers high or critical columns unless an org admin allowed them.
        every = [c.name for c in table.columns]
        hidden = sensitive_columns(project, cfg, every)
        names = [n for n in every if n not in hidden]
    stmt = sa.select(*[table.c[name] for name in names]).limit(cfg.max_rows)
    with engine.connect() as conn:
        frame = pd.read_sql(stmt, conn)
    # read_sql labels columns with SQLAlchemy's str subclass; scikit-learn only takes plain str as feature names.
    frame.columns = [str(name) for name in frame.columns]
    if frame.empty:
        raise RunFailed(f"the input table {cfg.input_table!r} has no rows")
    return frame


def _train_and_store(project: Project, recipe: Recipe, cfg: TrainingConfig, frame) -> tuple[MLModel, str]:
    trained = train_model(frame, cfg)
    name = cfg.model_name or recipe.name
    # A fresh key per artifact: a version's file is never overwritten, so a worker never scores a half-replaced model.
    key = f"p{project.id}-r{recipe.id}-{uuid.uuid4().hex}"
    metadata = {
        "artifact_key": key,
        "project_id": project.id,
        "recipe_id": recipe.id,
        "model_name": name,
        "task_type": cfg.task_type,
        "algorithm": cfg.algorithm,
        "target_column": cfg.target_column,
    }
    stored = save_artifact(current_app.config["MODEL_STORE"], key, trained.pipeline, metadata)
    try:
        model = _register(project, recipe, cfg, trained, stored)
    except Exception:
        remove_artifact(stored.path)
        raise
    return model, stored.path


def _register(project: Project, recipe: Recipe, cfg: TrainingConfig, trained, stored) -> MLModel:
    """Insert the next version of the model name; the first version of a name becomes the active one."""
    name = cfg.model_name or recipe.name
    for attempt in range(3):
        latest = db.session.scalar(
            select(func.max(MLModel.version)).where(MLModel.project_id == project.id, MLModel.name == name)
        )
        model = MLModel(
            project_id=project.id,
            name=name,
            version=(latest or 0) + 1,
            task_type=cfg.task_type,
            algorithm=cfg.algorithm,
            target_column=cfg.target_column,
            metrics=trained.metrics,
            feature_importance=trained.feature_importance,
            feature_columns=list(trained.feature_columns),
            input_schema=trained.input_schema,
            classes=trained.classes,
            score_quantiles=trained.score_quantiles,
            evaluation=trained.evaluation,
            artifact_path=stored.path,
            artifact_sha256=stored.sha256,
            sklearn_version=stored.sklearn_version,
            is_active=latest is None,
            recipe_id=recipe.id,
            created_by=recipe.created_by,
        )
        db.session.add(model)
        try:
            db.session.commit()
            return model
        except sa.exc.IntegrityError:
            # Two runs of the same name finished together; the other took this version number.
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
