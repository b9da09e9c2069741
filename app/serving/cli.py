"""`flask services test|call|logs` and `flask cache flush`: Test pane, keyed call, audit log and result cache."""

from __future__ import annotations

import json
import time

import click
import redis
from flask import Flask

from app.cli_base import CliGroup, CommandError, echo_json, json_option, parse_json_text, read_json_file, user_option
from app.cli_targets import asset_by_key
from app.errors import APIError
from app.extensions import db
from app.keys.auth_failures import key_prefix_of
from app.publishing.cli import services_cli
from app.publishing.lifecycle_cli import _acting
from app.serving import routing_cli  # noqa: F401 - importing adds `flask services route|compare`
from app.serving.audit import list_logs
from app.serving.cache import result_cache
from app.serving.dispatch import Call
from app.serving.schemas import LogEntrySchema, LogPageSchema, LogQuerySchema
from app.serving.service import audited_call, dry_run, serve_endpoint
from app.serving.traffic import last_log_id, latest_logs, logs_after

cache_cli = CliGroup("cache", help="Apiary's result cache in Redis.")


def _params(pairs: tuple[str, ...]) -> dict:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--param {pair!r}: expected NAME=VALUE")
        params[name] = value
    return params


def _body(text: str | None, path: str | None):
    if text is not None and path is not None:
        raise CommandError("give the body with --body or --body-file, not both")
    if path is not None:
        return read_json_file(path, "--body-file")
    if text is not None:
        return parse_json_text(text, "--body")
    return None


param_option = click.option(
    "--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help="A request query parameter (repeat)."
)
body_option = click.option("--body", "-d", "body_text", metavar="JSON", help="The JSON body (model/function).")
body_file_option = click.option(
    "--body-file", type=click.Path(dir_okay=False, allow_dash=True), help="A file holding the JSON body ('-' = stdin)."
)


@services_cli.command("test")
@click.argument("asset_key")
@click.argument("endpoint_id")
@param_option
@body_option
@body_file_option
@user_option
def test_command(asset_key, endpoint_id, params, body_text, body_file, email):
    """Run endpoint ENDPOINT_ID of the draft of ASSET_KEY, as the Test pane does: no key, never cached, masked for
    the acting user's role; prints the answer (with "dry": true) as JSON.

    \b
    Examples:
      flask services test sales-serving customer -p id=42
      flask services test sales-serving churn_risk -d '{"features": {"tenure": 3, "plan": "basic"}}'
    """
    user, asset = _acting(asset_key, email, "project.edit")
    # As in the Test pane, a JSON object given to a sql/lookup endpoint is its query parameters.
    call = Call("POST", _params(params), _body(body_text, body_file))
    echo_json(dry_run(user, asset, endpoint_id, call).body)


@services_cli.command("call")
@click.argument("asset_key")
@click.argument("endpoint_id")
@click.option(
    "--key",
    "api_key",
    envvar="APIARY_API_KEY",
    required=True,
    metavar="dk_…",
    help="The API key (or set APIARY_API_KEY, which keeps it out of the shell history).",
)
@click.option(
    "--method",
    "-X",
    type=click.Choice(["GET", "POST", "PUT", "PATCH", "DELETE"], case_sensitive=False),
    help="HTTP method; default POST with a body, GET without.",
)
@param_option
@body_option
@body_file_option
def call_command(asset_key, endpoint_id, api_key, method, params, body_text, body_file):
    """Call endpoint ENDPOINT_ID of the published ASSET_KEY with an API key, as a client would: the same checks in
    the same order (key, scope, rate limit, method, input) and an audit record; prints the answer as JSON. A refused
    call prints its status and error code and exits 1.

    \b
    Examples:
      APIARY_API_KEY=dk_... flask services call sales-serving customer -p id=42
      flask services call sales-serving churn_risk --key dk_... -d '{"features": {"tenure": 3}}'
    """
    body = _body(body_text, body_file)
    method = (method or ("GET" if body is None else "POST")).upper()
    call = Call(method, _params(params), None if method == "GET" else ({} if body is None else body))
    try:
        # As on the serving route: the call leaves its audit record (and a refused key its refused-key record).
        caller = {
            "asset_key": asset_key,
            "route": "flask services call",
            "key_presented": bool(api_key),
            "key_prefix": key_prefix_of(api_key),
            "user_agent": "flask services call",
            "read_request_payload": lambda: call.body if method != "GET" else call.params,
        }
        with audited_call(method, **caller) as served:
            outcome = serve_endpoint(served, asset_key, endpoint_id, api_key, call)
    except APIError as err:
        raise CommandError(f"{err.status} {err.code}: {err.message}") from None
    echo_json(outcome.answer())


