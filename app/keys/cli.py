"""`flask keys update` and `flask keys rotate`: the key service's update and rotation from the command line."""

from __future__ import annotations

import json

import click
from marshmallow import ValidationError

from app.errors import _flatten
from app.keys.schemas import KeySchema, KeyUpdateSchema
from app.publishing.cli import _actor, _asset, _run, keys_cli, user_option


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
    for name in ("id", "name", "prefix", "rate_limit", "expires_at", "masking_level", "sensitivity_max",
                 "allowed_columns", "allowed_endpoints", "row_scope", "grace_expires_at"):  # fmt: skip
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
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON.")
@user_option
def update_key(asset_key, key_id, name, rate_limit, expires_days, masking_level, sensitivity_max, columns,
               all_columns, endpoints, all_endpoints, row_scope, no_row_scope, as_json, email):  # fmt: skip
    """Change key KEY_ID of ASSET_KEY; only the options given change, validated as at minting. Effective on the
    next call on every server.

    \b
    Example:  flask keys update sales-serving 3 --rate-limit 50 --row-scope region=EU --allowed-column customer_key
    """
    from app.keys.service import update_api_key

    data: dict = {}
    for field, value in (("name", name), ("rate_limit", rate_limit), ("expires_days", expires_days),
                         ("masking_level", masking_level), ("sensitivity_max", sensitivity_max)):  # fmt: skip
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
    asset = _asset(asset_key)
    key = _run(lambda: update_api_key(_actor(asset, email), asset, key_id, data))
    _show(key, as_json)


@keys_cli.command("rotate")
@click.argument("asset_key")
@click.argument("key_id", type=int)
@click.option("--grace-seconds", type=click.IntRange(0, 86_400), default=0, show_default=True,
              help="How long the old secret keeps working.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the key and its new secret as JSON.")
def rotate_key(asset_key, key_id, grace_seconds, as_json):
    """Give key KEY_ID of ASSET_KEY a new secret, printed this once; the old secret works --grace-seconds more.

    \b
    Example:  flask keys rotate sales-serving 3 --grace-seconds 3600
    """
    from app.keys.service import rotate_api_key

    key, secret = _run(lambda: rotate_api_key(_asset(asset_key), key_id, grace_seconds))
    if as_json:
        _show(key, True, secret)
        return
    click.echo(f"key id {key.id} ({key.prefix}…) has a new secret; store it now, it is not shown again:")
    click.echo(secret)
    if key.previous_key_expires_at:
        click.echo(f"the old secret works until {key.previous_key_expires_at.isoformat()}", err=True)
