"""What the Flask CLI groups share: one-line errors with a non-zero exit, `--json` output, the acting user."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import has_app_context
from flask.cli import AppGroup
from marshmallow import ValidationError
from sqlalchemy import func, select

from app.db import User
from app.errors import APIError, _flatten
from app.extensions import db


class CommandError(click.ClickException):
    """A failed command: `Error: <one line>` on stderr, exit status 1 (2 for a bad command line)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(str(message).split()))
        self.exit_code = exit_code


def api_error_message(err: APIError) -> str:
    """The service's sentence; field errors that the sentence does not already name are added after it."""
    message = err.message
    fields = (err.details or {}).get("fields") or {}
    extra = [f"{name}: {reasons[0]}" for name, reasons in fields.items() if name not in message and reasons]
    return "; ".join([message, *extra])


def validation_message(err: ValidationError) -> str:
    return "; ".join(f"{name}: {reasons[0]}" for name, reasons in _flatten(err.messages).items())


class OneLineCommand(click.Command):
    """A command whose failures are one line: command-line mistakes, API errors and validation errors alike."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as err:
            raise CommandError(f"{ctx.command_path}: {err.format_message()}", exit_code=2) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except APIError as err:
            _rollback()
            raise CommandError(api_error_message(err)) from None
        except ValidationError as err:
            _rollback()
            raise CommandError(validation_message(err)) from None


class CliGroup(AppGroup):
    """An AppGroup whose commands (and sub-groups) fail with one line."""

    command_class = OneLineCommand

    def group(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("cls", CliGroup)
        return super().group(*args, **kwargs)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as err:
            raise CommandError(f"{ctx.command_path}: {err.format_message()}", exit_code=2) from None


def _rollback() -> None:
    if has_app_context():
        db.session.rollback()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (the REST answer's fields).")


def echo_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, sort_keys=False, default=str))


def read_json_file(path: str, what: str) -> Any:
    """A JSON document from a file (`-` = stdin); a one-line error naming the file when it is not JSON."""
    try:
        with click.open_file(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise CommandError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{what}: {path} is not valid JSON ({exc})") from None


def parse_json_text(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what}: not valid JSON ({exc})") from None


user_option = click.option(
    "--user", "email", help="Act as this user (e-mail); default: the organization's first admin."
)


def acting_user(org_id: int, email: str | None):
    """Who an operator command acts as: `--user`, else the organization's first active admin. The user's role
    is checked by the same service calls as over HTTP."""
    stmt = select(User).where(User.org_id == org_id, User.is_active.is_(True))
    if email:
        stmt = stmt.where(func.lower(User.email) == email.lower())
    else:
        stmt = stmt.where(User.role == "admin").order_by(User.id)
    user = db.session.scalars(stmt).first()
    if user is None:
        raise CommandError(f"no {'active user ' + email if email else 'active admin'} in the organization")
    return user
