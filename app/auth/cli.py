"""`flask users create|list`: an organization's users from the command line."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import func, select

from app.auth.schemas import UserListSchema
from app.auth.service import create_user, suggest_username
from app.cli_base import CliGroup, echo_json, json_option
from app.cli_targets import org_by_name
from app.db import User
from app.errors import APIError
from app.extensions import db

users_cli = CliGroup("users", help="Organizations' users.")


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
    org = org_by_name(org_name, create=True)
    try:
        user = create_user(org.id, username or suggest_username(email), email, password, role)
    except APIError as err:
        raise click.ClickException(err.message) from None
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
    stmt = select(User).order_by(User.id)
    if org_name:
        stmt = stmt.where(User.org_id == org_by_name(org_name, create=False).id)
    if as_json:
        echo_json(UserListSchema().dump({"items": db.session.scalars(stmt)}))
        return
    for user in db.session.scalars(stmt):
        click.echo(f"{user.id}\t{user.username}\t{user.email}\t{user.role}\torg={user.org_id}")


def register_users_cli(app: Flask) -> None:
    app.cli.add_command(users_cli)
