"""A service's versions in flight in the console: the routing editor (strategy, weights, shadow picker), its change
history, and the comparison of two versions with an inline SVG chart (no script, no CDN)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from app.console.blueprint import bp, console_user, signed_in
from app.console.forms import FormErrors, from_api_error
from app.console.service_pages import load_service
from app.errors import APIError
from app.publishing import service as publishing
from app.serving.compare import compare_versions

CHART_WIDTH, BAR_HEIGHT, LABEL_WIDTH = 520, 18, 150
COLORS = ("#2563eb", "#f59e0b")  # version a, version b


def _routing_form(asset) -> dict:
    routing = publishing.current_routing(asset)
    weights = {e.version: e.weight for e in routing.entries} if routing else {}
    return {
        "strategy": routing.strategy if routing else "single",
        "weights": {str(v): str(w) for v, w in weights.items()},
        "shadow_version": str(routing.shadow_version) if routing and routing.shadow_version else "",
    }


def _body_from_form(form, versions: list[int], errors: FormErrors) -> dict | None:
    entries = []
    for version in sorted(versions):
        raw = (form.get(f"weight_{version}") or "").strip()
        if not raw or raw == "0":
            continue
        if not raw.isdigit():
            errors.add(f"weight_{version}", "a whole number from 0 to 100")
            continue
        entries.append({"version": version, "weight": int(raw)})
    shadow = (form.get("shadow_version") or "").strip()
    if errors:
        return None
    return {
        "strategy": form.get("strategy") or "",
        "entries": entries,
        "shadow_version": int(shadow) if shadow.isdigit() else None,
    }


def bar_chart(rows: list[tuple[str, list[float | None]]], unit: str) -> dict:
    """Horizontal bars, one group per row label with one bar per version: coordinates for the template's SVG."""
    top = max([v for _, values in rows for v in values if v is not None] or [0]) or 1
    bars, y = [], 6
    for label, values in rows:
        group = {"label": label, "y": y, "bars": []}
        for i, value in enumerate(values):
            width = 0 if value is None else max(1, round((CHART_WIDTH - LABEL_WIDTH - 70) * value / top))
            group["bars"].append(
                {"y": y + i * BAR_HEIGHT, "width": width, "color": COLORS[i % 2], "text": _fmt(value, unit)}
            )
        bars.append(group)
        y += BAR_HEIGHT * len(values) + 10
    return {"groups": bars, "height": y, "width": CHART_WIDTH, "label_width": LABEL_WIDTH, "bar_height": BAR_HEIGHT - 3}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f} %" if unit == "%" else f"{value:g} {unit}".strip()


def _charts(report: dict) -> list[dict]:
    a, b = report["versions"]
    charts = [
        {
            "title": "Latency",
            "chart": bar_chart([("p50", [a["p50_ms"], b["p50_ms"]]), ("p99", [a["p99_ms"], b["p99_ms"]])], "ms"),
        },
        {
            "title": "Calls",
            "chart": bar_chart([("calls", [a["calls"], b["calls"]]), ("errors", [a["errors"], b["errors"]])], ""),
        },
    ]
    pa, pb = a["predictions"], b["predictions"]
    if (pa or pb) and (pa or pb)["kind"] == "classification":
        shares = lambda dist: {c["label"]: c["share"] for c in (dist or {}).get("classes", [])}  # noqa: E731
        sa, sb = shares(pa), shares(pb)
        labels = sorted(set(sa) | set(sb))[:12]
        rows = [(f"class {label}", [sa.get(label, 0.0), sb.get(label, 0.0)]) for label in labels]
        charts.append({"title": "Predicted classes", "chart": bar_chart(rows, "%")})
    elif pa or pb:
        rows = [(name, [(pa or {}).get(name), (pb or {}).get(name)]) for name in ("mean", "p50", "p90")]
        charts.append({"title": "Predictions", "chart": bar_chart(rows, "")})
    return charts


def _render(project, asset, status=200, **context):
    versions = publishing.list_versions(asset)
    numbers = [v.version for v in versions]
    report = None
    a, b = request.args.get("a", ""), request.args.get("b", "")
    if a.isdigit() and b.isdigit() and int(a) in numbers and int(b) in numbers:
        report = compare_versions(asset, int(a), int(b))
    elif len(numbers) > 1 and not (a or b):
        a, b = str(numbers[1]), str(numbers[0])
        report = compare_versions(asset, int(a), int(b))
    context.setdefault("form", _routing_form(asset))
    context.setdefault("errors", FormErrors())
    return render_template(
        "console/routing.html",
        project=project,
        service=asset,
        versions=versions,
        changes=publishing.routing_changes(asset),
        report=report,
        charts=_charts(report) if report else [],
        colors=COLORS,
        a=a,
        b=b,
        **context,
    ), status


@bp.get("/projects/<int:project_id>/settings/services/<int:service_id>/routing")
@signed_in
def service_routing(project_id: int, service_id: int):
    project, asset = load_service(project_id, service_id)
    return _render(project, asset)


@bp.post("/projects/<int:project_id>/settings/services/<int:service_id>/routing")
@signed_in
def save_service_routing(project_id: int, service_id: int):
    project, asset = load_service(project_id, service_id, "project.edit")
    errors = FormErrors()
    versions = [v.version for v in publishing.list_versions(asset)]
    body = _body_from_form(request.form, versions, errors)
    if body is not None:
        try:
            publishing.set_routing(console_user(), asset, body)
        except APIError as err:
            if err.status != 422:
                flash(f"Could not change the routing: {err.message}", "error")
                return redirect(url_for("console.service_routing", project_id=project.id, service_id=asset.id))
            from_api_error(err, errors)
        else:
            flash("Routing saved: the next call on every server follows it.", "success")
            return redirect(url_for("console.service_routing", project_id=project.id, service_id=asset.id))
    form = {
        "strategy": request.form.get("strategy") or "",
        "weights": {str(v): request.form.get(f"weight_{v}") or "" for v in versions},
        "shadow_version": request.form.get("shadow_version") or "",
    }
    return _render(project, asset, 422, form=form, errors=errors)
