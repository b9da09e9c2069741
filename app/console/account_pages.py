"""Sign in, sign up and sign out of the console."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, session, url_for
from sqlalchemy import func, select

from app.auth.passwords import verify_password
from app.console.blueprint import USER_KEY, bp, console_user
from app.console.csrf import csrf_token
from app.console.forms import FormErrors, load, text
from app.db import User
from app.errors import APIError
from app.extensions import db


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never `//elsewhere` or `https://elsewhere` (an open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.projects")


def _start_session(user: User) -> None:
    # A fresh session (and CSRF token) at sign-in, so nothing planted before it survives.
    session.clear()
    session[USER_KEY] = user.id
    csrf_token()


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
    if request.method == "POST":
        username = text(request.form, "username")
        password = request.form.get("password") or ""
        user = db.session.scalar(
            select(User).where(
                (func.lower(User.username) == username.lower()) | (func.lower(User.email) == username.lower())
            )
        )
        if verify_password(user.password_hash if user else None, password) and user.is_active:
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
        errors.add("", "Wrong username or password.")
    elif console_user() is not None:
        return redirect(_safe_next(request.args.get("next")))
    status = 401 if errors else 200
    signup = current_app.config.get("ALLOW_SIGNUP", True)
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
    session.clear()
    return redirect(url_for("console.login"))
