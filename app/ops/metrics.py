"""Prometheus metrics: request counts and latency by route and status."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess


def init_metrics(app: Flask) -> None:
    multiproc = bool(app.config.get("PROMETHEUS_MULTIPROC_DIR"))
    # In multiprocess mode (gunicorn) metrics live in files and are aggregated at scrape time.
    registry = None if multiproc else CollectorRegistry()
    kwargs = {"registry": registry} if registry is not None else {}
    requests = Counter("apiary_http_requests_total", "HTTP requests", ["method", "route", "status"], **kwargs)
    latency = Histogram(
        "apiary_http_request_duration_seconds",
        "HTTP request latency",
        ["method", "route"],
        buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        **kwargs,
    )
    app.extensions["apiary_metrics"] = {"registry": registry, "multiproc": multiproc}

    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("request_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            requests.labels(request.method, route, str(response.status_code)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response


def render_metrics(app: Flask) -> Response:
    state = app.extensions["apiary_metrics"]
    if state["multiproc"]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = state["registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
