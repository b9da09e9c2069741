"""Personal access tokens minted by other personal access tokens: a chain never outlives its root.

Probe finding 7: revoking a token left the tokens it had minted working (they answered /api/auth/me and minted more).
"""

from datetime import timedelta

from sqlalchemy import select


def _mint(client, headers, name, expires_days=30):
    resp = client.post("/api/auth/tokens", headers=headers, json={"name": name, "expires_days": expires_days})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _bearer(minted):
    return {"Authorization": f"Bearer {minted['token']}"}


def test_revoking_a_token_revokes_every_token_it_minted(client, admin):
    root = _mint(client, admin.headers, "root")
    child = _mint(client, _bearer(root), "child")
    grandchild = _mint(client, _bearer(child), "grandchild")
    sibling = _mint(client, admin.headers, "sibling")  # minted by the login session: no parent
    for minted in (root, child, grandchild, sibling):
        assert client.get("/api/auth/me", headers=_bearer(minted)).status_code == 200

    listed = {t["name"]: t for t in client.get("/api/auth/tokens", headers=admin.headers).get_json()["items"]}
    assert listed["root"]["parent_id"] is None and listed["sibling"]["parent_id"] is None
    assert listed["child"]["parent_id"] == root["id"] and listed["grandchild"]["parent_id"] == child["id"]

    # Revoke the root with the grandchild itself (a thief's token cannot save itself either).
    assert client.delete(f"/api/auth/tokens/{root['id']}", headers=_bearer(grandchild)).status_code == 204
    for minted in (root, child, grandchild):
        me = client.get("/api/auth/me", headers=_bearer(minted))
        assert me.status_code == 401, (minted["name"], me.get_json())
        assert client.post("/api/auth/tokens", headers=_bearer(minted), json={"name": "more"}).status_code == 401
    assert client.get("/api/auth/me", headers=_bearer(sibling)).status_code == 200
    names = [t["name"] for t in client.get("/api/auth/tokens", headers=admin.headers).get_json()["items"]]
    assert names == ["sibling"]


def test_revoking_a_child_leaves_its_parent(client, admin):
    root = _mint(client, admin.headers, "root")
    child = _mint(client, _bearer(root), "child")
    assert client.delete(f"/api/auth/tokens/{child['id']}", headers=_bearer(root)).status_code == 204
    assert client.get("/api/auth/me", headers=_bearer(child)).status_code == 401
    assert client.get("/api/auth/me", headers=_bearer(root)).status_code == 200


def test_a_child_is_refused_once_an_ancestor_has_expired(app, client, admin):
    root = _mint(client, admin.headers, "root", expires_days=1)
    child = _mint(client, _bearer(root), "child")
    grandchild = _mint(client, _bearer(child), "grandchild")
    from app.db import PersonalAccessToken
    from app.db.columns import utcnow
    from app.extensions import db

    # The root's expiry moves earlier (as if time passed for it alone): its descendants' own expiry is still ahead.
    with app.app_context():
        token = db.session.scalars(select(PersonalAccessToken).where(PersonalAccessToken.id == root["id"])).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    for minted in (child, grandchild):
        assert client.get("/api/auth/me", headers=_bearer(minted)).status_code == 401, minted["name"]
