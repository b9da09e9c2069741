"""The project list, project creation, and a project's settings page with its API Services section."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from app.auth.permissions import require_permission
from app.console.blueprint import bp, console_user, project_for, signed_in
from app.console.forms import FormErrors, from_api_error, load, text
from app.errors import APIError
from app.projects import service as project_service
from app.projects.schemas import ProjectCreateSchema
from app.publishing import service as publishing
from app.publishing.schemas import AssetCreateSchema


@bp.route("/projects", methods=["GET", "POST"])
@signed_in
def projects():
    user = console_user()
    errors = FormErrors()
    values = {name: text(request.form, name) for name in ("name", "slug", "description")}
    if request.method == "POST":
        require_permission(user, "project.edit")
        data = load(ProjectCreateSchema(), values, errors)
        if data is not None:
            try:
                project = project_service.create_project(user.org_id, created_by=user.id, **data)
            except APIError as err:
                from_api_error(err, errors)
            else:
                flash(f"Project {project.name} created.", "success")
                return redirect(url_for("console.datasets_page", project_id=project.id))
    items = project_service.list_projects(user.org_id)
    status = 422 if errors else 200
    return render_template("console/projects.html", projects=items, errors=errors, values=values), status


@bp.get("/projects/<int:project_id>")
@signed_in
def project_home(project_id: int):
    project_for(project_id)
    return redirect(url_for("console.datasets_page", project_id=project_id))


def _services(project) -> list:
    return publishing.list_assets(console_user(), "api_service", None, project.id)


@bp.get("/projects/<int:project_id>/settings")
@signed_in
def settings(project_id: int):
    project = project_for(project_id)
    return render_template(
        "console/settings.html", project=project, services=_services(project), errors=FormErrors(), values={}
    )


@bp.post("/projects/<int:project_id>/settings/services")
@signed_in
def create_service(project_id: int):
    user = console_user()
    project = project_for(project_id, "project.edit")
    errors = FormErrors()
    values = {name: text(request.form, name) for name in ("asset_key", "title", "description", "icon", "sort_order")}
    roles = request.form.getlist("roles")
    body = {k: v for k, v in values.items() if v != "" or k in ("asset_key", "title")}
    if "sort_order" in body:  # the schema is strict about numbers: a whole number, or the error naming the field
        body["sort_order"] = int(body["sort_order"]) if body["sort_order"].lstrip("-").isdigit() else body["sort_order"]
    body.update(asset_type="api_service", config={"endpoints": []}, roles=roles)
    data = load(AssetCreateSchema(), body, errors)
    if data is not None:
        try:
            asset = publishing.create_asset(user, project, data)
        except APIError as err:
            from_api_error(err, errors)
        else:
            flash(f"Service {asset.title} created as a draft. Add its endpoints below.", "success")
            return redirect(url_for("console.service", project_id=project.id, service_id=asset.id))
    return render_template(
        "console/settings.html",
        project=project,
        services=_services(project),
        errors=errors,
        values={**values, "roles": roles},
    ), 422
