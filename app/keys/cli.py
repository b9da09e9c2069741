"""`flask keys mint|list|revoke|update|rotate`: the key service from the command line."""

from __future__ import annotations

import json

import click
from flask import Flask
from marshmallow import ValidationError
from sqlalchemy import select

from app.cli_base import CliGroup, CommandError, echo_json, json_option, user_option
from app.cli_targets import asset_actor, asset_by_key, call_service
from app.db import ApiKey
from app.errors import _flatten
from app.extensions import db
from app.keys.schemas import KeyCreatedSchema, KeyCreateSchema, KeyListSchema, KeySchema, KeyUpdateSchema
from app.keys.service import mint_api_key, revoke_api_key, rotate_api_key, update_api_key

keys_cli = CliGroup("keys", help="Data-API keys of a published asset.")


def _row_scope(pairs: tuple[str, ...]) -> dict[str, list[str]]:
    """`region=EU,US` (repeatable) -> {"region": ["EU", "US"]}."""
    scope: dict[str, list[str]] = {}
    for pair in pairs:
        column, sep, values = pair.partition("=")
        if not sep or not column.strip() or not values.strip():
            raise click.BadParameter(f"{pair!r}: expected column=value[,value...]", param_hint="--row-scope")
        scope.setdefault(column.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return scope


def _show(key, as_json: bool, secret: str | None = None) -> None:
    body = KeySchema().dump(key)
    if secret is not None:
        body["key"] = secret
    if as_json:
        click.echo(json.dumps(body, sort_keys=True))
        return
    for name in (
        "id",
        "name",
        "prefix",
        "rate_limit",
        "expires_at",
        "masking_level",
        "sensitivity_max",
        "allowed_columns",
        "allowed_endpoints",
        "row_scope",
        "can_force_version",
        "grace_expires_at",
    ):
        click.echo(f"{name}\t{body.get(name)}")


@keys_cli.command("update")
@click.argument("asset_key")
@click.argument("key_id", type=int)
@click.option("--name")
@click.option("--rate-limit", type=int, help="Requests per minute.")
@click.option("--expires-days", type=int, help="Days from now; 0 = never.")
@click.option("--masking-level", type=click.Choice(["masked", "unmasked"]))
@click.option("--sensitivity-max", type=click.Choice(["low", "medium", "high", "critical"]))
@click.option("--allowed-column", "columns", multiple=True, help="Only this column (repeat).")
@click.option("--all-columns", is_flag=True, help="Every column again (allowed_columns = []).")
@click.option("--endpoint", "endpoints", multiple=True, help="Only this endpoint id (repeat).")
@click.option("--all-endpoints", is_flag=True, help="Every endpoint again (allowed_endpoints = null).")
@click.option("--row-scope", "row_scope", multiple=True, help="column=value[,value...] (repeat for more columns).")
@click.option("--no-row-scope", is_flag=True, help="Drop the row scope.")
@click.option(
    "--can-force-version/--cannot-force-version",
    default=None,
    help="Whether the key may pin a call to a version with the X-Service-Version header.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON.")
@user_option
def update_key(
    asset_key,
    key_id,
    name,
    rate_limit,
    expires_days,
    masking_level,
    sensitivity_max,
    columns,
    all_columns,
    endpoints,
    all_endpoints,
    row_scope,
    no_row_scope,
    can_force_version,
    as_json,
    email,
):
    """Change key KEY_ID of ASSET_KEY; only the options given change, validated as at minting. Effective on the
    next call on every server.

    \b
    Example:  flask keys update sales-serving 3 --rate-limit 50 --row-scope region=EU --allowed-column customer_key
    """
    data: dict = {}
    for field, value in (
        ("name", name),
        ("rate_limit", rate_limit),
        ("expires_days", expires_days),
        ("masking_level", masking_level),
        ("sensitivity_max", sensitivity_max),
        ("can_force_version", can_force_version),
    ):
        if value is not None:
            data[field] = value
    if columns or all_columns:
        data["allowed_columns"] = [] if all_columns else list(columns)
    if endpoints or all_endpoints:
        data["allowed_endpoints"] = None if all_endpoints else list(endpoints)
    if row_scope or no_row_scope:
        data["row_scope"] = None if no_row_scope else _row_scope(row_scope)
    if not data:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    try:
        data = KeyUpdateSchema().load(data, partial=True)
    except ValidationError as err:
        raise click.ClickException(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in _flatten(err.messages).items())
        ) from None
    asset = asset_by_key(asset_key)
    key = call_service(lambda: update_api_key(asset_actor(asset, email), asset, key_id, data))
    _show(key, as_json)


@keys_cli.command("rotate")
@click.argument("asset_key")
@click.argument("key_id", type=int)
@click.option(
    "--grace-seconds",
    type=click.IntRange(0, 86_400),
    default=0,
    show_default=True,
    help="How long the old secret keeps working.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key and its new secret as JSON.")
