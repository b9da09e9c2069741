"""Operator CLI for published assets: `flask services list|publish|unpublish|delete`."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from app.cli_base import CliGroup, echo_json, json_option, user_option
from app.cli_targets import asset_actor, asset_by_key, call_service
from app.db import PublishedAsset
from app.extensions import db
from app.publishing.endpoint_config import endpoint_dicts
from app.publishing.schemas import AssetListSchema
from app.publishing.service import delete_asset, publish_asset, unpublish_asset

services_cli = CliGroup("services", help="Published assets (API services and data APIs).")


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
        echo_json(AssetListSchema().dump({"items": db.session.scalars(stmt)}))
        return
    click.echo("id\tasset_key\ttype\tstatus\tversion\tendpoints")
    for asset in db.session.scalars(stmt):
        endpoints = ",".join(ep.get("id", "?") for ep in endpoint_dicts(asset.config))
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
    asset = asset_by_key(asset_key)
    version = call_service(lambda: publish_asset(asset_actor(asset, email), asset, note))
    click.echo(f"published {asset_key} as version {version}")


@services_cli.command("unpublish")
@click.argument("asset_key")
def unpublish_service(asset_key):
    """Stop serving ASSET_KEY (it goes back to draft).

    \b
    Example:
      flask services unpublish sales-serving
    """
    unpublish_asset(asset_by_key(asset_key))
    click.echo(f"unpublished {asset_key}")


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
    asset = asset_by_key(asset_key)
    if not yes:
        click.confirm(f"Delete {asset.asset_type} {asset_key!r} with its versions and keys?", abort=True)
    tombstone = call_service(lambda: delete_asset(asset_actor(asset, email), asset, force=force))
    click.echo(f"deleted {asset_key} (id {tombstone.id}); its audit log stays at /api/api-services/{tombstone.id}/logs")


def register_publishing_cli(app: Flask) -> None:
    app.cli.add_command(services_cli)
