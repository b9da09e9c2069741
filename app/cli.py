"""Flask CLI groups named after domains: `flask users ...`, `flask projects ...`."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from sqlalchemy import func, select

from app.cli_base import CliGroup, echo_json, json_option
from app.errors import APIError

users_cli = CliGroup("users", help="Organizations' users.")
projects_cli = CliGroup("projects", help="Projects of an organization.")


def _fail(err: APIError) -> None:
    raise click.ClickException(err.message)


def _org_by_name(name: str, create: bool):
    from app.db import Organization
    from app.extensions import db

    org = db.session.scalar(select(Organization).where(func.lower(Organization.name) == name.lower()))
    if org is None and create:
        org = Organization(name=name)
        db.session.add(org)
        db.session.commit()
    if org is None:
        raise click.ClickException(f"no organization named {name!r}")
    return org


@users_cli.command(
    "create", epilog="\b\nExample:\n  flask users create --email ops@acme.test --org Acme --role designer"
)
@click.option("--email", required=True, help="E-mail address; also the login.")
@click.option("--password", help="Password (prompted for when omitted).")
@click.option("--org", "org_name", required=True, help="Organization name; created when it does not exist.")
@click.option(
    "--role", type=click.Choice(["admin", "designer", "analyst", "viewer"]), default="admin", show_default=True
)
@click.option("--username", help="Username, without @ (defaults to the e-mail's local part); the e-mail logs in too.")
@click.option("--if-missing", is_flag=True, help="Succeed quietly when a user with this e-mail already exists.")
def create_user_command(email, password, org_name, role, username, if_missing):
    """Create a user in an organization."""
    from app.auth.service import create_user, suggest_username
    from app.db import User
    from app.extensions import db

    existing = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if existing is not None:
        if if_missing:
            click.echo(f"user {email} already exists (id {existing.id})")
            return
        raise click.ClickException(f"a user with e-mail {email} already exists")
    if not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("password must be at least 8 characters")
    org = _org_by_name(org_name, create=True)
    try:
        user = create_user(org.id, username or suggest_username(email), email, password, role)
    except APIError as err:
        _fail(err)
    click.echo(f"created user {user.email} (id {user.id}, role {user.role}) in organization {org.name} (id {org.id})")


@users_cli.command("list")
@click.option("--org", "org_name", help="Only this organization.")
@json_option
def list_users_command(org_name, as_json):
    """List users.

    \b
    Example:
      flask users list --org Acme --json
    """
    from app.db import User
    from app.extensions import db

    stmt = select(User).order_by(User.id)
    if org_name:
        stmt = stmt.where(User.org_id == _org_by_name(org_name, create=False).id)
    if as_json:
        from app.auth.schemas import UserListSchema

        echo_json(UserListSchema().dump({"items": db.session.scalars(stmt)}))
        return
    for user in db.session.scalars(stmt):
        click.echo(f"{user.id}\t{user.username}\t{user.email}\t{user.role}\torg={user.org_id}")


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
    from app.projects.service import create_project

    org = _org_by_name(org_name, create=False)
    try:
        project = create_project(org.id, name, slug, description)
    except APIError as err:
        _fail(err)
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
    from app.projects.service import list_projects

    if as_json:
        from app.projects.schemas import ProjectListSchema

        echo_json(ProjectListSchema().dump({"items": list_projects(_org_by_name(org_name, create=False).id)}))
        return
    for project in list_projects(_org_by_name(org_name, create=False).id):
        click.echo(f"{project.id}\t{project.slug}\t{project.name}")


def random_password() -> str:
    return secrets.token_urlsafe(12)


def register_cli(app: Flask) -> None:
    from app.datasets.cli import register_datasets_cli
    from app.demo import register_demo_cli
    from app.models.cli import register_models_cli
    from app.ops.cli import register_ops_cli
    from app.publishing.cli import register_publishing_cli
    from app.serving.cli import register_serving_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(projects_cli)
    register_datasets_cli(app)
    register_publishing_cli(app)
    register_ops_cli(app)
    register_models_cli(app)
    register_demo_cli(app)
    register_serving_cli(app)
