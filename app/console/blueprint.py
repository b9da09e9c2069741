"""The console blueprint: the signed-in user from the session cookie, CSRF on every post, HTML errors, headers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from flask import Blueprint, g, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from app.auth.permissions import get_project_for, has_permission, require_permission
from app.console.csrf import csrf_ok, csrf_token
from app.db import Project, User
from app.errors import APIError
from app.extensions import db

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/console-static",
)

USER_KEY = "console_uid"
GENERATION_KEY = "console_gen"  # the user's session_generation at sign-in; signing out bumps it server-side

# No inline script or style anywhere in the console, so the policy can forbid both: an injected tag does nothing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


@bp.record_once
def _cookie_defaults(state) -> None:
    config = state.app.config
    config["SESSION_COOKIE_HTTPONLY"] = True
    if not config.get("SESSION_COOKIE_SAMESITE"):
        config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # SESSION_COOKIE_SECURE comes from config (on in production, SESSION_COOKIE_SECURE overrides).


def console_user() -> User | None:
    """The user signed in to the console, or None; a deactivated or deleted user is signed out."""
    if "console_user" not in g:
        uid = session.get(USER_KEY)
        user = db.session.get(User, uid) if isinstance(uid, int) else None
        if user is not None and (not user.is_active or session.get(GENERATION_KEY) != user.session_generation):
            user = None  # deactivated, or the cookie was revoked by a sign-out (a replayed copy ends here)
        if user is None and uid is not None:
            session.pop(USER_KEY, None)
            session.pop(GENERATION_KEY, None)
        g.console_user = user
    return g.console_user


def wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def signed_in(view: Callable) -> Callable:
    """Send visitors without a session to the login page, coming back here afterwards."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if console_user() is None:
            if wants_json():
                return jsonify({"error": {"code": "unauthorized", "message": "sign in again", "details": {}}}), 401
            target = request.full_path if request.method == "GET" else request.path
            return redirect(url_for("console.login") + "?" + urlencode({"next": target.rstrip("?")}))
        return view(*args, **kwargs)

    return wrapper


def project_for(project_id: int, permission: str = "project.view") -> Project:
    """The project if it is the user's organization's (404 otherwise) and the user may `permission` (403)."""
    user = console_user()
    project = get_project_for(user, project_id)
    require_permission(user, permission)
    g.project = project
    return project


def can(permission: str) -> bool:
    user = console_user()
    return user is not None and has_permission(user, permission)


@bp.before_request
def _check_csrf():
    if request.method == "POST" and not csrf_ok():
        message = "This form has expired or did not come from this site. Reload the page and try again."
        if wants_json():
            return jsonify({"error": {"code": "csrf_failed", "message": message, "details": {}}}), 400
        return render_template("console/error.html", status=400, title="Form expired", message=message), 400
    return None


@bp.after_request
def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        # Pages show keys, data previews and logs: never from a shared cache or the back button after logout.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _template_globals() -> dict:
    return {"csrf_token": csrf_token, "can": can}


_TITLES = {400: "Bad request", 401: "Sign in", 403: "Not allowed", 404: "Not found", 409: "Conflict"}


@bp.errorhandler(APIError)
def _api_error(err: APIError):
    if wants_json():
        return jsonify(err.body()), err.status
    title = _TITLES.get(err.status, "Something went wrong")
    return render_template("console/error.html", status=err.status, title=title, message=err.message), err.status


@bp.errorhandler(413)
def _too_large(err: Exception):
    # The app's JSON handler for 413 would otherwise win over the catch-all below: the console shows a page.
    return _unexpected(err)


@bp.errorhandler(Exception)
def _unexpected(err: Exception):
    if isinstance(err, HTTPException):
        status = err.code or 500
        return render_template("console/error.html", status=status, title=err.name, message=err.description), status
    request_id = g.get("request_id") or uuid.uuid4().hex
    log.exception("console error (request_id=%s) on %s %s", request_id, request.method, request.path)
    try:
        db.session.rollback()
    except Exception:  # the original error is what matters here
        log.exception("rollback after console error failed")
    message = f"An internal error occurred. Reference: {request_id}"
    if wants_json():
        return jsonify({"error": {"code": "internal_error", "message": message, "details": {}}}), 500
    return render_template("console/error.html", status=500, title="Something went wrong", message=message), 500
