"""Operations routes: liveness, readiness, metrics and the OpenAPI document."""

from flask import Blueprint, current_app, jsonify

from app.openapi import build_spec, doc
from app.ops.health import readiness
from app.ops.metrics import render_metrics

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@doc("Liveness: the web process answers", auth=False)
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@doc("Readiness: database, Redis and at least one worker, each reported", auth=False)
def readyz():
    report = readiness(current_app)
    return jsonify(report), 200 if report["status"] == "ok" else 503


@bp.get("/metrics")
@doc("Prometheus metrics", auth=False)
def metrics():
    return render_metrics(current_app)


@bp.get("/api/openapi.json")
@doc("This OpenAPI document", auth=False)
def openapi():
    return jsonify(build_spec(current_app))
