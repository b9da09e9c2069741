"""`flask models train|list|show|activate|delete`: a project's models from the command line."""

from __future__ import annotations

import sys
import time

import click
from flask import Flask, current_app
from sqlalchemy import select

from app.cli_base import CliGroup, acting_user, echo_json, json_option, user_option
from app.db import MLModel, Project, RecipeRun, User
from app.errors import APIError
from app.extensions import db
from app.projects.service import project_by_ref
from app.registry.runs import run_outcome
from app.registry.schemas import ModelDetailSchema, ModelListSchema
from app.registry.service import (
    activate_model,
    create_recipe,
    delete_model,
    get_model,
    list_models,
    run_recipe,
    versions_of,
)

models_cli = CliGroup("models", help="Models of a project.")


def _fail(err: APIError):
    raise click.ClickException(err.message) from None


def org_admin(org_id: int):
    """The organization's first active admin: who operator commands act as."""
    stmt = select(User).where(User.org_id == org_id, User.role == "admin", User.is_active.is_(True)).order_by(User.id)
    user = db.session.scalars(stmt).first()
    if user is None:
        raise click.ClickException("the organization has no active admin to act as")
    return user


def wait_for_run(run_id: int, timeout_s: float) -> dict:
    """Poll a queued run to its end with a progress bar of the time waited."""
    started = time.monotonic()
    with click.progressbar(length=int(timeout_s), label="training", file=sys.stderr, show_eta=False) as bar:
        while True:
            db.session.expire_all()
            run = db.session.get(RecipeRun, run_id)
            if run.status in ("success", "failed"):
                bar.update(int(timeout_s))
                return run_outcome(run)
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                raise click.ClickException(
                    f"run {run_id} did not finish within {timeout_s:g} s (it may still be running)"
                )
            bar.update(int(elapsed) - bar.pos)
            time.sleep(0.5)


def train(
    project, table: str, target: str, task_type: str, algorithm: str, name: str | None, features: list[str] | None
) -> dict:
    """Create a train_model recipe and run it on a worker; the run's outcome (success with metrics, or failed)."""
    config = {"input_table": table, "target_column": target, "task_type": task_type, "algorithm": algorithm}
    if features:
        config["feature_columns"] = features
    recipe_name = name or f"{target}_{algorithm}"
    recipe = create_recipe(
        org_admin(project.org_id),
        project,
        {"recipe_type": "train_model", "name": recipe_name, "inputs": [table], "config": config},
    )
    queued, _status = run_recipe(recipe, wait=False)
    return wait_for_run(queued["run_id"], float(current_app.config["TRAIN_TIMEOUT_SECONDS"]))


@models_cli.command("train")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@click.option("--table", required=True, help="Input dataset, e.g. marts.dim_customer.")
@click.option("--target", required=True, help="Column to predict.")
@click.option("--task-type", type=click.Choice(["classification", "regression"]), required=True)
@click.option("--algorithm", required=True, help="e.g. random_forest, logistic_regression, ridge.")
@click.option("--name", help="Model name (training the same name again makes a new version).")
@click.option("--feature", "features", multiple=True, help="Feature column (repeat); default: chosen from the data.")
def train_command(project_ref, org_name, table, target, task_type, algorithm, name, features):
    """Train a model on a worker and wait for it, with progress.

    \b
    Example:
      flask models train --project sales --table marts.churn --target churned \\
          --task-type classification --algorithm random_forest --name churn_risk
    """
    try:
        outcome = train(
            project_by_ref(project_ref, org_name), table, target, task_type, algorithm, name, list(features)
        )
    except APIError as err:
        _fail(err)
    if outcome["status"] != "success":
        raise click.ClickException(f"run {outcome['run_id']} failed: {outcome.get('error')}")
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in outcome["metrics"].items() if isinstance(v, (int, float)))
    click.echo(f"model {outcome['model_id']} trained (run {outcome['run_id']}): {metrics}")


