"""Personal access tokens: shown once, stored hashed, usable as bearer tokens, revocable."""

from sqlalchemy import select


def test_token_lifecycle(app, client, admin):
    created = client.post("/api/auth/tokens", headers=admin.headers, json={"name": "ci", "expires_days": 30})
    assert created.status_code == 201
    body = created.get_json()
    secret = body["token"]
    assert secret.startswith("ap_") and body["prefix"] == secret[: len(body["prefix"])]

    pat_headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/auth/me", headers=pat_headers).get_json()["user_id"] == admin.user_id
    assert client.get("/api/projects", headers=pat_headers).status_code == 200

    listed = client.get("/api/auth/tokens", headers=admin.headers).get_json()["items"]
    assert [t["name"] for t in listed] == ["ci"]
    assert secret not in str(listed)

    from app.db import PersonalAccessToken
    from app.extensions import db

    with app.app_context():
        stored = db.session.scalars(select(PersonalAccessToken)).all()
        assert secret not in {t.token_hash for t in stored} and stored[0].last_used_at is not None

    assert client.delete(f"/api/auth/tokens/{body['id']}", headers=admin.headers).status_code == 204
    assert client.get("/api/auth/me", headers=pat_headers).status_code == 401


def test_expired_token_refused(app, client, admin):
    secret = client.post("/api/auth/tokens", headers=admin.headers, json={"name": "old"}).get_json()["token"]
    from datetime import timedelta

    from app.db import PersonalAccessToken
    from app.db.columns import utcnow
    from app.extensions import db

    with app.app_context():
        token = db.session.scalars(select(PersonalAccessToken)).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_cannot_delete_another_users_token(client, admin):
    from tests.conftest import sign_up

    token_id = client.post("/api/auth/tokens", headers=admin.headers, json={"name": "mine"}).get_json()["id"]
    stranger = sign_up(client)
    assert client.delete(f"/api/auth/tokens/{token_id}", headers=stranger.headers).status_code == 404


def test_token_body_is_validated(client, admin):
    resp = client.post("/api/auth/tokens", headers=admin.headers, json={"expires_days": -1})
    assert resp.status_code == 422
    assert set(resp.get_json()["error"]["details"]["fields"]) == {"name", "expires_days"}
