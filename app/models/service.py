"""Training recipes and the versioned model registry: create and run recipes, list, activate and delete models."""

from __future__ import annotations

import logging
import os

from flask import current_app
from sqlalchemy import select, update

from app.auth.permissions import has_permission, require_permission
from app.datasets.catalog import Catalog
from app.db import AssetVersion, MLModel, Project, PublishedAsset, Recipe, RecipeRun, User
from app.db.columns import utcnow
from app.errors import APIError, invalid, not_found
from app.extensions import db, warehouse
from app.ml.store import delete_artifact
from app.ml.training_config import TrainingConfig, validate_training_config
from app.query.masking import BLOCKED, ColumnMasking, default_masking, effective_masking, mask_value
from app.query.policy import MASK
from app.serving.workers import call_worker, queue_has_worker
from app.warehouse.engine import ColumnInfo, TableNotFound, list_columns

log = logging.getLogger(__name__)

TRAIN_QUEUE = "train"


# --- recipes -------------------------------------------------------------------------------------------------------


def input_columns(project: Project, input_table: object, field: str = "config.input_table") -> list[ColumnInfo]:
    """The columns of a project's dataset as the warehouse has them now; 422 naming `field` when it is missing."""
    dataset = Catalog.for_scope(project.org_id, project).dataset(input_table, field)
    try:
        return list_columns(warehouse.get(), dataset.schema_name, dataset.table_name)
    except TableNotFound:
        raise invalid(field, f"the table behind dataset {input_table!r} no longer exists in the warehouse") from None


def check_recipe_config(project: Project, config: dict, inputs: list[str], user: User | None = None) -> TrainingConfig:
    """Validate a train_model config against the input table's columns (422 naming `config.<field>`).

    A target above low, or a high or critical feature, is refused (422) unless the config says
    `allow_sensitive: true`, which only an organization admin may send (403 naming `config.allow_sensitive`).
    """
    if not isinstance(config, dict):
        raise invalid("config", "must be an object")
    table = config.get("input_table") or (inputs[0] if inputs else None)
    if not table:
        raise invalid("config.input_table", "is required (or name the table in inputs)")
    if not isinstance(table, str):
        raise invalid("config.input_table", "must be a dataset name such as marts.dim_customer")
    if inputs and table not in inputs:
        raise invalid("inputs", f"must list the input table {table!r}")
    columns = input_columns(project, table)
    checked = validate_training_config({**config, "input_table": table}, columns)
    if checked.allow_sensitive and (user is None or not has_permission(user, "org.admin")):
        raise APIError(403, "permission_denied",
                       "config.allow_sensitive: only an organization admin may allow training on sensitive columns",
                       {"fields": {"config.allow_sensitive": ["org.admin required"]}})  # fmt: skip
    check_sensitive_columns(project, checked)
    return checked


SENSITIVE_LEVELS = ("high", "critical")
# A target's values come back raw to every key as predicted labels and probability keys, so any level above low
# (a `medium` name as much as a `high` e-mail) needs the admin's consent; a feature's values are never served back.
SENSITIVE_TARGET_LEVELS = ("medium", *SENSITIVE_LEVELS)


def input_masking(project: Project, input_table: str | None) -> dict[str, ColumnMasking]:
    """Each column's masking in the input dataset (settings over classification); {} when the dataset is gone."""
    dataset = Catalog.for_scope(project.org_id, project).by_name.get(input_table) if input_table else None
    if dataset is None:
        return {}
    return effective_masking([c["name"] for c in dataset.columns], dataset.masking)


def column_masking(maskings: dict[str, ColumnMasking], name: str) -> ColumnMasking:
    return maskings.get(name) or default_masking(name)


def check_sensitive_columns(project: Project, cfg: TrainingConfig) -> None:
    """422 naming the field when the target is above low, or a named feature is high or critical, and the config
    does not say `allow_sensitive` (a model's metadata and predictions carry the values it was trained on; its
    predicted labels are the target's raw values, served to every key)."""
    if cfg.allow_sensitive:
        return
    maskings = input_masking(project, cfg.input_table)
    named = [("config.target_column", cfg.target_column)]
    named += [(f"config.feature_columns[{i}]", name) for i, name in enumerate(cfg.feature_columns or ())]
    for field, name in named:
        level = column_masking(maskings, name).sensitivity
        if level in (SENSITIVE_TARGET_LEVELS if field == "config.target_column" else SENSITIVE_LEVELS):
            raise invalid(field, f"column {name!r} is {level}; training on it needs config.allow_sensitive: true "
                                 "from an organization admin")  # fmt: skip


