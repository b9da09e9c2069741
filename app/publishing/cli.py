"""Operator CLI for published assets and their keys: `flask services ...`, `flask keys ...`."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import func, select

from app.cli_base import CliGroup, CommandError, echo_json, json_option
from app.db import ApiKey, PublishedAsset, User
from app.errors import APIError
from app.extensions import db

services_cli = CliGroup("services", help="Published assets (API services and data APIs).")
keys_cli = CliGroup("keys", help="Data-API keys of a published asset.")


def _asset(asset_key: str) -> PublishedAsset:
    asset = db.session.scalar(select(PublishedAsset).where(PublishedAsset.asset_key == asset_key))
    if asset is None:
        raise click.ClickException(f"no asset with key {asset_key!r}")
    return asset


def _actor(asset: PublishedAsset, email: str | None) -> User:
    """The user the command acts as: --user, else the organization's first admin."""
    stmt = select(User).where(User.org_id == asset.org_id, User.is_active.is_(True))
    if email:
        stmt = stmt.where(func.lower(User.email) == email.lower())
    else:
        stmt = stmt.where(User.role == "admin").order_by(User.id)
    user = db.session.scalars(stmt).first()
    if user is None:
        raise click.ClickException(f"no {'user ' + email if email else 'admin'} in the asset's organization")
    return user


def _run(fn):
    try:
        return fn()
    except APIError as err:
        raise click.ClickException(err.message) from None


user_option = click.option(
    "--user", "email", help="Act as this user (e-mail); default: the organization's first admin."
)


@services_cli.command("list")
@click.option("--org-id", type=int, help="Only this organization.")
@click.option("--project-id", type=int, help="Only this project.")
@json_option
def list_services(org_id, project_id, as_json):
    """List published assets with their status and published version.

    \b
    Example:
      flask services list --project-id 3 --json
    """
    stmt = select(PublishedAsset).order_by(PublishedAsset.id)
    if org_id:
        stmt = stmt.where(PublishedAsset.org_id == org_id)
    if project_id:
        stmt = stmt.where(PublishedAsset.project_id == project_id)
    if as_json:
        from app.publishing.schemas import AssetListSchema

        echo_json(AssetListSchema().dump({"items": db.session.scalars(stmt)}))
        return
    click.echo("id\tasset_key\ttype\tstatus\tversion\tendpoints")
    for asset in db.session.scalars(stmt):
        endpoints = ",".join(ep.get("id", "?") for ep in (asset.config or {}).get("endpoints", []))
        version = asset.published_version if asset.status == "published" else "-"
        click.echo(f"{asset.id}\t{asset.asset_key}\t{asset.asset_type}\t{asset.status}\t{version}\t{endpoints}")


@services_cli.command("publish")
@click.argument("asset_key")
@click.option("--note", default=None, help="Change note for the new version.")
@user_option
def publish_service(asset_key, note, email):
    """Publish the draft of ASSET_KEY as a new version.

    \b
    Example:
      flask services publish sales-serving --note "add churn_risk"
    """
    from app.publishing.service import publish_asset

    asset = _asset(asset_key)
    version = _run(lambda: publish_asset(_actor(asset, email), asset, note))
    click.echo(f"published {asset_key} as version {version}")


@services_cli.command("unpublish")
@click.argument("asset_key")
def unpublish_service(asset_key):
    """Stop serving ASSET_KEY (it goes back to draft).

    \b
    Example:
      flask services unpublish sales-serving
    """
    from app.publishing.service import unpublish_asset

    unpublish_asset(_asset(asset_key))
    click.echo(f"unpublished {asset_key}")


@keys_cli.command("mint")
@click.argument("asset_key")
@click.option("--name", required=True)
@click.option("--endpoint", "endpoints", multiple=True, help="Allowed endpoint id (repeat); none = every endpoint.")
@click.option("--rate-limit", type=int, default=100, show_default=True, help="Requests per minute.")
@click.option("--expires-days", type=int, default=90, show_default=True, help="0 = never.")
@click.option("--masking-level", type=click.Choice(["masked", "unmasked"]), default="masked", show_default=True)
@click.option("--sensitivity-max", type=click.Choice(["low", "medium", "high", "critical"]), default="medium",
              show_default=True)  # fmt: skip
@click.option("--allowed-column", "allowed_columns", multiple=True,
              help="A column the key may read (repeat); none = every column.")  # fmt: skip
@click.option("--row-scope", "row_scopes", multiple=True, metavar="COLUMN=V1,V2",
              help="Every query of the key only sees rows whose COLUMN is one of the values (repeat per column).")  # fmt: skip
@user_option
@json_option
def mint_key(asset_key, name, endpoints, rate_limit, expires_days, masking_level, sensitivity_max, allowed_columns,
             row_scopes, email, as_json):  # fmt: skip
    """Mint a key for ASSET_KEY and print it (shown this once).

    \b
    Example:
      flask keys mint sales-serving --name eu-app --endpoint customer \\
          --allowed-column customer_key --allowed-column region --row-scope region=EU,UK
    """
    from app.keys.schemas import KeyCreatedSchema, KeyCreateSchema
    from app.keys.service import mint_api_key

    asset = _asset(asset_key)
    body = {"name": name, "rate_limit": rate_limit, "expires_days": expires_days, "masking_level": masking_level,
            "sensitivity_max": sensitivity_max, "allowed_columns": list(allowed_columns),
            "allowed_endpoints": list(endpoints) or None, "row_scope": _row_scope(row_scopes)}  # fmt: skip
    data = KeyCreateSchema().load(body)
    key, secret = _run(lambda: mint_api_key(_actor(asset, email), asset, data))
    if as_json:
        echo_json({**KeyCreatedSchema().dump(key), "key": secret})
        return
    click.echo(f"key id {key.id} ({key.prefix}…), store it now, it is not shown again:")
    click.echo(secret)


def _row_scope(pairs: tuple[str, ...]) -> dict | None:
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
    rows = db.session.scalars(select(ApiKey).where(ApiKey.asset_id == _asset(asset_key).id).order_by(ApiKey.id))
    if as_json:
        from app.keys.schemas import KeyListSchema

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
    from app.keys.service import revoke_api_key

    _run(lambda: revoke_api_key(_asset(asset_key), key_id))
    click.echo(f"revoked key {key_id}")


@services_cli.command("delete")
@click.argument("asset_key")
@click.option("--force", is_flag=True, help="Delete even while published (needs an org admin).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_option
def delete_service(asset_key, force, yes, email):
    """Delete ASSET_KEY with its versions and keys; its audit log stays readable by org admins.

    \b
    Example:  flask services delete sales-serving --force --yes
    """
    from app.publishing.service import delete_asset

    asset = _asset(asset_key)
    if not yes:
        click.confirm(f"Delete {asset.asset_type} {asset_key!r} with its versions and keys?", abort=True)
    tombstone = _run(lambda: delete_asset(_actor(asset, email), asset, force=force))
    click.echo(f"deleted {asset_key} (id {tombstone.id}); its audit log stays at /api/api-services/{tombstone.id}/logs")


def register_publishing_cli(app: Flask) -> None:
    from app.keys import cli as _keys_cli  # noqa: F401 - adds `flask keys update|rotate` to keys_cli

    app.cli.add_command(services_cli)
    app.cli.add_command(keys_cli)
