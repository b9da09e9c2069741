"""`flask projects create|list`: an organization's projects from the command line."""

from __future__ import annotations

import click
from flask import Flask

from app.cli_base import CliGroup, echo_json, json_option
from app.cli_targets import org_by_name
from app.errors import APIError
from app.projects.schemas import ProjectListSchema
from app.projects.service import create_project, list_projects

projects_cli = CliGroup("projects", help="Projects of an organization.")


@projects_cli.command("create")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--name", required=True)
@click.option("--slug", required=True)
@click.option("--description", default="")
def create_project_command(org_name, name, slug, description):
    """Create a project in an organization.

    \b
    Example:
      flask projects create --org Acme --name Sales --slug sales
    """
    org = org_by_name(org_name, create=False)
    try:
        project = create_project(org.id, name, slug, description)
    except APIError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"created project {project.slug} (id {project.id}) in {org.name}")


@projects_cli.command("list")
@click.option("--org", "org_name", required=True)
@json_option
def list_projects_command(org_name, as_json):
    """List the projects of an organization.

    \b
    Example:
      flask projects list --org Acme --json
    """
    if as_json:
        echo_json(ProjectListSchema().dump({"items": list_projects(org_by_name(org_name, create=False).id)}))
        return
    for project in list_projects(org_by_name(org_name, create=False).id):
        click.echo(f"{project.id}\t{project.slug}\t{project.name}")


def register_projects_cli(app: Flask) -> None:
    app.cli.add_command(projects_cli)