def rotate_key(asset_key, key_id, grace_seconds, as_json):
    """Give key KEY_ID of ASSET_KEY a new secret, printed this once; the old secret works --grace-seconds more.

    \b
    Example:  flask keys rotate sales-serving 3 --grace-seconds 3600
    """
    key, secret = call_service(lambda: rotate_api_key(asset_by_key(asset_key), key_id, grace_seconds))
    if as_json:
        _show(key, True, secret)
        return
    click.echo(f"key id {key.id} ({key.prefix}…) has a new secret; store it now, it is not shown again:")
    click.echo(secret)
    if key.previous_key_expires_at:
        click.echo(f"the old secret works until {key.previous_key_expires_at.isoformat()}", err=True)


@keys_cli.command("mint")
@click.argument("asset_key")
@click.option("--name", required=True)
@click.option("--endpoint", "endpoints", multiple=True, help="Allowed endpoint id (repeat); none = every endpoint.")
@click.option("--rate-limit", type=int, default=100, show_default=True, help="Requests per minute.")
@click.option("--expires-days", type=int, default=90, show_default=True, help="0 = never.")
@click.option("--masking-level", type=click.Choice(["masked", "unmasked"]), default="masked", show_default=True)
@click.option(
    "--sensitivity-max", type=click.Choice(["low", "medium", "high", "critical"]), default="medium", show_default=True
)
@click.option(
    "--allowed-column",
    "allowed_columns",
    multiple=True,
    help="A column the key may read (repeat); none = every column.",
)
@click.option(
    "--row-scope",
    "row_scopes",
    multiple=True,
    metavar="COLUMN=V1,V2",
    help="Every query of the key only sees rows whose COLUMN is one of the values (repeat per column).",
)
@click.option(
    "--can-force-version", is_flag=True, help="The key may pin a call to a version (X-Service-Version header)."
)
@user_option
@json_option
def mint_key(
    asset_key,
    name,
    endpoints,
    rate_limit,
    expires_days,
    masking_level,
    sensitivity_max,
    allowed_columns,
    row_scopes,
    can_force_version,
    email,
    as_json,
):
    """Mint a key for ASSET_KEY and print it (shown this once).

    \b
    Example:
      flask keys mint sales-serving --name eu-app --endpoint customer \\
          --allowed-column customer_key --allowed-column region --row-scope region=EU,UK
    """

    asset = asset_by_key(asset_key)
    body = {
        "name": name,
        "rate_limit": rate_limit,
        "expires_days": expires_days,
        "masking_level": masking_level,
        "sensitivity_max": sensitivity_max,
        "allowed_columns": list(allowed_columns),
        "allowed_endpoints": list(endpoints) or None,
        "row_scope": _mint_row_scope(row_scopes),
        "can_force_version": can_force_version,
    }
    data = KeyCreateSchema().load(body)
    key, secret = call_service(lambda: mint_api_key(asset_actor(asset, email), asset, data))
    if as_json:
        echo_json({**KeyCreatedSchema().dump(key), "key": secret})
        return
    click.echo(f"key id {key.id} ({key.prefix}…), store it now, it is not shown again:")
    click.echo(secret)


def _mint_row_scope(pairs: tuple[str, ...]) -> dict | None:
    """`--row-scope region=EU,UK` (repeatable) -> {"region": ["EU", "UK"]}; the service checks columns and values."""
    scope: dict[str, list[str]] = {}
    for pair in pairs:
        column, sep, values = pair.partition("=")
        listed = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not column.strip() or not listed:
            raise CommandError(f"--row-scope {pair!r}: expected COLUMN=VALUE[,VALUE...]")
        scope.setdefault(column.strip(), [])
        scope[column.strip()] += [v for v in listed if v not in scope[column.strip()]]
    return scope or None


@keys_cli.command("list")
@click.argument("asset_key")
@json_option
def list_keys(asset_key, as_json):
    """List the keys of ASSET_KEY (prefixes only).

    \b
    Example:
      flask keys list sales-serving --json
    """
    rows = db.session.scalars(select(ApiKey).where(ApiKey.asset_id == asset_by_key(asset_key).id).order_by(ApiKey.id))
    if as_json:
        echo_json(KeyListSchema().dump({"items": rows}))
        return
    click.echo("id\tprefix\tname\tactive\trate_limit\texpires_at\tendpoints")
    for key in rows:
        expires = key.expires_at.isoformat() if key.expires_at else "never"
        scope = ",".join(key.allowed_endpoints) if key.allowed_endpoints else "all"
        click.echo(f"{key.id}\t{key.prefix}\t{key.name}\t{key.is_active}\t{key.rate_limit}\t{expires}\t{scope}")


@keys_cli.command("revoke")
@click.argument("asset_key")
@click.argument("key_id", type=int)
def revoke_key(asset_key, key_id):
    """Revoke key KEY_ID of ASSET_KEY, effective at once.

    \b
    Example:
      flask keys revoke sales-serving 3
    """
    call_service(lambda: revoke_api_key(asset_by_key(asset_key), key_id))
    click.echo(f"revoked key {key_id}")


def register_keys_cli(app: Flask) -> None:
    app.cli.add_command(keys_cli)
