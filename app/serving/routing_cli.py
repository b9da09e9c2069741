"""`flask services route|compare`: versions in flight from the command line (the routing and compare routes)."""

from __future__ import annotations

import click

from app.cli_base import CommandError, echo_json, json_option, user_option
from app.publishing.cli import services_cli
from app.publishing.lifecycle_cli import _acting
from app.publishing.service import current_routing, get_version, routing_changes, set_routing
from app.serving.compare import compare_versions
from app.serving.schemas import CompareQuerySchema, CompareSchema


def _weights(pairs: tuple[str, ...]) -> list[dict]:
    entries = []
    for pair in pairs:
        version, sep, weight = pair.partition("=")
        if not sep or not version.strip().isdigit() or not weight.strip().isdigit():
            raise CommandError(f"--weight {pair!r}: expected VERSION=WEIGHT, e.g. 3=90")
        entries.append({"version": int(version), "weight": int(weight)})
    return entries


@services_cli.command("route")
@click.argument("asset_key")
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="VERSION=WEIGHT",
    help="A version and its share of the calls in percent (repeat; the weights sum to 100). None: show the routing.",
)
@click.option(
    "--strategy",
    type=click.Choice(["single", "random", "hash"]),
    help="single (one version), random (by weight per call) or hash (sticky by X-Dispatch-Key). "
    "Default: single for one --weight, else random.",
)
@click.option("--shadow", "shadow_version", type=int, help="Also run model and function calls on this version.")
@click.option("--no-shadow", is_flag=True, help="Stop shadow runs.")
@user_option
@json_option
def route_command(asset_key, weights, strategy, shadow_version, no_shadow, email, as_json):
    """Show or change how ASSET_KEY's calls are split over its published versions. Effective on the next call on
    every server; the models of newly routed versions are preloaded on the predict workers.

    \b
    Examples:
      flask services route sales-serving                                   # show it
      flask services route sales-serving --weight 3=90 --weight 4=10       # canary 10 %
      flask services route sales-serving --strategy hash --weight 3=50 --weight 4=50
      flask services route sales-serving --weight 4=100 --shadow 5        # shadow (org admin)
    """
    changing = bool(weights or strategy or shadow_version is not None or no_shadow)
    user, asset = _acting(asset_key, email, "project.edit")
    if changing:
        before = current_routing(asset)
        entries = _weights(weights) if weights else [e.__dict__ for e in (before.entries if before else ())]
        if no_shadow:
            shadow = None
        elif shadow_version is not None:
            shadow = shadow_version
        else:
            shadow = before.shadow_version if before else None
        body = {
            "strategy": strategy or ("single" if len(entries) == 1 else "random"),
            "entries": entries,
            "shadow_version": shadow,
        }
        routing = set_routing(user, asset, body)
    else:
        routing = current_routing(asset)
    body = routing.to_dict() if routing else {"strategy": "single", "entries": [], "shadow_version": None}
    if as_json:
        changes = [
            {"changed_by": c.changed_by, "changed_at": c.changed_at.isoformat(), "before": c.before, "after": c.after}
            for c in routing_changes(asset, 10)
        ]
        echo_json({**body, "changes": changes})
        return
    split = ", ".join(f"v{e['version']} {e['weight']}%" for e in body["entries"]) or "nothing published"
    shadow = f"; shadow v{body['shadow_version']}" if body["shadow_version"] else ""
    click.echo(f"{asset_key}: {body['strategy']} {split}{shadow}")


@services_cli.command("compare")
@click.argument("asset_key")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--since", help="From this time on (ISO 8601, UTC).")
@click.option("--until", help="Before this time (ISO 8601, UTC).")
@click.option("--endpoint", "endpoint_id", help="Only calls of this endpoint.")
@user_option
@json_option
def compare_command(asset_key, a, b, since, until, endpoint_id, email, as_json):
    """Compare versions A and B of ASSET_KEY from the audit log: calls, error rate, p50/p99 latency, predictions,
    and how often shadow runs agreed with the answers.

    \b
    Example:
      flask services compare sales-serving 3 4 --since 2026-01-31T00:00:00
    """
    _user, asset = _acting(asset_key, email, "project.view")
    given = {"a": a, "b": b, "since": since, "until": until, "endpoint_id": endpoint_id}
    args = CompareQuerySchema().load({k: v for k, v in given.items() if v is not None})
    get_version(asset, a), get_version(asset, b)
    report = CompareSchema().dump(
        compare_versions(asset, a, b, args.get("since"), args.get("until"), args.get("endpoint_id"))
    )
    if as_json:
        echo_json(report)
        return
    click.echo("version\tcalls\terror_rate\tp50_ms\tp99_ms\tshadow_runs\tpredictions")
    for v in report["versions"]:
        dist = v["predictions"] or {}
        if dist.get("kind") == "classification":
            shown = " ".join(f"{c['label']}:{c['share']:.0%}" for c in dist["classes"][:5])
        elif dist:
            shown = f"mean {dist['mean']}"
        else:
            shown = "-"
        rate = "-" if v["error_rate"] is None else f"{v['error_rate']:.2%}"
        click.echo(f"{v['version']}\t{v['calls']}\t{rate}\t{v['p50_ms']}\t{v['p99_ms']}\t{v['shadow_runs']}\t{shown}")
    shadow = report["shadow"]
    if shadow["pairs"]:
        parts = [f"{shadow['pairs']} shadow pair(s)"]
        if shadow["agreement_rate"] is not None:
            parts.append(f"same class {shadow['agreement_rate']:.1%}")
        if shadow["mean_abs_diff"] is not None:
            parts.append(f"mean |a-b| {shadow['mean_abs_diff']}")
        if shadow["function_agreement_rate"] is not None:
            parts.append(f"same function result {shadow['function_agreement_rate']:.1%}")
        click.echo("; ".join(parts))
