"""Project routes."""

from flask import Blueprint

from app.auth.permissions import current_user, login_required
from app.http import json_body
from app.openapi import doc
from app.projects import service
from app.projects.schemas import ProjectCreateSchema, ProjectListSchema, ProjectSchema

bp = Blueprint("projects", __name__)


@bp.get("/api/projects")
@doc("Projects of the caller's organization", response=ProjectListSchema)
@login_required("project.view")
def list_projects():
    return ProjectListSchema().dump({"items": service.list_projects(current_user().org_id)})


@bp.post("/api/projects")
@doc("Create a project", body=ProjectCreateSchema, response=ProjectSchema, status=201)
@login_required("project.edit")
def create_project():
    data = ProjectCreateSchema().load(json_body())
    user = current_user()
    return ProjectSchema().dump(service.create_project(user.org_id, created_by=user.id, **data)), 201


@bp.get("/api/projects/<id_or_slug>")
@doc("One project, by id or slug", response=ProjectSchema)
@login_required("project.view")
def get_project(id_or_slug: str):
    return ProjectSchema().dump(service.find_project(current_user(), id_or_slug))
