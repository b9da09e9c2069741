"""Issue 11: PATCH a key (validated as at minting, effective on the next call on every server, no stale cached
answer) and rotate its secret with a grace period."""

import time

import httpx

from tests.conftest import sign_up
from tests.serving.test_rate_limit_processes import two_web_processes  # noqa: F401 - fixture
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


def _key_url(asset_id, key_id):
    return f"/api/publish/assets/{asset_id}/api-keys/{key_id}"


def test_patch_changes_every_mint_field(client, admin, service):  # noqa: F811
    minted = mint(client, admin, service)
    change = {
        "name": "renamed",
        "rate_limit": 7,
        "expires_days": 0,
        "masking_level": "unmasked",
        "sensitivity_max": "high",
        "allowed_columns": ["customer_key", "region"],
        "allowed_endpoints": ["top", "by_region"],
        "row_scope": {"region": ["EU"]},
    }
    resp = client.patch(_key_url(service, minted["id"]), headers=admin.headers, json=change)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "key" not in body and minted["key"] not in resp.get_data(as_text=True)
    assert body["expires_at"] is None and body["prefix"] == minted["prefix"]
    for field in (
        "name",
        "rate_limit",
        "masking_level",
        "sensitivity_max",
        "allowed_columns",
        "allowed_endpoints",
        "row_scope",
    ):
        assert body[field] == change[field], field
    listed = client.get(f"/api/publish/assets/{service}/api-keys", headers=admin.headers).get_json()["items"][0]
    assert listed["name"] == "renamed" and listed["row_scope"] == {"region": ["EU"]}

    # Only the fields sent change; expires_days counts from now.
    again = client.patch(_key_url(service, minted["id"]), headers=admin.headers, json={"expires_days": 1}).get_json()
    assert again["expires_at"] and again["rate_limit"] == 7 and again["allowed_columns"] == ["customer_key", "region"]

    scoped = call(client, minted["key"], "by_region").get_json()
    assert set(scoped["rows"][0]) == {"customer_key", "region"}, scoped
    assert {r["region"] for r in scoped["rows"]} == {"EU"} and scoped["count"] == 3
    assert call(client, minted["key"], "customer", query_string={"id": "1"}).status_code == 403


def test_patch_is_validated_as_minting_is(client, admin, service):  # noqa: F811
    minted = mint(client, admin, service, name="keep")
    url = _key_url(service, minted["id"])
    cases = [
        ({"allowed_endpoints": ["ghost"]}, "allowed_endpoints[0]"),
        ({"masking_level": "partly"}, "masking_level"),
        ({"sensitivity_max": "extreme"}, "sensitivity_max"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"expires_days": -3}, "expires_days"),
        ({"name": ""}, "name"),
        ({"row_scope": {"region": []}}, "row_scope.region"),
        ({"allowed_columns": [""]}, "allowed_columns"),
        ({"secret": "dk_x"}, "secret"),
    ]
    for payload, field in cases:
        resp = client.patch(url, headers=admin.headers, json=payload)
        assert resp.status_code == 422, (payload, resp.get_json())
        assert any(f.startswith(field) for f in resp.get_json()["error"]["details"]["fields"]), (field, resp.get_json())
    after = client.get(f"/api/publish/assets/{service}/api-keys", headers=admin.headers).get_json()["items"][0]
    assert after["name"] == "keep" and after["allowed_endpoints"] is None and after["masking_level"] == "masked"

    # A key scoped to an endpoint the service has since dropped can still be renamed; its scope is kept.
    scoped = mint(client, admin, service, allowed_endpoints=["top"])
    from tests.publishing.test_assets import LOOKUP

    assert (
        client.put(
            f"/api/publish/assets/{service}", headers=admin.headers, json={"config": {"endpoints": [LOOKUP]}}
        ).status_code
        == 200
    )
    renamed = client.patch(_key_url(service, scoped["id"]), headers=admin.headers, json={"name": "still top"})
    assert renamed.status_code == 200 and renamed.get_json()["allowed_endpoints"] == ["top"], renamed.get_json()
    stale = client.patch(_key_url(service, scoped["id"]), headers=admin.headers, json={"allowed_endpoints": ["top"]})
    assert stale.status_code == 422 and "allowed_endpoints[0]" in stale.get_json()["error"]["details"]["fields"]

    assert client.patch(_key_url(service, 9999), headers=admin.headers, json={"name": "x"}).status_code == 404
    other = sign_up(client)
    assert client.patch(url, headers=other.headers, json={"name": "x"}).status_code == 404
    assert client.delete(url, headers=admin.headers).status_code == 204
    assert client.patch(url, headers=admin.headers, json={"name": "x"}).status_code == 409