@models_cli.command("list")
@click.option("--project", "project_ref", required=True, help="Project id or slug.")
@click.option("--org", "org_name", help="Organization name (needed when several have the slug).")
@click.option("--name", help="Only versions of this model name.")
@json_option
def list_command(project_ref, org_name, name, as_json):
    """List a project's models: id, name, version, algorithm, active flag and headline metric.

    \b
    Example:
      flask models list --project sales --name churn_risk --json
    """
    try:
        project = project_by_ref(project_ref, org_name)
    except APIError as err:
        _fail(err)
    if as_json:
        echo_json(ModelListSchema().dump({"models": list_models(project, name)}))
        return
    click.echo("id\tname\tversion\ttask_type\talgorithm\tactive\tmetric")
    for model in list_models(project, name):
        key = "accuracy" if model.task_type == "classification" else "r2"
        value = model.metrics.get(key)
        shown = f"{key}={value:.3f}" if isinstance(value, (int, float)) else "-"
        click.echo(
            f"{model.id}\t{model.name}\t{model.version}\t{model.task_type}\t{model.algorithm}\t"
            f"{model.is_active}\t{shown}"
        )


def _model(model_id: int, project_ref: str | None, org_name: str | None, email: str | None, permission: str):
    """(acting user, model): the model as --user (default: its organization's first admin) may `permission` it,
    within --project when one is named; another project's model is not found, as over HTTP."""
    project = project_by_ref(project_ref, org_name) if project_ref else None
    found = db.session.get(MLModel, model_id)
    owner = db.session.get(Project, found.project_id) if found else None
    org_id = project.org_id if project else (owner.org_id if owner else None)
    if org_id is None:
        raise APIError(404, "not_found", f"model {model_id} not found")
    user = acting_user(org_id, email)
    return user, get_model(user, project, model_id, permission)


def _model_detail(model) -> dict:
    body = ModelDetailSchema().dump(model)
    body["versions"] = ModelDetailSchema().dump({"versions": versions_of(model)})["versions"]
    return body


project_option = click.option("--project", "project_ref", help="Project id or slug the model must belong to.")
org_option = click.option("--org", "org_name", help="Organization name (needed when several have the slug).")


@models_cli.command("show")
@click.argument("model_id", type=int)
@project_option
@org_option
@user_option
@json_option
def show_command(model_id, project_ref, org_name, email, as_json):
    """Show model MODEL_ID: metrics, features and their importance, and every version of its name.

    \b
    Example:
      flask models show 12 --json
    """
    _user, model = _model(model_id, project_ref, org_name, email, "project.view")
    body = _model_detail(model)
    if as_json:
        echo_json(body)
        return
    click.echo(
        f"model {body['model_id']}: {body['name']} version {body['version']} ({body['task_type']}, "
        f"{body['algorithm']}), {'active' if body['is_active'] else 'inactive'}, project {body['project_id']}"
    )
    click.echo(f"target: {body['target_column']}")
    click.echo(
        "metrics: "
        + ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in body["metrics"].items()
            if not isinstance(v, (dict, list))
        )
    )
    click.echo("features: " + ", ".join(body["feature_columns"]))
    ranked = sorted(body["feature_importance"].items(), key=lambda kv: -abs(kv[1]))
    click.echo("importance: " + ", ".join(f"{k}={v:.3f}" for k, v in ranked))
    click.echo(
        "versions: "
        + ", ".join(
            f"{v['version']} (id {v['model_id']}{', active' if v['is_active'] else ''})" for v in body["versions"]
        )
    )


@models_cli.command("activate")
@click.argument("model_id", type=int)
@project_option
@org_option
@user_option
@json_option
def activate_command(model_id, project_ref, org_name, email, as_json):
    """Make model MODEL_ID the active version of its name (the others of the name are deactivated).

    \b
    Example:
      flask models activate 12
    """
    _user, model = _model(model_id, project_ref, org_name, email, "project.edit")
    model = activate_model(model)
    if as_json:
        echo_json(_model_detail(model))
        return
    click.echo(f"model {model.id} ({model.name} version {model.version}) is now the active version")


@models_cli.command("delete")
@click.argument("model_id", type=int)
@project_option
@org_option
@user_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(model_id, project_ref, org_name, email, yes):
    """Delete model MODEL_ID and its artifact. The active version goes last, and a version a published API
    service scores with cannot be deleted.

    \b
    Example:
      flask models delete 11 --yes
    """
    _user, model = _model(model_id, project_ref, org_name, email, "project.edit")
    if not yes:
        click.confirm(f"delete model {model.id} ({model.name} version {model.version})?", abort=True, err=True)
    delete_model(model)
    click.echo(f"deleted model {model_id}")


def register_models_cli(app: Flask) -> None:
    app.cli.add_command(models_cli)