def sensitive_columns(project: Project, cfg: TrainingConfig, names: list[str]) -> set[str]:
    """Which of `names` are high or critical (left out of automatic feature selection without allow_sensitive)."""
    if cfg.allow_sensitive:
        return set()
    maskings = input_masking(project, cfg.input_table)
    return {n for n in names if column_masking(maskings, n).sensitivity in SENSITIVE_LEVELS}


def model_metadata_for(user: User, model: MLModel) -> dict:
    """`input_schema` and `classes` as the caller's role may see them, like a preview of the input table:
    categories of a masked column go through its strategy, a blocked column's are not listed (null), and classes
    of a masked or blocked target are masked or "[BLOCKED]" one for one (their order matches probabilities)."""
    from app.datasets.service import preview_policy

    policy = preview_policy(user.role)
    recipe = db.session.get(Recipe, model.recipe_id) if model.recipe_id else None
    project = db.session.get(Project, model.project_id)
    table = (recipe.config or {}).get("input_table") if recipe is not None else None
    maskings = input_masking(project, table) if project is not None else {}
    schema = []
    for feature in model.input_schema or []:
        categories = feature.get("categories")
        if categories is not None:
            action = policy.action_for(column_masking(maskings, feature.get("name", "")))
            if action == BLOCKED:
                categories = None
            elif action == MASK:
                strategy = column_masking(maskings, feature["name"]).strategy
                categories = list(dict.fromkeys(mask_value(v, strategy) for v in categories))
        schema.append({**feature, "categories": categories})
    classes = model.classes
    if classes is not None:
        target = column_masking(maskings, model.target_column or "")
        action = policy.action_for(target)
        if action == BLOCKED:
            classes = [BLOCKED for _ in classes]
        elif action == MASK:
            classes = [mask_value(c, target.strategy) for c in classes]
    return {"input_schema": schema, "classes": classes}


def create_recipe(user: User, project: Project, data: dict) -> Recipe:
    checked = check_recipe_config(project, data["config"], data.get("inputs") or [], user)
    recipe = Recipe(
        project_id=project.id,
        name=data["name"],
        recipe_type=data["recipe_type"],
        inputs=[checked.input_table],
        config=checked.to_json(),
        created_by=user.id,
    )
    db.session.add(recipe)
    db.session.commit()
    return recipe


def run_config(recipe: Recipe) -> dict:
    """The config a run of this recipe trains with; the model is named after the recipe unless it says otherwise."""
    return {**recipe.config, "model_name": recipe.config.get("model_name") or recipe.name}


def get_recipe(user: User, project: Project | None, recipe_id: int, permission: str = "project.view") -> Recipe:
    """A recipe of the caller's organization (and of `project` when one is in scope); 404 otherwise."""
    recipe = db.session.get(Recipe, recipe_id)
    owner = db.session.get(Project, recipe.project_id) if recipe else None
    if owner is None or owner.org_id != user.org_id or (project is not None and owner.id != project.id):
        raise not_found(f"recipe {recipe_id}")
    require_permission(user, permission)
    return recipe


def list_runs(recipe: Recipe) -> list[RecipeRun]:
    stmt = select(RecipeRun).where(RecipeRun.recipe_id == recipe.id).order_by(RecipeRun.id.desc())
    return list(db.session.scalars(stmt))


def run_recipe(recipe: Recipe, wait: bool) -> tuple[dict, int]:
    """Queue a training run on the train queue; with `wait`, block until it ends (TRAIN_TIMEOUT_SECONDS).

    Answers (body, status): 200 success or failed when waiting, 202 queued otherwise.
    """
    from tasks.train import train_recipe

    if not queue_has_worker(TRAIN_QUEUE):
        raise APIError(503, "no_worker", f"no worker is consuming the {TRAIN_QUEUE} queue; try again shortly",
                       headers={"Retry-After": 5})  # fmt: skip
    run = RecipeRun(recipe_id=recipe.id, status="queued")
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    if not wait:
        try:
            result = train_recipe.apply_async(args=[run_id], queue=TRAIN_QUEUE)
        except Exception as exc:  # noqa: BLE001 - kombu raises many types when the broker is unreachable
            log.warning("could not enqueue training run %s: %s", run_id, exc)
            fail_if_queued(run_id, "the task queue was unavailable; the run was never started")
            raise APIError(503, "broker_unavailable", "the task queue is unavailable; try again shortly") from None
        db.session.execute(update(RecipeRun).where(RecipeRun.id == run_id).values(task_id=result.id))
        db.session.commit()
        return {"run_id": run_id, "status": "queued"}, 202
    timeout = float(current_app.config["TRAIN_TIMEOUT_SECONDS"])
    try:
        call_worker(train_recipe, [run_id], TRAIN_QUEUE, timeout, f"(run {run_id})")
    except APIError as err:
        if err.code == "worker_lost":  # killed mid-run (OOM, SIGKILL): the run failed, and says so
            log.warning("training run %s: its worker was lost", run_id)
            mark_failed(run_id, "the training worker stopped before the run finished", only_unfinished=True)
            db.session.expire_all()
            return run_outcome(db.session.get(RecipeRun, run_id)), 200
        if err.status == 504:
            # Expired unrun: record it. Already started: it finishes on its own and the run says how.
            fail_if_queued(run_id, f"no worker started the run within {timeout:g} s")
            err.details = {**err.details, "run_id": run_id}
        else:
            fail_if_queued(run_id, err.message)
        raise
    except Exception as exc:  # noqa: BLE001 - a worker lost mid-task surfaces here as a Celery exception
        log.warning("training run %s ended abnormally: %s", run_id, exc)
        mark_failed(run_id, "the training worker stopped before the run finished", only_unfinished=True)
    db.session.expire_all()
    return run_outcome(db.session.get(RecipeRun, run_id)), 200


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


