"""Issue 11 in the console (server side): diff side by side, rollback, key edit with columns and row scope, key
rotation with a grace period, delete with force, and the new service fields on the create form."""

from __future__ import annotations

import re

from tests.conftest import add_user
from tests.console.conftest import lookup_form, signed_in


def _html(resp) -> str:
    return resp.get_data(as_text=True)


def _two_versions(console, service):
    assert console.post(service["url"] + "/endpoints", lookup_form()).status_code == 302
    assert console.post(service["url"] + "/publish").status_code == 302
    assert (
        console.post(service["url"] + "/endpoints", lookup_form("second", columns="customer_key,region")).status_code
        == 302
    )
    assert console.post(service["url"] + "/publish").status_code == 302


def test_diff_side_by_side_and_rollback(app, client, admin, console, customers, service):
    _two_versions(console, service)
    page = _html(console.get(service["url"]))
    assert "Diff with v1" in page and "Roll back to v1" in page and "Roll back to v2" not in page  # v2 is serving
    diff = console.get(service["url"] + "/versions/diff?a=1&b=2")
    assert diff.status_code == 200
    html = _html(diff)
    assert 'data-side="left"' in html and 'data-side="right"' in html and "config.endpoints.second" in html
    assert "1 change from v1 to v2" in html
    assert console.get(service["url"] + "/versions/diff?a=1&b=9").status_code == 404

    designer = signed_in(app, add_user(client, admin, "designer"))
    refused = designer.post(service["url"] + "/rollback/1", follow_redirects=True)
    assert "Could not roll back" in _html(refused)
    rolled = console.post(service["url"] + "/rollback/1", follow_redirects=True)
    assert "Version 1 is published again as version 3" in _html(rolled)
    detail = client.get(f"/api/publish/assets/{service['id']}", headers=admin.headers).get_json()
    assert detail["published_version"] == 3 and [e["id"] for e in detail["config"]["endpoints"]] == ["customer"]


def _minted(console, service, **fields) -> tuple[int, str]:
    minted = console.post(service["url"] + "/keys", {"name": "app", **fields})
    assert minted.status_code == 303, _html(minted)  # post/redirect/get: the secret is shown on the page it leads to
    resp = console.get(minted.headers["Location"])
    secret = re.search(r'value="(dk_[^"]+)"', _html(resp)).group(1)
    key_id = int(re.search(r"/keys/(\d+)/edit", _html(resp)).group(1))
    return key_id, secret


def test_mint_and_edit_keys_with_columns_and_row_scope(app, client, console, customers, service):
    _two_versions(console, service)
    key_id, secret = _minted(console, service, allowed_columns="customer_key, region", row_scope="region=EU")
    rows = client.get("/api/service/sales-serving/second?id=1", headers={"X-API-Key": secret}).get_json()["rows"]
    assert rows == [{"customer_key": 1, "region": "EU"}]
    assert client.get("/api/service/sales-serving/second?id=2", headers={"X-API-Key": secret}).get_json()["count"] == 0

    edit_url = f"{service['url']}/keys/{key_id}/edit"
    form = _html(console.get(edit_url))
    assert "region=EU" in form and "customer_key, region" in form
    bad = console.post(edit_url, {"name": "app", "rate_limit": "0", "row_scope": "region"})
    assert bad.status_code == 422 and "has-error" in _html(bad)
    saved = console.post(
        edit_url,
        {
            "name": "narrowed",
            "rate_limit": "50",
            "masking_level": "masked",
            "sensitivity_max": "medium",
            "allowed_columns": "customer_key",
            "row_scope": "region=US",
            "allowed_endpoints": "second",
        },
    )
    assert saved.status_code == 302, _html(saved)
    rows = client.get("/api/service/sales-serving/second?id=2", headers={"X-API-Key": secret}).get_json()["rows"]
    assert rows == [{"customer_key": 2}]
    assert client.get("/api/service/sales-serving/customer?id=2", headers={"X-API-Key": secret}).status_code == 403
    assert "narrowed" in _html(console.get(service["url"]))


def test_rotate_a_key_with_a_grace_period(client, console, customers, service):
    _two_versions(console, service)
    key_id, old = _minted(console, service)
    bad = console.post(f"{service['url']}/keys/{key_id}/rotate", {"grace_seconds": "100000"})
    assert bad.status_code == 422
    resp = console.post(f"{service['url']}/keys/{key_id}/rotate", {"grace_seconds": "600"})
    assert resp.status_code == 200 and "has a new secret" in _html(resp) and "keeps working until" in _html(resp)
    new = re.search(r'value="(dk_[^"]+)"', _html(resp)).group(1)
    assert new != old and new not in _html(console.get(service["url"]))
    for secret in (old, new):
        assert client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": secret}).status_code == 200
    now = console.post(f"{service['url']}/keys/{key_id}/rotate", {"grace_seconds": "0"})
    newest = re.search(r'value="(dk_[^"]+)"', _html(now)).group(1)
    assert "The old secret no longer works" in _html(now)
    assert client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": new}).status_code == 401
    assert client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": newest}).status_code == 200


def test_delete_a_service_with_confirmation(app, client, admin, console, customers, service):
    _two_versions(console, service)
    page = _html(console.get(service["url"]))
    assert 'id="delete-service-form"' in page and "data-confirm=" in page and 'name="force" value="true"' in page
    designer = signed_in(app, add_user(client, admin, "designer"))
    refused = designer.post(service["url"] + "/delete", {"force": "true"}, follow_redirects=True)
    assert "Could not delete" in _html(refused)
    unforced = console.post(service["url"] + "/delete", follow_redirects=True)
    assert "unpublish it first" in _html(unforced)
    done = console.post(service["url"] + "/delete", {"force": "true"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/settings#services")
    assert console.get(service["url"]).status_code == 404
    assert client.get(f"/api/publish/assets/{service['id']}", headers=admin.headers).status_code == 404


def test_create_form_takes_icon_sort_order_and_roles(app, client, admin, console, project):
    pid = project["project_id"]
    bad = console.post(f"/projects/{pid}/settings/services", {"title": "X", "asset_key": "x", "sort_order": "first"})
    assert bad.status_code == 422 and "has-error" in _html(bad)
    resp = console.client.post(
        f"/projects/{pid}/settings/services",
        data={
            "title": "Hidden",
            "asset_key": "hidden",
            "icon": "lock",
            "sort_order": "3",
            "roles": ["analyst", "viewer"],
            "csrf_token": console.token,
        },
    )
    assert resp.status_code == 302, _html(resp)
    body = client.get("/api/publish/assets", headers=admin.headers).get_json()["items"][0]
    assert (body["icon"], body["sort_order"], body["roles"]) == ("lock", 3, ["analyst", "viewer"])
    designer = signed_in(app, add_user(client, admin, "designer"))
    assert "Hidden" not in _html(designer.get(f"/projects/{pid}/settings"))
