"""The console's charts, assembled from the same service calls the API answers with: a service's traffic per
endpoint, the latency histogram of the filtered log, and a model's held-out evaluation and metrics by version."""

from __future__ import annotations

from datetime import datetime

from markupsafe import Markup

from app.console.charts import Series, bar_chart, heatmap, histogram, line_chart, scatter
from app.db import DeletedAsset, MLModel, PublishedAsset
from app.serving.traffic import bin_label, latency_histogram, service_stats

WINDOW_NAMES = {"hour": "Last hour", "day": "Last day", "week": "Last week"}
# Metrics charted across versions; the rest stay in the table.
VERSION_METRICS = {
    "classification": ("accuracy", "f1", "roc_auc"),
    "regression": ("r2", "rmse", "mae"),
}


def _tick(start: str, window: str) -> str:
    when = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return when.strftime("%m-%d %H:%M" if window == "week" else "%H:%M")


def service_traffic(asset: PublishedAsset | DeletedAsset, window: str) -> dict:
    """{window, stats (the API's body), charts: [{endpoint_id, summary, calls, errors, latency}]}."""
    stats = service_stats(asset, window)
    charts = []
    for ep in stats["endpoints"]:
        ticks = [_tick(b["start"], window) for b in ep["buckets"]]
        name = ep["endpoint_id"] or "data API"
        rates = [None if b["error_rate"] is None else round(b["error_rate"] * 100, 2) for b in ep["buckets"]]
        charts.append(
            {
                "endpoint_id": ep["endpoint_id"],
                "summary": ep,
                "calls": bar_chart([b["calls"] for b in ep["buckets"]], ticks, f"Calls to {name}"),
                "errors": line_chart([Series("error rate", rates)], ticks, f"Error rate of {name}", "%", 100),
                "latency": line_chart(
                    [
                        Series("p50", [b["p50_ms"] for b in ep["buckets"]]),
                        Series("p99", [b["p99_ms"] for b in ep["buckets"]]),
                    ],
                    ticks,
                    f"Latency of {name}",
                    " ms",
                ),
            }
        )
    return {"window": window, "windows": WINDOW_NAMES, "stats": stats, "charts": charts}


def log_histogram(asset: PublishedAsset | DeletedAsset, filters: dict) -> tuple[dict, Markup]:
    """The histogram of the log's filtered calls and its chart."""
    body = latency_histogram(asset, filters)
    labels = [bin_label(b["le_ms"]) for b in body["bins"]]
    return body, histogram([b["count"] for b in body["bins"]], labels, "Latency of the filtered calls")


def model_charts(model: MLModel, versions: list[MLModel]) -> dict:
    """ROC curves and confusion matrix (classifiers) or predicted vs actual (regressors) from the held-out test
    set stored at training, and the main metrics across the name's versions, oldest first."""
    evaluation = model.evaluation or {}
    charts: dict = {}
    for curve in evaluation.get("roc") or []:
        points = list(zip(curve["fpr"], curve["tpr"], strict=True))
        label = f"ROC curve, class {curve['class']}"
        charts.setdefault("roc", []).append(
            {
                "class": curve["class"],
                "auc": curve.get("auc"),
                "svg": scatter(points, label, "false positive rate", "true positive rate", line=True),
            }
        )
    matrix = evaluation.get("confusion")
    if matrix:
        charts["confusion"] = heatmap(matrix["matrix"], [str(c) for c in matrix["labels"]], "Confusion matrix")
    pairs = evaluation.get("predicted_vs_actual")
    if pairs:
        points = list(zip(pairs["actual"], pairs["predicted"], strict=True))
        charts["predicted_vs_actual"] = scatter(points, "Predicted vs actual", "actual", "predicted")
    ordered = sorted(versions, key=lambda v: v.version)
    ticks = [f"v{v.version}" for v in ordered]
    series = [
        Series(name, [_metric(v, name) for v in ordered])
        for name in VERSION_METRICS.get(model.task_type, ())
        if any(_metric(v, name) is not None for v in ordered)
    ]
    if len(ordered) > 1 and series:
        bounded = [s for s in series if s.name != "rmse" and s.name != "mae"]
        errors = [s for s in series if s.name in ("rmse", "mae")]
        if bounded:
            charts["versions"] = line_chart(bounded, ticks, f"{model.name}: metrics by version", y_max=1)
        if errors:
            charts["version_errors"] = line_chart(errors, ticks, f"{model.name}: errors by version")
    return charts


def _metric(model: MLModel, name: str) -> float | None:
    value = (model.metrics or {}).get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
