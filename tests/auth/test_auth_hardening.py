"""Issue 12 auth hardening over HTTP: login/sign-up throttling, common passwords, `@` in usernames, the sign-up
409, and personal access tokens that cannot outlive their parent."""

from datetime import UTC, datetime, timedelta

from tests.conftest import sign_up


def _login(client, username, password, ip="10.1.0.1"):
    return client.post(
        "/api/auth/login", json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": ip}
    )


def _register(client, username, email, password="a fine long password", ip="10.2.0.1", org=None):
    body = {"org_name": org or f"Org {username}", "username": username, "email": email, "password": password}
    return client.post("/api/auth/register", json=body, environ_base={"REMOTE_ADDR": ip})


def test_login_is_throttled_per_account_even_across_addresses(client, app, admin, monkeypatch):
    """Before: 30 wrong passwords then the right one gave 200. Now the account's budget runs out, from any address,
    and the right password is a 429 with Retry-After until it refills. (3 a minute here, so the refill of one try
    every 20 s cannot catch up with this slow machine's Argon2 checks; the default is 10.)"""
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_ACCOUNT", 3)
    # The fixture's own login spent one try.
    statuses = [_login(client, admin.username, "wrong password", ip=f"10.1.1.{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 429]
    resp = _login(client, f"{admin.username}@example.com", admin.password, ip="10.1.2.1")
    assert resp.status_code == 429, resp.get_json()
    body = resp.get_json()["error"]
    assert body["code"] == "rate_limited" and body["details"]["retry_after"] >= 1
    assert int(resp.headers["Retry-After"]) >= 1
    # Another account from the same addresses is not affected.
    other = sign_up(client)
    assert _login(client, other.username, other.password, ip="10.1.1.0").status_code == 200


def test_login_is_throttled_per_address(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT_PER_IP", 3)
    for i in range(3):
        assert _login(client, f"nobody{i}", "x" * 9, ip="10.1.3.1").status_code == 401
    resp = _login(client, "nobody9", "x" * 9, ip="10.1.3.1")
    assert resp.status_code == 429 and "Retry-After" in resp.headers
    assert _login(client, "nobody9", "x" * 9, ip="10.1.3.2").status_code == 401


def test_sign_up_is_throttled_per_address(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "SIGNUP_RATE_LIMIT_PER_IP", 2)
    assert _register(client, "first_one", "first@example.com").status_code == 201
    assert _register(client, "second_one", "second@example.com").status_code == 201
    resp = _register(client, "third_one", "third@example.com")
    assert resp.status_code == 429 and resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert _register(client, "third_one", "third@example.com", ip="10.2.0.2").status_code == 201


def test_common_passwords_are_refused_at_sign_up_and_user_creation(client, admin):
    for password in ("password1", "Password123", "qwertyuiop", "iloveyou"):
        resp = _register(client, "weak_user", "weak@example.com", password=password)
        assert resp.status_code == 422, (password, resp.get_json())
        assert "password" in resp.get_json()["error"]["details"]["fields"]
    resp = client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": "weak2", "email": "weak2@example.com", "password": "12345678", "role": "viewer"},
    )
    assert resp.status_code == 422 and "password" in resp.get_json()["error"]["details"]["fields"]
    assert _register(client, "strong_user", "strong@example.com", password="plum tree 42 orbit").status_code == 201


def test_a_username_cannot_be_an_e_mail_address(client, admin):
    """Before: `victim@example.com` as a username made login by that e-mail land on the attacker's account."""
    victim_email = f"{admin.username}@example.com"
    resp = _register(client, victim_email, "attacker@example.org")
    assert resp.status_code == 422
    assert "username" in resp.get_json()["error"]["details"]["fields"]
    resp = client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": "x@y.z", "email": "xyz@example.com", "password": "long enough pw", "role": "viewer"},
    )
    assert resp.status_code == 422 and "username" in resp.get_json()["error"]["details"]["fields"]


def test_login_by_e_mail_prefers_the_account_owning_the_address(app, client, admin):
    """A username with `@` made before the rule (written straight to the database here), squatting an address its
    owner signs up with later, cannot shadow the owner's account at login."""
    from app.auth.passwords import hash_password
    from app.db import User
    from app.extensions import db

    with app.app_context():
        db.session.add(
            User(
                org_id=admin.org_id,
                username="later@example.com",
                email="squatter@example.org",
                password_hash=hash_password("squatter password 9"),
                role="viewer",
            )
        )
        db.session.commit()
    owner = _register(client, "later_owner", "later@example.com", password="owner password 42")
    assert owner.status_code == 201, owner.get_json()
    assert _login(client, "later@example.com", "squatter password 9").status_code == 401
    resp = _login(client, "later@example.com", "owner password 42")
    assert resp.status_code == 200, resp.get_json()
    token = resp.get_json()["access_token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["user_id"] == owner.get_json()["user_id"]


def test_sign_up_conflict_does_not_say_which_field_is_taken(client, admin):
    by_username = _register(client, admin.username, "someone.else@example.com")
    by_email = _register(client, "someone_else", f"{admin.username}@example.com")
    assert by_username.status_code == by_email.status_code == 409
    assert by_username.get_json()["error"] == by_email.get_json()["error"]
    assert by_username.get_json()["error"]["message"] == "organization name, username or e-mail is already registered"


def test_a_personal_token_cannot_mint_one_that_outlives_it(client, admin):
    parent = client.post("/api/auth/tokens", headers=admin.headers, json={"name": "day", "expires_days": 1})
    parent_body = parent.get_json()
    pat = {"Authorization": f"Bearer {parent_body['token']}"}
    for expires_days in (None, 0, 3650):
        child = client.post("/api/auth/tokens", headers=pat, json={"name": "child", "expires_days": expires_days})
        assert child.status_code == 201
        assert child.get_json()["expires_at"] == parent_body["expires_at"], expires_days
    # A login session (JWT) still mints a never-expiring token.
    forever = client.post("/api/auth/tokens", headers=admin.headers, json={"name": "forever", "expires_days": 0})
    assert forever.get_json()["expires_at"] is None
    parent_expiry = datetime.fromisoformat(parent_body["expires_at"].replace("Z", "+00:00"))
    if parent_expiry.tzinfo is None:
        parent_expiry = parent_expiry.replace(tzinfo=UTC)
    assert parent_expiry - datetime.now(UTC) < timedelta(days=1, minutes=1)


def test_sign_up_conflict_does_not_say_whether_the_organization_exists(client, admin):
    """Probe finding 9: a taken organization name was its own 409 naming org_name, so names could be listed."""
    from app.db import Organization
    from app.extensions import db

    with client.application.app_context():
        org_name = db.session.get(Organization, admin.org_id).name
    by_org = _register(client, "fresh_user", "fresh.user@example.com", org=org_name.upper())
    by_username = _register(client, admin.username, "someone.else@example.com")
    by_email = _register(client, "someone_else", f"{admin.username}@example.com")
    assert by_org.status_code == by_username.status_code == by_email.status_code == 409
    assert by_org.get_json()["error"] == by_username.get_json()["error"] == by_email.get_json()["error"]
    error = by_org.get_json()["error"]
    assert error["message"] == "organization name, username or e-mail is already registered"
    assert set(error["details"]["fields"]) == {"org_name", "username", "email"}
    # Nothing was written: the fresh username is still free.
    assert _register(client, "fresh_user", "fresh.user@example.com").status_code == 201
