"""Issue 12 item 15: a valid key used on another organization's service is throttled like any call of that key and
never written into the other organization's audit log; the contract's order holds for the key's own service."""

from tests.conftest import sign_up
from tests.publishing.test_assets import LOOKUP, _create
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture
from tests.warehouse_tables import create_dataset


def _other_org_service(app, client) -> tuple:
    other = sign_up(client)
    project = client.post("/api/projects", headers=other.headers, json={"name": "B", "slug": "b"}).get_json()
    create_dataset(app, project["project_id"])
    created = _create(client, other, project["project_id"], key="b-serving", endpoints=[LOOKUP])
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=other.headers).status_code == 200
    return other, asset_id


def _audit_total(app, client, account, asset_id) -> int:
    from app.serving.audit import flush_serving_records

    with app.app_context():
        flush_serving_records()  # what the worker's flush task runs
    return client.get(f"/api/api-services/{asset_id}/logs", headers=account.headers).get_json()["total"]


def test_a_key_on_another_orgs_service_is_404_throttled_and_not_audited_there(app, client, admin, service):  # noqa: F811
    other, b_asset = _other_org_service(app, client)
    key = mint(client, admin, service, rate_limit=2)["key"]
    url = "/api/service/b-serving/customer"
    first = client.get(url, headers={"X-API-Key": key}, query_string={"id": "1"})
    assert first.status_code == 404 and first.get_json()["error"]["code"] == "not_found"
    # Same answer as an asset that does not exist: nothing says organization B has one by that name.
    missing = client.get("/api/service/no-such-serving/customer", headers={"X-API-Key": key})
    assert missing.get_json()["error"] == first.get_json()["error"]
    # Both spent the key's budget: the third probe is a 429, and so is a call on the key's own service.
    third = client.get(url, headers={"X-API-Key": key}, query_string={"id": "1"})
    assert third.status_code == 429 and int(third.headers["Retry-After"]) >= 1
    assert call(client, key, "top").status_code == 429
    assert _audit_total(app, client, other, b_asset) == 0
    assert _audit_total(app, client, admin, service) == 1  # the key's own 429 is in its own service's log


def test_the_contract_order_holds_for_the_keys_own_service(client, admin, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=2, allowed_endpoints=["top"])["key"]
    # On its own service, calls refused before the rate-limit step (404 endpoint, 403 scope) spend nothing, as before.
    assert call(client, key, "nope").status_code == 404
    assert call(client, key, "customer", query_string={"id": "1"}).status_code == 403
    assert call(client, key, "top").status_code == 200
    assert call(client, key, "top").status_code == 200
    # Budget spent: an unknown endpoint is still a 404 and an endpoint outside the key's scope still a 403.
    assert call(client, key, "nope").status_code == 404
    assert call(client, key, "customer", query_string={"id": "1"}).status_code == 403
    assert call(client, key, "top").status_code == 429