@services_cli.command("logs")
@click.argument("asset_key")
@click.option("--endpoint", "endpoint_id", help="Only calls of this endpoint.")
@click.option("--key-id", help="Only calls made with this key id.")
@click.option("--status", help="Only calls answered with this HTTP status.")
@click.option("--errors-only", is_flag=True, help="Only calls answered with a status of 400 or more.")
@click.option("--since", help="From this time on (ISO 8601, UTC).")
@click.option("--until", help="Before this time (ISO 8601, UTC).")
@click.option("--version", "version", help="Only calls this published version answered (or shadow runs on it).")
@click.option("--limit", default="100", show_default=True, help="At most this many records (1..1000).")
@click.option("--offset", default="0", show_default=True, help="Skip this many (newest first).")
@click.option(
    "--follow", "-f", is_flag=True, help="Keep printing new records as they reach the log, oldest first; Ctrl-C stops."
)
@click.option(
    "--interval", default="1", show_default=True, help="With --follow: seconds between two reads of the log (0.1..60)."
)
@click.option(
    "--max-polls",
    type=click.IntRange(min=1),
    help="With --follow: stop after this many reads instead of at Ctrl-C (scripts, tests).",
)
@user_option
@json_option
def logs_command(
    asset_key,
    endpoint_id,
    key_id,
    status,
    errors_only,
    since,
    until,
    version,
    limit,
    offset,
    follow,
    interval,
    max_polls,
    email,
    as_json,
):
    """The audit log of ASSET_KEY's calls, newest first, with the filters of GET /api/api-services/{id}/logs.
    Calls reach the log within seconds (a worker writes them in batches).

    With --follow (-f) it tails the log instead: the last --limit matching records, oldest first, then every new
    one as it is written, until Ctrl-C (or --max-polls reads). With --json each record is one JSON line.

    \b
    Examples:
      flask services logs sales-serving --errors-only --since 2026-01-31T00:00:00 --json
      flask services logs sales-serving -f --endpoint customer
      flask services logs sales-serving -f --json --limit 10 | jq .latency_ms
    """
    _user, asset = _acting(asset_key, email, "project.view")
    given = {
        "endpoint_id": endpoint_id,
        "key_id": key_id,
        "status": status,
        "since": since,
        "until": until,
        "version": version,
        "limit": limit,
        "offset": offset,
        "errors_only": "true" if errors_only else None,
    }
    if follow:
        if until is not None or offset != "0":
            raise CommandError("--follow reads new records as they come: drop --until and --offset")
        filters = LogQuerySchema().load({k: v for k, v in given.items() if v is not None})
        _follow(asset, filters, _interval(interval), max_polls, as_json)
        return
    if max_polls is not None or interval != "1":
        raise CommandError("--interval and --max-polls go with --follow")
    filters = LogQuerySchema().load({k: v for k, v in given.items() if v is not None})
    page = LogPageSchema().dump(list_logs(asset, filters))
    if as_json:
        echo_json(page)
        return
    click.echo(LOG_HEADER)
    for e in page["items"]:
        click.echo(_log_line(e))
    shown = len(page["items"])
    click.echo(f"{shown} of {page['total']} record(s) (offset {page['offset']})", err=True)


LOG_HEADER = "created_at\tendpoint\tkey_id\tmethod\tstatus\tlatency_ms\terror\tversion"


def _log_line(e: dict) -> str:
    return (
        f"{e['created_at']}\t{e['endpoint_id'] or '-'}\t{e['key_id'] or '-'}\t{e['method']}\t{e['status']}\t"
        f"{e['latency_ms']:.1f}\t{e['error_code'] or '-'}\t{e.get('version') or '-'}{' (shadow)' if e.get('shadow') else ''}"
    )


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 60:
        raise CommandError(f"--interval {text!r}: give a number of seconds from 0.1 to 60")
    return seconds


def _follow(asset, filters: dict, interval: float, max_polls: int | None, as_json: bool) -> None:
    """Print the last records, then poll for records after the last id printed (a cursor, so a record flushed
    late is never skipped nor shown twice); Ctrl-C ends it quietly with status 0."""
    schema = LogEntrySchema()

    def show(records) -> int | None:
        for record in records:
            entry = schema.dump(record)
            click.echo(json.dumps(entry, separators=(",", ":")) if as_json else _log_line(entry))
        return records[-1].id if records else None

    try:
        if not as_json:
            click.echo(LOG_HEADER)
        cursor = show(latest_logs(asset, filters, filters["limit"])) or last_log_id(asset)
        db.session.rollback()  # end the read: the next one sees what was written since
        polls = 0
        while max_polls is None or polls < max_polls:
            time.sleep(interval)
            cursor = show(logs_after(asset, filters, cursor)) or cursor
            db.session.rollback()
            polls += 1
    except KeyboardInterrupt:
        click.echo("", err=True)  # the ^C stays on its own line; exit status 0


@cache_cli.command("flush")
@click.option("--asset", "asset_key", help="Only this asset's cached results.")
def flush_command(asset_key):
    """Drop cached query results (sql, lookup and data-API answers) so the next calls read the warehouse again:
    every asset's, or one asset's with --asset. Useful after changing warehouse data in place.

    \b
    Examples:
      flask cache flush
      flask cache flush --asset sales-serving
    """
    asset_id = asset_by_key(asset_key).id if asset_key else None
    try:
        deleted = result_cache().flush(asset_id)
    except redis.RedisError as exc:
        raise CommandError(f"Redis is not reachable, nothing was flushed: {exc}") from None
    scope = f"of {asset_key}" if asset_key else "of every asset"
    click.echo(f"flushed the cached results {scope}: {deleted} entr{'y' if deleted == 1 else 'ies'} deleted")


def register_serving_cli(app: Flask) -> None:
    """`flask cache`; the lifecycle commands (create, show, versions, diff, rollback, endpoints) joined
    `flask services` when app.publishing.lifecycle_cli, imported above, was loaded."""
    app.cli.add_command(cache_cli)
