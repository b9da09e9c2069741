"""Login, me, sign-up and the error envelope for bad credentials."""

from tests.conftest import add_user, sign_up


def test_login_with_username_or_email_and_me(client, admin):
    me = client.get("/api/auth/me", headers=admin.headers)
    assert me.status_code == 200
    assert me.get_json() == {
        "user_id": admin.user_id,
        "username": admin.username,
        "email": f"{admin.username}@example.com",
        "org_id": admin.org_id,
        "role": "admin",
    }
    by_email = client.post(
        "/api/auth/login", json={"username": f"{admin.username}@EXAMPLE.com", "password": admin.password}
    )
    assert by_email.status_code == 200
    body = by_email.get_json()
    assert body["token_type"] == "bearer" and body["must_reset_password"] is False
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 200


def test_wrong_password_and_unknown_user_are_401(client, admin):
    for creds in (
        {"username": admin.username, "password": "wrong password"},
        {"username": "nobody", "password": "x" * 9},
    ):
        resp = client.post("/api/auth/login", json=creds)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "invalid_credentials"


def test_missing_and_garbage_bearer_tokens_are_401(client):
    assert client.get("/api/auth/me").get_json()["error"]["code"] == "unauthorized"
    for header in ("Bearer nonsense", "Bearer ap_notarealtoken", "Basic abc", "Bearer "):
        resp = client.get("/api/auth/me", headers={"Authorization": header})
        assert resp.status_code == 401, header
        assert set(resp.get_json()["error"]) == {"code", "message", "details"}


def test_signup_conflicts_name_the_field(client, admin):
    resp = client.post(
        "/api/auth/register",
        json={
            "org_name": "Other",
            "username": admin.username,
            "email": "new@example.com",
            "password": "long enough pw",
        },
    )
    assert resp.status_code == 409
    assert "username" in resp.get_json()["error"]["details"]["fields"]


def test_signup_can_be_turned_off(app, client):
    app.config["ALLOW_SIGNUP"] = False
    try:
        resp = client.post(
            "/api/auth/register",
            json={"org_name": "Closed", "username": "closed1", "email": "c@example.com", "password": "long enough pw"},
        )
        assert resp.status_code == 403
    finally:
        app.config["ALLOW_SIGNUP"] = True


def test_admin_adds_and_lists_users_of_own_org_only(client, admin):
    designer = add_user(client, admin, "designer")
    other = sign_up(client)
    listed = client.get("/api/users", headers=admin.headers).get_json()["items"]
    assert {u["username"] for u in listed} == {admin.username, designer.username}
    assert other.username not in {u["username"] for u in listed}
    denied = client.get("/api/users", headers=designer.headers)
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "permission_denied"


def test_x_org_id_is_checked(client, admin):
    assert client.get("/api/auth/me", headers={**admin.headers, "X-Org-Id": str(admin.org_id)}).status_code == 200
    assert client.get("/api/auth/me", headers={**admin.headers, "X-Org-Id": str(admin.org_id + 999)}).status_code == 403