# --- the model registry ----------------------------------------------------------------------------------------------


def get_model(user: User, project: Project | None, model_id: int, permission: str = "project.view") -> MLModel:
    """A model of the caller's organization (and of `project` when one is in scope); 404 otherwise."""
    model = db.session.get(MLModel, model_id)
    owner = db.session.get(Project, model.project_id) if model else None
    if owner is None or owner.org_id != user.org_id or (project is not None and owner.id != project.id):
        raise not_found(f"model {model_id}")
    require_permission(user, permission)
    return model


def list_models(project: Project, name: str | None) -> list[MLModel]:
    stmt = select(MLModel).where(MLModel.project_id == project.id)
    if name:
        stmt = stmt.where(MLModel.name == name)
    return list(db.session.scalars(stmt.order_by(MLModel.name, MLModel.version.desc())))


def versions_of(model: MLModel) -> list[MLModel]:
    """Every version of the model's name in its project, newest first."""
    stmt = (
        select(MLModel)
        .where(MLModel.project_id == model.project_id, MLModel.name == model.name)
        .order_by(MLModel.version.desc())
    )
    return list(db.session.scalars(stmt))


def activate_model(model: MLModel) -> MLModel:
    """Make this version the active one of its name; every other version of the name is deactivated."""
    db.session.execute(
        update(MLModel)
        .where(MLModel.project_id == model.project_id, MLModel.name == model.name, MLModel.id != model.id)
        .values(is_active=False)
    )
    model.is_active = True
    db.session.commit()
    _bump_serving()
    return model


def _bump_serving() -> None:
    """Scoring fields of models are cached per web process: every server drops them on its next keyed call."""
    from app.serving.state import bump_serving_generation

    bump_serving_generation()


def delete_model(model: MLModel) -> None:
    """Delete a version and its artifact. The active version goes last: 409 while other versions exist. A version
    that a published API service scores with is a 409 too: deleting it would break that service's callers."""
    others = [m for m in versions_of(model) if m.id != model.id]
    if model.is_active and others:
        versions = ", ".join(str(m.version) for m in others)
        raise APIError(409, "conflict", f"version {model.version} is the active version of {model.name!r}; "
                       f"activate another version ({versions}) before deleting it",
                       {"active_version": model.version, "other_versions": [m.id for m in others]})  # fmt: skip
    served_by = services_serving(model)
    if served_by:
        raise APIError(409, "conflict", f"model {model.id} is served by the published API service(s) "
                       f"{', '.join(served_by)}; unpublish them or publish a version that uses another model first",
                       {"served_by": served_by})  # fmt: skip
    path = model.artifact_path
    db.session.delete(model)
    db.session.commit()
    _bump_serving()
    remove_artifact(path)


def services_serving(model: MLModel) -> list[str]:
    """Asset keys of the published API services of the model's project whose live version scores with it."""
    live = db.session.execute(
        select(PublishedAsset.asset_key, AssetVersion.config)
        .join(
            AssetVersion,
            (AssetVersion.asset_id == PublishedAsset.id) & (AssetVersion.version == PublishedAsset.published_version),
        )
        .where(
            PublishedAsset.project_id == model.project_id,
            PublishedAsset.asset_type == "api_service",
            PublishedAsset.status == "published",
        )
        .order_by(PublishedAsset.asset_key)
    )
    return [
        asset_key
        for asset_key, config in live
        if any(
            ep.get("kind") == "model" and ep.get("model_id") == model.id
            for ep in (config or {}).get("endpoints", [])
            if isinstance(ep, dict)
        )
    ]


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
