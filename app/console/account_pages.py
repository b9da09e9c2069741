"""Sign in, sign up and sign out of the console."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, redirect, render_template, request, session, url_for

from app.auth.service import authenticate_user, revoke_console_sessions
from app.auth.throttle import throttle_login_account, throttle_login_address, throttle_signup_address
from app.console.blueprint import GENERATION_KEY, USER_KEY, bp, console_user
from app.console.csrf import csrf_token
from app.console.forms import FormErrors, load, text
from app.db import User
from app.errors import APIError


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never `//elsewhere`, `https://elsewhere`, or one that becomes so once a browser drops
    its tabs and newlines (`/\t/evil.example`); control characters would also split the Location header."""
    if target and _is_local_path(target):
        return target
    return url_for("console.projects")


def _is_local_path(target: str) -> bool:
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or "\\" in target:
        return False
    parts = urlsplit(target)
    return target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc


def _start_session(user: User) -> None:
    # A fresh session (and CSRF token) at sign-in, so nothing planted before it survives; the generation ties the
    # cookie to the server-side state that signing out bumps.
    session.clear()
    session[USER_KEY] = user.id
    session[GENERATION_KEY] = user.session_generation
    csrf_token()


def _throttled(err: APIError, template: str, **context):
    response = current_app.make_response((render_template(template, **context), 429))
    response.headers["Retry-After"] = err.headers.get("Retry-After", "60")
    return response


@bp.get("/")
def home():
    return redirect(url_for("console.projects" if console_user() else "console.login"))


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico on their own (e.g. on a JSON page): the console's SVG icon."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.route("/login", methods=["GET", "POST"])
def login():
    errors = FormErrors()
    username = ""
    signup = current_app.config.get("ALLOW_SIGNUP", True)
    if request.method == "POST":
        username = text(request.form, "username")
        password = request.form.get("password") or ""
        try:
            throttle_login_address()
            user = authenticate_user(username, password, before_verify=throttle_login_account)
        except APIError as err:
            if err.status != 429:
                raise
            errors.add("", f"Too many sign-in attempts. Try again in {err.details['retry_after']} s.")
            return _throttled(err, "console/login.html", errors=errors, username=username, signup=signup)
        if user is not None:
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
        errors.add("", "Wrong username or password.")
    elif console_user() is not None:
        return redirect(_safe_next(request.args.get("next")))
    status = 401 if errors else 200
    return render_template("console/login.html", errors=errors, username=username, signup=signup), status


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    from app.auth.schemas import RegisterSchema
    from app.auth.service import register_organization

    if not current_app.config.get("ALLOW_SIGNUP", True):
        return redirect(url_for("console.login"))
    errors = FormErrors()
    values = {name: text(request.form, name) for name in ("org_name", "username", "email")}
    if request.method == "POST":
        try:
            throttle_signup_address()
        except APIError as err:
            errors.add("", f"Too many sign-ups from here. Try again in {err.details['retry_after']} s.")
            return _throttled(err, "console/signup.html", errors=errors, values=values)
        data = load(RegisterSchema(), {**values, "password": request.form.get("password") or ""}, errors)
        if data is not None:
            try:
                user = register_organization(**data)
            except APIError as err:
                for field, messages in (err.details.get("fields") or {"": [err.message]}).items():
                    for message in messages:
                        errors.add(field, message)
            else:
                _start_session(user)
                return redirect(url_for("console.projects"))
    status = 422 if errors else 200
    return render_template("console/signup.html", errors=errors, values=values), status


@bp.post("/logout")
def logout():
    user = console_user()
    if user is not None:
        # Server-side revocation: every cookie issued to this user so far stops working, even a copied one.
        revoke_console_sessions(user)
    session.clear()
    return redirect(url_for("console.login"))
