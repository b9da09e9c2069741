"""Minting, listing and revoking data-API keys over HTTP."""

from sqlalchemy import select

from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.warehouse_tables import create_dataset


def _service(app, client, admin, project):
    create_dataset(app, project["project_id"])
    return _create(client, admin, project["project_id"], endpoints=[LOOKUP, TOP]).get_json()["id"]


def test_mint_list_revoke(app, client, admin, project, caplog):
    asset_id = _service(app, client, admin, project)
    url = f"/api/publish/assets/{asset_id}/api-keys"
    minted = client.post(
        url, headers=admin.headers, json={"name": "app", "allowed_endpoints": ["customer"], "rate_limit": 5}
    )
    assert minted.status_code == 201, minted.get_json()
    body = minted.get_json()
    secret = body["key"]
    assert secret.startswith("dk_") and len(secret) >= 46 and body["prefix"] == secret[:10]
    assert body["allowed_endpoints"] == ["customer"] and body["rate_limit"] == 5
    assert body["masking_level"] == "masked" and body["sensitivity_max"] == "medium" and body["expires_at"]

    listed = client.get(url, headers=admin.headers)
    assert secret not in listed.get_data(as_text=True)
    assert [k["prefix"] for k in listed.get_json()["items"]] == [body["prefix"]]

    from app.db import ApiKey
    from app.extensions import db

    with app.app_context():
        stored = db.session.scalars(select(ApiKey)).one()
        assert stored.key_hash != secret and secret not in str(vars(stored))

    assert client.delete(f"{url}/{body['id']}", headers=admin.headers).status_code == 204
    assert client.get(url, headers=admin.headers).get_json()["items"][0]["is_active"] is False
    assert client.delete(f"{url}/9999", headers=admin.headers).status_code == 404
    assert secret not in caplog.text


def test_key_fields_are_validated(app, client, admin, project):
    asset_id = _service(app, client, admin, project)
    url = f"/api/publish/assets/{asset_id}/api-keys"
    cases = [
        ({"name": "x", "allowed_endpoints": ["ghost"]}, "allowed_endpoints[0]"),
        ({"name": "x", "masking_level": "partly"}, "masking_level"),
        ({"name": "x", "sensitivity_max": "extreme"}, "sensitivity_max"),
        ({"name": "x", "rate_limit": 0}, "rate_limit"),
        ({"name": "x", "expires_days": -3}, "expires_days"),
        ({"rate_limit": 5}, "name"),
    ]
    for payload, field in cases:
        resp = client.post(url, headers=admin.headers, json=payload)
        assert resp.status_code == 422, (payload, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (field, resp.get_json())
    assert client.get(url, headers=admin.headers).get_json()["items"] == []


def test_never_expiring_key(app, client, admin, project):
    asset_id = _service(app, client, admin, project)
    body = client.post(
        f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "forever", "expires_days": 0}
    ).get_json()
    assert body["expires_at"] is None