def test_narrowed_key_is_refused_on_its_next_call_on_another_server(client, admin, service, two_web_processes):  # noqa: F811
    minted = mint(client, admin, service)
    first, second = (f"http://127.0.0.1:{port}/api/service/sales-serving" for port in two_web_processes)
    headers = {"X-API-Key": minted["key"]}
    for base in (first, second):  # both servers have served this key (and cached its answer) before the change
        assert httpx.get(f"{base}/top", headers=headers, timeout=10).status_code == 200
        assert httpx.get(f"{base}/top", headers=headers, timeout=10).headers["X-Cache"] == "HIT"

    resp = client.patch(
        _key_url(service, minted["id"]), headers=admin.headers, json={"allowed_endpoints": ["customer"]}
    )
    assert resp.status_code == 200, resp.get_json()
    for base in (second, first):
        refused = httpx.get(f"{base}/top", headers=headers, timeout=10)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "endpoint_not_allowed"
        assert httpx.get(f"{base}/customer", params={"id": "2"}, headers=headers, timeout=10).status_code == 200

    narrowed = client.patch(
        _key_url(service, minted["id"]),
        headers=admin.headers,
        json={"allowed_endpoints": None, "row_scope": {"region": ["US"]}},
    )
    assert narrowed.status_code == 200, narrowed.get_json()
    for base in (second, first):
        scoped = httpx.get(f"{base}/by_region", headers=headers, timeout=10)
        assert scoped.status_code == 200 and {r["region"] for r in scoped.json()["rows"]} == {"US"}
    # The rate limit too: the calls above already used more than one request of this minute.
    assert (
        client.patch(_key_url(service, minted["id"]), headers=admin.headers, json={"rate_limit": 1}).status_code == 200
    )
    assert httpx.get(f"{first}/top", headers=headers, timeout=10).status_code == 429


def test_no_cached_answer_survives_a_narrowing_patch(client, admin, service):  # noqa: F811
    minted = mint(client, admin, service, sensitivity_max="critical", masking_level="unmasked")
    assert call(client, minted["key"], "customer", query_string={"id": "3"}).headers["X-Cache"] == "MISS"
    hit = call(client, minted["key"], "customer", query_string={"id": "3"})
    assert hit.headers["X-Cache"] == "HIT" and hit.get_json()["rows"][0]["ssn"] == "333-44-5555"

    url = _key_url(service, minted["id"])
    for change in (
        {"sensitivity_max": "high"},
        {"masking_level": "masked"},
        {"allowed_columns": ["customer_key"]},
        {"row_scope": {"region": ["EU"]}},
    ):
        assert client.patch(url, headers=admin.headers, json=change).status_code == 200
        after = call(client, minted["key"], "customer", query_string={"id": "3"})
        assert after.headers["X-Cache"] == "MISS", change
        assert "333-44-5555" not in after.get_data(as_text=True), change
    # Grace Hopper is in the US: the EU scope leaves nothing.
    assert call(client, minted["key"], "customer", query_string={"id": "3"}).get_json()["count"] == 0


def test_rotate_keeps_the_old_secret_for_the_grace_period(app, client, admin, service):  # noqa: F811
    minted = mint(client, admin, service, name="rotating", rate_limit=1000)
    url = f"{_key_url(service, minted['id'])}/rotate"
    resp = client.post(url, headers=admin.headers, json={"grace_seconds": 3600})
    assert resp.status_code == 200, resp.get_json()
    rotated = resp.get_json()
    new_secret, old_secret = rotated["key"], minted["key"]
    assert new_secret.startswith("dk_") and new_secret != old_secret and rotated["prefix"] == new_secret[:10]
    assert rotated["id"] == minted["id"] and rotated["name"] == "rotating" and rotated["grace_expires_at"]
    listed = client.get(f"/api/publish/assets/{service}/api-keys", headers=admin.headers)
    assert new_secret not in listed.get_data(as_text=True)
    assert call(client, old_secret, "top").status_code == 200 and call(client, new_secret, "top").status_code == 200

    # The grace period ends (set through the service rather than waiting an hour): only the new secret works.
    from app.db import ApiKey
    from app.extensions import db
    from app.keys.service import end_rotation_grace

    with app.app_context():
        end_rotation_grace(db.session.get(ApiKey, minted["id"]))
    assert call(client, old_secret, "top").status_code == 401
    assert call(client, new_secret, "top").status_code == 200


def test_grace_expires_by_the_clock_and_zero_grace_is_immediate(client, admin, service):  # noqa: F811
    minted = mint(client, admin, service)
    url = f"{_key_url(service, minted['id'])}/rotate"
    short = client.post(url, headers=admin.headers, json={"grace_seconds": 2}).get_json()
    assert call(client, minted["key"], "top").status_code == 200
    time.sleep(2.2)
    assert call(client, minted["key"], "top").status_code == 401
    assert call(client, short["key"], "top").status_code == 200

    immediate = client.post(url, headers=admin.headers)  # no body: grace_seconds defaults to 0
    assert immediate.status_code == 200, immediate.get_json()
    assert call(client, short["key"], "top").status_code == 401
    assert call(client, immediate.get_json()["key"], "top").status_code == 200


def test_rotate_input_is_checked(client, admin, service):  # noqa: F811
    minted = mint(client, admin, service)
    url = f"{_key_url(service, minted['id'])}/rotate"
    for body in ({"grace_seconds": -1}, {"grace_seconds": 86_401}, {"grace_seconds": "soon"}, {"grace": 5}):
        resp = client.post(url, headers=admin.headers, json=body)
        assert resp.status_code == 422, (body, resp.get_json())
        assert list(resp.get_json()["error"]["details"]["fields"]) == [next(iter(body))]
    assert call(client, minted["key"], "top").status_code == 200  # nothing rotated
    assert client.post(f"{_key_url(service, 9999)}/rotate", headers=admin.headers).status_code == 404
    assert client.post(url, headers=sign_up(client).headers).status_code == 404
    assert client.post(url, headers=admin.headers, json={"grace_seconds": 86_400}).status_code == 200
