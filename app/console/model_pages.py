"""A project's models: train with a form (a train_model recipe run on a worker), runs, metrics, versions, activate."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from app.console.blueprint import bp, console_user, project_for, signed_in
from app.console.chart_views import model_charts
from app.console.forms import FormErrors, comma_list, from_api_error, load, text
from app.datasets import service as datasets
from app.db import Project, Recipe
from app.errors import APIError
from app.extensions import db
from app.ml.feature_selection import is_id_name
from app.ml.training_config import ALGORITHMS, TASK_TYPES
from app.registry import service as models
from app.registry.schemas import RecipeCreateSchema

TRAIN_FIELDS = ("name", "input_table", "target_column", "task_type", "algorithm", "feature_columns", "test_size")
RECENT_RUNS = 5


def _recipes(project: Project) -> list[Recipe]:
    # The models service has no project-wide recipe list yet; this is the one read the console does itself.
    return list(db.session.scalars(select(Recipe).where(Recipe.project_id == project.id).order_by(Recipe.id.desc())))


# Names that say "what happened" (a good default target) and names of free text (never a default feature).
TARGET_NAME = re.compile(r"(^|_)(churn|churned|target|label|outcome|class|converted|fraud|default|y)(_|$)|^is_|_flag$")
FREE_TEXT_NAME = re.compile(
    r"(^|_)(description|comment|comments|note|notes|text|message|body|review|feedback|summary"
    r"|title|address)(_|$)"
)


def _usable(column: dict) -> bool:
    """A column the form may pick by default: not an id, not free text, no personal data, not a date."""
    name = column["name"]
    return not (
        is_id_name(name)
        or FREE_TEXT_NAME.search(name.lower())
        or column.get("sensitivity", "low") != "low"  # person names, contact details, national ids
        or column.get("type") in ("date", "timestamp")
    )


def train_defaults(columns: list[dict]) -> dict:
    """The train form's defaults for a dataset: a target and the features beside it (never ids, free text or
    person names; the user can still name any column)."""
    usable = [c["name"] for c in columns if _usable(c)]
    target = next((n for n in usable if TARGET_NAME.search(n.lower())), usable[-1] if usable else "")
    return {"target": target, "usable": usable, "features": [n for n in usable if n != target]}


def _models_page(project: Project, errors: FormErrors, values: dict, status: int = 200):
    recipes = [(recipe, models.list_runs(recipe)[:RECENT_RUNS]) for recipe in _recipes(project)]
    busy = any(run.status in ("queued", "running") for _recipe, runs in recipes for run in runs)
    tables = [datasets.dataset_view(d) for d in datasets.list_datasets(project)]
    defaults = {d["name"]: train_defaults(d["columns"]) for d in tables}
    if tables and not values.get("input_table"):  # a fresh form: the first dataset's defaults
        first = defaults[tables[0]["name"]]
        values = {**values, "target_column": first["target"], "feature_columns": ", ".join(first["features"])}
    return render_template(
        "console/models.html",
        project=project,
        models=models.list_models(project, None),
        recipes=recipes,
        busy=busy,
        datasets=tables,
        columns={d["name"]: [c["name"] for c in d["columns"]] for d in tables},
        defaults=defaults,
        task_types=TASK_TYPES,
        algorithms=ALGORITHMS,
        errors=errors,
        values=values,
    ), status


@bp.get("/projects/<int:project_id>/models")
@signed_in
def models_page(project_id: int):
    return _models_page(project_for(project_id), FormErrors(), {"test_size": "0.2"})


def _recipe_body(values: dict, errors: FormErrors) -> dict:
    config = {k: values[k] for k in ("input_table", "target_column", "task_type", "algorithm") if values[k]}
    if values["feature_columns"]:
        config["feature_columns"] = comma_list(values["feature_columns"])
    if values["test_size"]:
        try:
            config["test_size"] = float(values["test_size"])
        except ValueError:
            errors.add("test_size", "enter a fraction such as 0.2")
    config["model_name"] = values["name"] or None
    inputs = [values["input_table"]] if values["input_table"] else []
    return {"recipe_type": "train_model", "name": values["name"], "inputs": inputs, "config": config}


@bp.post("/projects/<int:project_id>/models")
@signed_in
def train_model(project_id: int):
    user = console_user()
    project = project_for(project_id, "project.edit")
    values = {name: text(request.form, name) for name in TRAIN_FIELDS}
    errors = FormErrors()
    body = _recipe_body(values, errors)
    data = load(RecipeCreateSchema(), body, errors)
    if not errors:
        try:
            recipe = models.create_recipe(user, project, data)
            models.run_recipe(recipe, wait=False)
        except APIError as err:
            from_api_error(err, errors, prefix="config.")
            from_api_error_outside_config(err, errors)
        else:
            flash(f"Training {recipe.name} on a worker: this page updates when the run ends.", "success")
            return redirect(url_for("console.models_page", project_id=project.id) + "#runs")
    return _models_page(project, errors, values, 422)


def from_api_error_outside_config(err: APIError, errors: FormErrors) -> None:
    """`inputs` errors belong next to the dataset picker, not at the top of the form."""
    if "" in errors:
        moved = [m for m in errors[""] if m.startswith("inputs")]
        for message in moved:
            errors[""].remove(message)
            errors.add("input_table", message.partition(": ")[2] or message)
        if not errors[""]:
            del errors[""]


@bp.get("/projects/<int:project_id>/models/<int:model_id>")
@signed_in
def model(project_id: int, model_id: int):
    project = project_for(project_id)
    found = models.get_model(console_user(), project, model_id)
    importance = sorted((found.feature_importance or {}).items(), key=lambda kv: -abs(kv[1]))
    top = max((abs(w) for _f, w in importance), default=0) or 1
    versions = models.versions_of(found)
    metric_names = list(dict.fromkeys(k for v in versions for k, x in (v.metrics or {}).items() if _is_number(x)))
    return render_template(
        "console/model.html",
        project=project,
        model=found,
        versions=versions,
        importance=importance,
        top=top,
        charts=model_charts(found, versions),
        metric_names=metric_names,
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@bp.post("/projects/<int:project_id>/models/<int:model_id>/activate")
@signed_in
def activate_model(project_id: int, model_id: int):
    project = project_for(project_id, "project.edit")
    found = models.get_model(console_user(), project, model_id, "project.edit")
    models.activate_model(found)
    flash(f"Version {found.version} of {found.name} is now the active one.", "success")
    return redirect(url_for("console.model", project_id=project.id, model_id=found.id))
