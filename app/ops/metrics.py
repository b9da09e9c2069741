"""Prometheus metrics: HTTP requests, serving calls per service and endpoint, cache, rate limits, refused keys,
worker tasks, and (read at scrape time) queue depths, workers per queue and training runs.

Multiprocess-safe: under gunicorn (PROMETHEUS_MULTIPROC_DIR) counters and histograms live in files aggregated at
scrape time, and the scrape-time figures are read from Redis and the database by whichever process answers.
Labels are bounded: route templates, service asset keys and endpoint ids of published services (an unknown service
or endpoint is `""`), status codes, queue names, fixed reasons; never a key id, a client address or a raw path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import redis
from flask import Flask, Response, current_app, g, has_app_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.db import RecipeRun
from app.extensions import db
from app.namespace import namespaced_redis
from app.ops.timing import PARTS as TIMING_PARTS
from app.process import current_pid

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
QUEUES = ("predict", "train", "functions", "default")  # tasks.celery_app.QUEUES (config-free copy, checked by a test)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
TASK_OUTCOMES = ("success", "error", "timeout", "worker_lost", "broker_unavailable")

if getattr(values.ValueClass, "_multiprocess", False):
    # Multiprocess mode: every write checks the process id for a fork (os.getpid, a system call; a served call makes
    # about thirteen). The library's documented hook takes our kept one instead, renewed in a forked child. Set here,
    # before any series exists: every value of the process must share one class (one file per process and type).
    values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)


def _define(kwargs: dict) -> dict:
    return {
        "requests": Counter("apiary_http_requests_total", "HTTP requests", ["method", "route", "status"], **kwargs),
        "latency": Histogram(
            "apiary_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        ),
        "calls": Counter(
            "apiary_service_calls_total",
            "Keyed serving calls by service, endpoint and status",
            ["service", "endpoint", "status"],
            **kwargs,
        ),
        "call_latency": Histogram(
            "apiary_service_call_duration_seconds",
            "Keyed serving call latency by service and endpoint",
            ["service", "endpoint"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        ),
        "call_parts": Histogram(
            "apiary_service_call_part_seconds",
            "Where serving calls spend their time (the Server-Timing parts)",
            ["part"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        ),
        "cache": Counter(
            "apiary_result_cache_total",
            "Result cache lookups of sql, lookup and data API calls",
            ["service", "endpoint", "result"],
            **kwargs,
        ),
        "rate_limited": Counter(
            "apiary_rate_limit_rejections_total", "Keyed calls refused with 429", ["service"], **kwargs
        ),
        "auth_failures": Counter(
            "apiary_auth_failures_total", "Keyed calls refused at authentication, by reason", ["reason"], **kwargs
        ),
        "tasks": Counter(
            "apiary_worker_tasks_total",
            "Tasks sent to a queue and waited for, by outcome",
            ["queue", "outcome"],
            **kwargs,
        ),
        "task_latency": Histogram(
            "apiary_worker_task_duration_seconds",
            "Time from sending a task to its answer (queue wait included)",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        ),
    }


def init_metrics(app: Flask) -> None:
    multiproc = bool(app.config.get("PROMETHEUS_MULTIPROC_DIR"))
    # In multiprocess mode (gunicorn) metrics live in files and are aggregated at scrape time.
    registry = None if multiproc else CollectorRegistry()
    kwargs = {"registry": registry} if registry is not None else {}
    metrics = _define(kwargs)
    collector = ScrapeTimeCollector(app)
    if registry is not None:
        registry.register(collector)
    app.extensions["apiary_metrics"] = {
        "registry": registry,
        "multiproc": multiproc,
        "metrics": metrics,
        "collector": collector,
    }

    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("request_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            # Any token is a method to werkzeug: a made-up one must not mint new series (memory) on every request.
            method = request.method if request.method in HTTP_METHODS else "other"
            _child(metrics, "requests", method, route, str(response.status_code)).inc()
            _child(metrics, "latency", method, route).observe(time.perf_counter() - started)
        return response


_children: dict[tuple, object] = {}


def _child(metrics: dict, name: str, *labels: str):
    """`metrics[name].labels(*labels)`, kept: a served call observes about eight series, and prometheus_client's
    `labels()` validates and locks on every lookup (the series themselves never change once created)."""
    slot = (metrics[name], labels)
    child = _children.get(slot)
    if child is None:
        child = _children[slot] = metrics[name].labels(*labels)
    return child


def _metrics() -> dict | None:
    if not has_app_context():
        return None
    state = current_app.extensions.get("apiary_metrics")
    return state["metrics"] if state else None


def observe_call(service: str, endpoint: str, status: int, seconds: float, cache: str | None, parts: dict) -> None:
    """One keyed serving call. `service`/`endpoint` are "" unless the call reached a published service/endpoint."""
    metrics = _metrics()
    if metrics is None:
        return
    _child(metrics, "calls", service, endpoint, str(status)).inc()
    _child(metrics, "call_latency", service, endpoint).observe(seconds)
    if cache in ("HIT", "MISS"):
        _child(metrics, "cache", service, endpoint, cache.lower()).inc()
    if status == 429:
        _child(metrics, "rate_limited", service).inc()
    for part, ms in parts.items():
        if part in TIMING_PARTS:  # not `total` (call_latency has it) nor `cpu` (not a part of the wall time)
            _child(metrics, "call_parts", part).observe(ms / 1000)


def observe_auth_failure(reason: str) -> None:
    metrics = _metrics()
    if metrics is not None:
        metrics["auth_failures"].labels(reason).inc()


def observe_task(queue: str, seconds: float | None, outcome: str) -> None:
    """A task sent to `queue` and waited for: its outcome and, when it was sent, the time to its answer."""
    metrics = _metrics()
    if metrics is None or queue not in QUEUES or outcome not in TASK_OUTCOMES:
        return
    metrics["tasks"].labels(queue, outcome).inc()
    if seconds is not None:
        metrics["task_latency"].labels(queue).observe(seconds)


class ScrapeTimeCollector:
    """Figures read when scraped: tasks waiting per queue (the broker's lists), live worker processes consuming each
    queue (their heartbeats), training runs by status (the database). A store that does not answer leaves its
    series out of that scrape rather than failing it."""

    def __init__(self, app: Flask):
        self.app = app
        self._broker = None

    def describe(self):
        return []

    def collect(self):
        with self.app.app_context():
            yield from self._queues()
            yield from self._training_runs()

    def _queues(self):
        config = self.app.config
        if self._broker is None:
            self._broker = namespaced_redis(
                config["CELERY_BROKER_URL"], config["APIARY_NAMESPACE"], socket_connect_timeout=0.5, socket_timeout=1
            )
        depth = GaugeMetricFamily("apiary_queue_depth", "Tasks waiting in each queue", labels=["queue"])
        workers = GaugeMetricFamily(
            "apiary_queue_workers", "Live worker processes consuming each queue", labels=["queue"]
        )
        try:
            pipe = self._broker.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            lengths = pipe.execute()
            consuming = dict.fromkeys(QUEUES, 0)
            keys = list(self._broker.scan_iter(match="apiary:worker:*", count=1000))
            for raw in self._broker.mget(keys) if keys else []:
                with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
                    for queue in json.loads(raw)["queues"]:
                        if queue in consuming:
                            consuming[queue] += 1
        except (redis.RedisError, OSError) as exc:
            log.debug("queue figures left out of the scrape: %s", exc)
            return
        for queue, length in zip(QUEUES, lengths, strict=True):
            depth.add_metric([queue], float(length or 0))
            workers.add_metric([queue], float(consuming[queue]))
        yield depth
        yield workers

    def _training_runs(self):
        family = GaugeMetricFamily(
            "apiary_training_runs", "Training runs recorded, by status (outcome)", labels=["status"]
        )
        try:
            counts = dict(db.session.execute(select(RecipeRun.status, func.count()).group_by(RecipeRun.status)).all())
        except Exception as exc:  # noqa: BLE001 - a database that does not answer must not fail the scrape
            log.debug("training runs left out of the scrape: %s", exc)
            db.session.rollback()
            return
        for status in ("queued", "running", "success", "failed"):
            family.add_metric([status], float(counts.get(status, 0)))
        yield family


def render_metrics(app: Flask) -> Response:
    state = app.extensions["apiary_metrics"]
    if state["multiproc"]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(state["collector"])
    else:
        registry = state["registry"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
