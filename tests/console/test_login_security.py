"""Issue 12 console sign-in hardening: the `next` redirect, throttled sign-in and sign-up, and cookies that stop
working at sign-out."""

import re

from tests.console.conftest import Console, signed_in


def _login_with_next(app, admin, next_value: str):
    console = Console(app.test_client())
    page = console.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return console, console.client.post(
        f"/login?next={next_value}", data={"username": admin.username, "password": admin.password, "csrf_token": token}
    )


def test_next_with_a_tab_or_newline_cannot_leave_the_site(app, admin):
    """Before: `/%09/evil.example` redirected to `//evil.example` (browsers drop the tab) and `/%0d%0a/x` was a 500."""
    for next_value in (
        "/%09/evil.example",
        "/%0d%0a/x",
        "/%0a/evil.example",
        "/%5c/evil.example",
        "%20//evil.example",
        "https://evil.example/",
        "/\u3000/evil.example",
    ):
        console, resp = _login_with_next(app, admin, next_value)
        assert resp.status_code == 302, (next_value, resp.status_code)
        assert resp.headers["Location"] == "/projects", (next_value, resp.headers["Location"])
        # Already signed in, the GET form of the page redirects the same way.
        again = console.get(f"/login?next={next_value}")
        assert again.status_code == 302 and again.headers["Location"] == "/projects", next_value
    _, resp = _login_with_next(app, admin, "/projects%3Ftab%3D1")
    assert resp.headers["Location"] == "/projects?tab=1"


def test_console_sign_in_is_throttled(app, admin, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_ACCOUNT", 3)
    console = Console(app.test_client())
    statuses = [console.login(admin.username, "not the password").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]  # the admin fixture's own login spent one try
    resp = console.login(admin.username, admin.password)
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert "Too many sign-in attempts" in resp.get_data(as_text=True)
    assert console.get("/projects").status_code == 302


def test_console_sign_up_is_throttled(app, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT_PER_IP", 1)
    console = Console(app.test_client())
    console.get("/signup")

    def sign_up(name):
        return console.post(
            "/signup",
            {
                "org_name": f"Org {name}",
                "username": name,
                "email": f"{name}@example.com",
                "password": "a fine long password",
            },
        )

    assert sign_up("console_one").status_code == 302
    console.post("/logout")
    console.get("/signup")
    resp = sign_up("console_two")
    assert resp.status_code == 429 and "Too many sign-ups" in resp.get_data(as_text=True)


def test_a_cookie_replayed_after_sign_out_is_refused(app, admin):
    """Before: the signed session cookie, copied before sign-out, kept working afterwards."""
    console = signed_in(app, admin)
    stolen = console.client.get_cookie("session").value
    other = signed_in(app, admin)  # another browser of the same user
    assert console.get("/projects").status_code == 200
    assert console.post("/logout").status_code == 302

    replay = app.test_client()
    replay.set_cookie("session", stolen)
    resp = replay.get("/projects")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    # Signing out ends every console session of the user, the other browser's too; signing in again works.
    assert other.get("/projects").status_code == 302
    assert signed_in(app, admin).get("/projects").status_code == 200


def test_deeply_nested_json_in_a_form_field_is_a_field_error(console, service):
    """JSON typed into a form (an endpoint's query), nested 5,000 deep, was a RecursionError: a 500."""
    deep = "[" * 5000 + "]" * 5000
    resp = console.post(service["url"] + "/endpoints", {"id": "top", "kind": "sql", "query": deep})
    assert resp.status_code == 422
    assert "not valid JSON" in resp.get_data(as_text=True)
