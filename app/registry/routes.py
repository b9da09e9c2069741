"""Model routes: training recipes and their runs, and the project's versioned model registry."""

from flask import Blueprint, request

from app.auth.permissions import current_user, login_required, project_in_scope
from app.http import json_body
from app.openapi import doc
from app.registry import service
from app.registry.runs import run_config
from app.registry.schemas import (
    DeletedSchema,
    ModelDetailSchema,
    ModelListQuerySchema,
    ModelListSchema,
    RecipeCreatedSchema,
    RecipeCreateSchema,
    RecipeSchema,
    RunListSchema,
    RunQuerySchema,
    RunResultSchema,
)

bp = Blueprint("models", __name__)

PROJECT_HEADER = "X-Project-Id (optional here): when sent, the object must belong to that project"


def _recipe_body(recipe) -> dict:
    body = RecipeSchema().dump(recipe)
    body["run_config"] = run_config(recipe)
    return body


def _model_detail(model) -> dict:
    body = ModelDetailSchema().dump(model)
    # Category values and classes are training data: masked by the caller's role, as a preview would be.
    body.update(service.model_metadata_for(current_user(), model))
    body["versions"] = ModelDetailSchema().dump({"versions": service.versions_of(model)})["versions"]
    return body


@bp.post("/api/flow/ai-recipes")
@doc(
    "Create a train_model recipe in the X-Project-Id project; its config is checked against the input table",
    body=RecipeCreateSchema,
    response=RecipeCreatedSchema,
    status=201,
    tags=["models"],
)
@login_required("project.edit")
def create_recipe():
    project = project_in_scope("project.edit")
    data = RecipeCreateSchema().load(json_body())
    return RecipeCreatedSchema().dump(service.create_recipe(current_user(), project, data)), 201


@bp.get("/api/flow/ai-recipes/<int:recipe_id>")
@doc("A recipe with the run_config its runs train with", response=RecipeSchema, tags=["models"])
@login_required("project.view")
def get_recipe(recipe_id: int):
    project = project_in_scope("project.view", required=False)
    return _recipe_body(service.get_recipe(current_user(), project, recipe_id))


@bp.get("/api/flow/ai-recipes/<int:recipe_id>/runs")
@doc("The recipe's runs, newest first", response=RunListSchema, tags=["models"])
@login_required("project.view")
def list_runs(recipe_id: int):
    project = project_in_scope("project.view", required=False)
    recipe = service.get_recipe(current_user(), project, recipe_id)
    return RunListSchema().dump({"items": service.list_runs(recipe)})


@bp.post("/api/flow/ai-recipes/<int:recipe_id>/run")
@doc(
    "Train on a worker; waits for the outcome unless wait=false (then 202 and poll the runs)",
    response=RunResultSchema,
    query={"wait": "true (default) or false"},
    tags=["models"],
    description="No request body: the run trains with the recipe's config (create it with POST /api/flow/ai-recipes, "
    "`recipe_type: train_model`). 200 `{status: success, run_id, model_id, metrics}` or "
    "`{status: failed, run_id, error}`; with `wait=false` 202 `{run_id, status: queued}`.",
    responses={202: "wait=false: the run is queued; poll GET /api/flow/ai-recipes/{id}/runs"},
)
@login_required("project.edit")
def run_recipe(recipe_id: int):
    project = project_in_scope("project.edit", required=False)
    recipe = service.get_recipe(current_user(), project, recipe_id, "project.edit")
    args = RunQuerySchema().load(request.args.to_dict())
    body, status = service.run_recipe(recipe, args["wait"])
    return RunResultSchema().dump(body), status


@bp.get("/api/models")
@doc(
    "The X-Project-Id project's models, every version",
    response=ModelListSchema,
    query={"name": "only the versions of this model name"},
    tags=["models"],
)
@login_required("project.view")
def list_models():
    project = project_in_scope("project.view")
    args = ModelListQuerySchema().load(request.args.to_dict())
    return ModelListSchema().dump({"models": service.list_models(project, args.get("name"))})


@bp.get("/api/models/<int:model_id>")
@doc(
    "One model version with its feature importance, input schema and every version of its name; categories and "
    "classes are masked for the caller's role as a preview of the input table would be",
    response=ModelDetailSchema,
    tags=["models"],
)
@login_required("project.view")
def get_model(model_id: int):
    project = project_in_scope("project.view", required=False)
    return _model_detail(service.get_model(current_user(), project, model_id))


@bp.post("/api/models/<int:model_id>/activate")
@doc("Make this version the active one of its name", response=ModelDetailSchema, tags=["models"])
@login_required("project.edit")
def activate_model(model_id: int):
    project = project_in_scope("project.edit", required=False)
    model = service.get_model(current_user(), project, model_id, "project.edit")
    return _model_detail(service.activate_model(model))


@bp.delete("/api/models/<int:model_id>")
@doc(
    "Delete a version and its artifact; 409 for the active version while others exist, and for a version a "
    "published API service scores with",
    response=DeletedSchema,
    tags=["models"],
)
@login_required("project.edit")
def delete_model(model_id: int):
    project = project_in_scope("project.edit", required=False)
    model = service.get_model(current_user(), project, model_id, "project.edit")
    service.delete_model(model)
    return DeletedSchema().dump({"ok": True, "model_id": model_id})
