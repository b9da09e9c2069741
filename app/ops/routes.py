"""Operations routes: liveness, readiness, metrics and the OpenAPI document."""

from flask import Blueprint, current_app, jsonify, request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt.exceptions import PyJWTError

from app.auth.permissions import current_user, has_permission
from app.errors import APIError
from app.extensions import db
from app.openapi import build_spec, doc
from app.ops.health import readiness, readiness_summary
from app.ops.metrics import render_metrics

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@doc("Liveness: the web process answers", auth=False)
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@doc(
    "Readiness: database, Redis and at least one worker, each ok or not, with each queue's live workers (counts; "
    "their names, and errors, for org admins)",
    auth=False,
)
def readyz():
    report = readiness(current_app)
    status = 200 if report["status"] == "ok" else 503
    return jsonify(report if _caller_is_org_admin() else readiness_summary(report)), status


def _caller_is_org_admin() -> bool:
    """Whether the request carries valid credentials of an org admin; anything else is an anonymous probe."""
    if not request.headers.get("Authorization"):
        return False
    try:
        return has_permission(current_user(), "org.admin")
    except (APIError, JWTExtendedException, PyJWTError):
        return False
    except Exception:  # the database may be the thing that is down: then nobody gets details
        db.session.rollback()
        return False


@bp.get("/metrics")
@doc("Prometheus metrics", auth=False)
def metrics():
    return render_metrics(current_app)


@bp.get("/api/openapi.json")
@doc("This OpenAPI document", auth=False)
def openapi():
    return jsonify(build_spec(current_app))
