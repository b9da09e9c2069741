"""`flask models train|list`: train and inspect a project's models from the command line."""

from __future__ import annotations

import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.errors import APIError

models_cli = AppGroup("models", help="Models of a project.")


def _fail(err: APIError):
    raise click.ClickException(err.message) from None


def org_admin(org_id: int):
    """The organization's first active admin: who operator commands act as."""
    from app.db import User
    from app.extensions import db

    stmt = select(User).where(User.org_id == org_id, User.role == "admin", User.is_active.is_(True)).order_by(User.id)
    user = db.session.scalars(stmt).first()
    if user is None:
        raise click.ClickException("the organization has no active admin to act as")
    return user


def wait_for_run(run_id: int, timeout_s: float) -> dict:
    """Poll a queued run to its end with a progress bar of the time waited."""
    from app.db import RecipeRun
    from app.extensions import db
    from app.models.service import run_outcome

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


def train(project, table: str, target: str, task_type: str, algorithm: str, name: str | None,
          features: list[str] | None) -> dict:  # fmt: skip
    """Create a train_model recipe and run it on a worker; the run's outcome (success with metrics, or failed)."""
    from app.models.service import create_recipe, run_recipe

    config = {"input_table": table, "target_column": target, "task_type": task_type, "algorithm": algorithm}
    if features:
        config["feature_columns"] = features
    recipe_name = name or f"{target}_{algorithm}"
    recipe = create_recipe(org_admin(project.org_id), project, {"recipe_type": "train_model", "name": recipe_name,
                                                                "inputs": [table], "config": config})  # fmt: skip
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
    """Train a model on a worker and wait for it, with progress."""
    from app.projects.service import project_by_ref

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
def list_command(project_ref, org_name, name):
    """List a project's models: id, name, version, algorithm, active flag and headline metric."""
    from app.models.service import list_models
    from app.projects.service import project_by_ref

    try:
        project = project_by_ref(project_ref, org_name)
    except APIError as err:
        _fail(err)
    click.echo("id\tname\tversion\ttask_type\talgorithm\tactive\tmetric")
    for model in list_models(project, name):
        key = "accuracy" if model.task_type == "classification" else "r2"
        value = model.metrics.get(key)
        shown = f"{key}={value:.3f}" if isinstance(value, (int, float)) else "-"
        click.echo(f"{model.id}\t{model.name}\t{model.version}\t{model.task_type}\t{model.algorithm}\t"
                   f"{model.is_active}\t{shown}")  # fmt: skip


def register_models_cli(app: Flask) -> None:
    app.cli.add_command(models_cli)
