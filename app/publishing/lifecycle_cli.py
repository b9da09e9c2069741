"""`flask services create|show|versions|diff|rollback|endpoints add|remove`, through the REST routes' services."""

from __future__ import annotations

import json

import click

from app.cli_base import (
    CommandError,
    acting_user,
    echo_json,
    json_option,
    read_json_file,
    user_option,
)
from app.cli_targets import asset_by_key, org_by_name
from app.projects.service import project_by_ref
from app.publishing.cli import services_cli
from app.publishing.endpoints import put_endpoint, remove_endpoint
from app.publishing.schemas import AssetCreateSchema, AssetDetailSchema, AssetSchema, DiffSchema, PublishResultSchema
from app.publishing.service import create_asset, diff_versions, get_asset, list_versions, rollback_asset


def _acting(asset_key: str, email: str | None, permission: str):
    """The asset as `--user` (or the org's first admin) may see it, with that user's `permission` checked."""
    found = asset_by_key(asset_key)
    user = acting_user(found.org_id, email)
    return user, get_asset(user, found.id, permission)


def _detail(asset) -> dict:
    body = AssetDetailSchema().dump(asset)
    body["versions"] = AssetDetailSchema().dump({"versions": list_versions(asset)})["versions"]
    return body


@services_cli.command("create")
@click.option("--project", "project_ref", help="Project id or slug (required for an api_service).")
@click.option("--org", "org_name", help="Organization name (a slug shared by several; a data_api without project).")
@click.option(
    "--body",
    "body_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON file with the whole create body, as POST /api/publish/assets takes it ('-' = stdin); "
    "the options below override its fields.",
)
@click.option(
    "--type", "asset_type", type=click.Choice(["api_service", "data_api"]), help="Asset type (default api_service)."
)
@click.option("--key", "asset_key", help="The asset key in serving URLs, e.g. sales-serving.")
@click.option("--title")
@click.option("--description")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON file with the "
    'config: {"endpoints": [...]} for an api_service (default: none yet), a query config for a data_api.',
)
@user_option
@json_option
def create_service(
    project_ref, org_name, body_file, asset_type, asset_key, title, description, config_file, email, as_json
):
    """Create a published asset as a draft (publish it with `flask services publish`).

    \b
    Examples:
      flask services create --project sales --key sales-serving --title "Sales serving" --config service.json
      flask services create --project sales --body asset.json
    """
    if project_ref:
        project = project_by_ref(project_ref, org_name)
        org_id = project.org_id
    elif org_name:
        project, org_id = None, org_by_name(org_name, create=False).id
    else:
        raise CommandError("name the project with --project (or the organization with --org for a data_api)")
    body = read_json_file(body_file, "--body") if body_file else {}
    if not isinstance(body, dict):
        raise CommandError("--body: expected a JSON object")
    options = {
        "asset_type": asset_type,
        "asset_key": asset_key,
        "title": title,
        "description": description,
        "config": read_json_file(config_file, "--config") if config_file else None,
    }
    body = {**body, **{k: v for k, v in options.items() if v is not None}}
    body.setdefault("asset_type", "api_service")
    if body["asset_type"] == "api_service":
        body.setdefault("config", {"endpoints": []})
    data = AssetCreateSchema().load(body)
    asset = create_asset(acting_user(org_id, email), project, data)
    if as_json:
        echo_json(AssetSchema().dump(asset))
        return
    click.echo(f"created {asset.asset_type} {asset.asset_key} (id {asset.id}) as a draft")


@services_cli.command("show")
@click.argument("asset_key")
@user_option
@json_option
def show_service(asset_key, email, as_json):
    """Show ASSET_KEY: status, published version, draft endpoints and versions.

    \b
    Example:
      flask services show sales-serving --json
    """
    _user, asset = _acting(asset_key, email, "project.view")
    body = _detail(asset)
    if as_json:
        echo_json(body)
        return
    version = body["published_version"] if body["status"] == "published" else "-"
    click.echo(
        f"{body['asset_key']} (id {body['id']}): {body['asset_type']}, {body['status']}, "
        f"published version {version}, project {body['project_id']}"
    )
    click.echo(f"title: {body['title']}")
    if asset.asset_type == "api_service":
        click.echo("draft endpoints:")
        for endpoint in body["config"].get("endpoints", []):
            click.echo(f"  {endpoint.get('id')}\t{endpoint.get('kind')}")
    _echo_versions(body["versions"])


def _echo_versions(versions: list[dict]) -> None:
    click.echo("version\tpublished_by\tcreated_at\tchange_note")
    for v in versions:
        click.echo(f"{v['version']}\t{v['published_by']}\t{v['created_at']}\t{v['change_note']}")


@services_cli.command("versions")
@click.argument("asset_key")
@user_option
@json_option
def list_versions_command(asset_key, email, as_json):
    """List the published versions of ASSET_KEY, newest first.

    \b
    Example:
      flask services versions sales-serving
    """
    _user, asset = _acting(asset_key, email, "project.view")
    versions = _detail(asset)["versions"]
    if as_json:
        echo_json({"items": versions})
        return
    _echo_versions(versions)


