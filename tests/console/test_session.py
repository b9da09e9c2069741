"""Signing in and out: the session cookie's flags, CSRF on every post, and where a visitor is sent."""

import re

from tests.console.conftest import Console, signed_in


def test_pages_need_a_session_and_come_back_after_login(app, admin):
    console = Console(app.test_client())
    resp = console.get("/projects")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")
    page = console.get(resp.headers["Location"]).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = console.client.post(
        "/login?next=/projects", data={"username": admin.username, "password": admin.password, "csrf_token": token}
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/projects"
    assert "Projects" in console.get("/projects").get_data(as_text=True)


def test_session_cookie_is_http_only_and_same_site_lax(app, admin):
    console = Console(app.test_client())
    page = console.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = console.client.post(
        "/login", data={"username": admin.username, "password": admin.password, "csrf_token": token}
    )
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_wrong_password_is_refused_in_place(app, admin):
    console = Console(app.test_client())
    resp = console.login(admin.username, "not the password")
    assert resp.status_code == 401
    assert "Wrong username or password." in resp.get_data(as_text=True)
    assert console.get("/projects").status_code == 302


def test_an_open_redirect_after_login_goes_home_instead(app, admin):
    console = Console(app.test_client())
    page = console.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = console.client.post(
        "/login?next=//evil.example/x",
        data={"username": admin.username, "password": admin.password, "csrf_token": token},
    )
    assert resp.headers["Location"] == "/projects"


def test_a_post_without_the_csrf_token_is_refused(console, project):
    resp = console.post("/projects", {"name": "Other", "slug": "other"}, csrf=False)
    assert resp.status_code == 400
    assert "expired" in resp.get_data(as_text=True)
    resp = console.post("/projects", {"name": "Other", "slug": "other", "csrf_token": "forged"})
    assert resp.status_code == 400
    assert "Other" not in console.get("/projects").get_data(as_text=True)


def test_the_login_form_itself_needs_the_token(app, admin):
    client = app.test_client()
    resp = client.post("/login", data={"username": admin.username, "password": admin.password})
    assert resp.status_code == 400
    assert client.get("/projects").status_code == 302


def test_csrf_token_changes_at_login(app, admin):
    console = Console(app.test_client())
    console.get("/login")
    before = console.token
    console.login(admin.username, admin.password)
    assert console.token and console.token != before


def test_logout_ends_the_session(console):
    assert console.post("/logout").status_code == 302
    assert console.get("/projects").status_code == 302


def test_signup_creates_an_organization_and_signs_in(app):
    console = Console(app.test_client())
    console.get("/signup")
    resp = console.post(
        "/signup",
        {"org_name": "Hive", "username": "queen", "email": "queen@example.com", "password": "long enough password"},
    )
    assert resp.status_code == 302
    assert "No projects yet" in console.get("/projects").get_data(as_text=True)


def test_signup_errors_are_shown_next_to_the_field(app):
    console = Console(app.test_client())
    console.get("/signup")
    resp = console.post(
        "/signup", {"org_name": "Hive", "username": "queen", "email": "not-an-email", "password": "short"}
    )
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'id="f-email".*?class="field-error"', html, re.S)
    assert "must be 8 to 256 characters" in html


def test_pages_carry_a_strict_content_security_policy(console):
    resp = console.get("/projects")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_deactivated_user_is_signed_out(app, admin):
    from app.db import User
    from app.extensions import db

    console = signed_in(app, admin)
    with app.app_context():
        db.session.get(User, admin.user_id).is_active = False
        db.session.commit()
    assert console.get("/projects").status_code == 302
