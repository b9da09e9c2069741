"""Training recipes and the versioned model registry: create and run recipes, list, activate and delete models."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select, update

from app.auth.permissions import has_permission, require_permission
from app.datasets.policy import preview_policy
from app.db import AssetVersion, MLModel, Project, PublishedAsset, Recipe, RecipeRun, User
from app.errors import APIError, conflict, forbidden, invalid, not_found, unavailable
from app.extensions import db
from app.ml.training_config import TrainingConfig, validate_training_config
from app.publishing.endpoint_config import endpoints_in
from app.query.masking import BLOCKED, mask_value
from app.query.policy import MASK
from app.registry.inputs import check_sensitive_columns, column_masking, input_columns, input_masking
from app.registry.runs import fail_if_queued, mark_failed, remove_artifact, run_outcome
from app.serving.state import bump_serving_generation
from tasks.calls import call_worker, queue_has_worker

log = logging.getLogger(__name__)

TRAIN_QUEUE = "train"


# --- recipes -------------------------------------------------------------------------------------------------------


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
        raise forbidden(
            "config.allow_sensitive: only an organization admin may allow training on sensitive columns",
            {"fields": {"config.allow_sensitive": ["org.admin required"]}},
        )
    check_sensitive_columns(project, checked)
    return checked


def model_metadata_for(user: User, model: MLModel) -> dict:
    """`input_schema` and `classes` as the caller's role may see them, like a preview of the input table:
    categories of a masked column go through its strategy, a blocked column's are not listed (null), and classes
    of a masked or blocked target are masked or "[BLOCKED]" one for one (their order matches probabilities)."""
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
    from tasks.train import train_recipe  # lazy: tasks.train loads scikit-learn, which the web process never needs

    if not queue_has_worker(TRAIN_QUEUE):
        raise unavailable(
            "no_worker",
            f"no worker is consuming the {TRAIN_QUEUE} queue; try again shortly",
            headers={"Retry-After": 5},
        )
    run = RecipeRun(recipe_id=recipe.id, status="queued")
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    if not wait:
        try:
            result = train_recipe.apply_async(args=[run_id], queue=TRAIN_QUEUE)
        except Exception as exc:  # kombu raises many types when the broker is unreachable
            log.warning("could not enqueue training run %s: %s", run_id, exc)
            fail_if_queued(run_id, "the task queue was unavailable; the run was never started")
            raise unavailable("broker_unavailable", "the task queue is unavailable; try again shortly") from None
        db.session.execute(update(RecipeRun).where(RecipeRun.id == run_id).values(task_id=result.id))
        db.session.commit()
        return {"run_id": run_id, "status": "queued"}, 202
    timeout = float(current_app.config["TRAIN_TIMEOUT_SECONDS"])
    try:
        call_worker(train_recipe, [run_id], TRAIN_QUEUE, timeout, f"(run {run_id})", watch_node=False)
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
    except Exception as exc:  # a worker lost mid-task surfaces here as a Celery exception
        log.warning("training run %s ended abnormally: %s", run_id, exc)
        mark_failed(run_id, "the training worker stopped before the run finished", only_unfinished=True)
    db.session.expire_all()
    return run_outcome(db.session.get(RecipeRun, run_id)), 200


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
    bump_serving_generation()


def delete_model(model: MLModel) -> None:
    """Delete a version and its artifact. The active version goes last: 409 while other versions exist. A version
    that a published API service scores with is a 409 too: deleting it would break that service's callers."""
    others = [m for m in versions_of(model) if m.id != model.id]
    if model.is_active and others:
        versions = ", ".join(str(m.version) for m in others)
        raise conflict(
            f"version {model.version} is the active version of {model.name!r}; "
            f"activate another version ({versions}) before deleting it",
            {"active_version": model.version, "other_versions": [m.id for m in others]},
        )
    served_by = services_serving(model)
    if served_by:
        raise conflict(
            f"model {model.id} is served by the published API service(s) "
            f"{', '.join(served_by)}; unpublish them or publish a version that uses another model first",
            {"served_by": served_by},
        )
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
        if any(ep.kind == "model" and ep.model_id == model.id for ep in endpoints_in(config))
    ]