@services_cli.command("diff")
@click.argument("asset_key")
@click.argument("left", type=int)
@click.argument("right", type=int)
@user_option
@json_option
def diff_command(asset_key, left, right, email, as_json):
    """What changed from version LEFT to version RIGHT of ASSET_KEY.

    \b
    Example:
      flask services diff sales-serving 1 2
    """
    _user, asset = _acting(asset_key, email, "project.view")
    body = DiffSchema().dump(diff_versions(asset, left, right))
    if as_json:
        echo_json(body)
        return
    if not body["diff"]:
        click.echo(f"versions {left} and {right} are the same")
    for change in body["diff"]:
        if change["kind"] == "added":
            click.echo(f"+ {change['path']}: {_short(change['right'])}")
        elif change["kind"] == "removed":
            click.echo(f"- {change['path']}: {_short(change['left'])}")
        else:
            click.echo(f"~ {change['path']}: {_short(change['left'])} -> {_short(change['right'])}")


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


@services_cli.command("rollback")
@click.argument("asset_key")
@click.argument("version", type=int)
@user_option
@json_option
def rollback_command(asset_key, version, email, as_json):
    """Re-publish version VERSION of ASSET_KEY as a new version (org admin); the draft becomes that version too.

    \b
    Example:
      flask services rollback sales-serving 1
    """
    user, asset = _acting(asset_key, email, "project.edit")
    new_version = rollback_asset(user, asset, version)
    if as_json:
        echo_json(PublishResultSchema().dump({"ok": True, "status": "published", "version": new_version}))
        return
    click.echo(f"rolled {asset_key} back to version {version}: published as version {new_version}")


@services_cli.group("endpoints")
def endpoints_cli():
    """Endpoints of an API service's draft (publish to serve the change)."""


@endpoints_cli.command("add")
@click.argument("asset_key")
@click.option(
    "--file",
    "endpoint_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON file with the endpoint object ('-' = stdin); options below override its fields.",
)
@click.option("--id", "endpoint_id", help="Endpoint id (an endpoint with this id is replaced).")
@click.option("--kind", type=click.Choice(["sql", "lookup", "model", "function"]))
@click.option("--query", "query_file", type=click.Path(dir_okay=False), help="sql: JSON file with the query config.")
@click.option("--dataset", help="lookup: dataset name schema.table.")
@click.option("--key-column", help="lookup: the column matched.")
@click.option("--key-param", help="lookup: the request parameter carrying the key (default id).")
@click.option("--column", "columns", multiple=True, help="lookup: a column returned (repeat; default all).")
@click.option("--max-results", type=int, help="lookup: at most this many rows (default 100).")
@click.option("--model-id", type=int, help="model: the id of a model of the service's project.")
@click.option(
    "--handler",
    "handler_file",
    type=click.Path(dir_okay=False),
    help="function: Python file defining handler(payload) (org admins only).",
)
@click.option("--cache-ttl", type=int, help="sql/lookup: seconds a result is cached (0 = off).")
@click.option("--description", help="What the endpoint answers.")
@click.option("--note", default="", help="Change note for the draft.")
@user_option
@json_option
def add_endpoint(
    asset_key,
    endpoint_file,
    endpoint_id,
    kind,
    query_file,
    dataset,
    key_column,
    key_param,
    columns,
    max_results,
    model_id,
    handler_file,
    cache_ttl,
    description,
    note,
    email,
    as_json,
):
    """Add an endpoint to the draft of ASSET_KEY, replacing the endpoint with the same id.

    \b
    Examples:
      flask services endpoints add sales-serving --id customer --kind lookup \\
          --dataset marts.dim_customer --key-column customer_key
      flask services endpoints add sales-serving --id churn_risk --kind model --model-id 12
      flask services endpoints add sales-serving --file top_customers.json
    """
    endpoint = read_json_file(endpoint_file, "--file") if endpoint_file else {}
    if not isinstance(endpoint, dict):
        raise CommandError("--file: expected a JSON object with id and kind")
    handler = None
    if handler_file:
        try:
            with open(handler_file, encoding="utf-8") as fh:
                handler = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"--handler: cannot read {handler_file}: {exc}") from None
    overrides = {
        "id": endpoint_id,
        "kind": kind,
        "query": read_json_file(query_file, "--query") if query_file else None,
        "dataset": dataset,
        "key_column": key_column,
        "key_param": key_param,
        "columns": list(columns) or None,
        "max_results": max_results,
        "model_id": model_id,
        "handler": handler,
        "cache_ttl_seconds": cache_ttl,
        "description": description,
    }
    endpoint = {**endpoint, **{k: v for k, v in overrides.items() if v is not None}}
    if not endpoint.get("id") or not endpoint.get("kind"):
        raise CommandError("an endpoint needs --id and --kind (or a --file that has them)")
    user, asset = _acting(asset_key, email, "project.edit")
    asset, replaced = put_endpoint(user, asset, endpoint, note)
    if as_json:
        echo_json(_detail(asset))
        return
    click.echo(
        f"{'replaced' if replaced else 'added'} endpoint {endpoint['id']} in the draft of {asset_key}; "
        f"`flask services publish {asset_key}` serves it"
    )


@endpoints_cli.command("remove")
@click.argument("asset_key")
@click.argument("endpoint_id")
@click.option("--note", default="", help="Change note for the draft.")
@user_option
def remove_endpoint_command(asset_key, endpoint_id, note, email):
    """Remove endpoint ENDPOINT_ID from the draft of ASSET_KEY.

    \b
    Example:
      flask services endpoints remove sales-serving top_tenure
    """
    user, asset = _acting(asset_key, email, "project.edit")
    remove_endpoint(user, asset, endpoint_id, note)
    click.echo(f"removed endpoint {endpoint_id} from the draft of {asset_key}")
