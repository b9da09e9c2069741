"""Serving sql and lookup endpoints with keys: the contract's order of checks, policies, cache, versions."""

from datetime import timedelta

import pytest

from tests.conftest import sign_up
from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.warehouse_tables import create_dataset

FILTERED = {
    "id": "by_region",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "name", "email", "region", "ssn"],
        "filters": [
            {"column": "region", "op": "eq", "param": "region"},
            {"column": "tenure", "op": "gte", "param": "min_tenure"},
        ],
        "order_by": [{"column": "customer_key", "dir": "asc"}],
        "pagination": {"default_limit": 3, "max_limit": 3},
    },
}


@pytest.fixture()
def service(app, client, admin, project):
    create_dataset(app, project["project_id"])
    created = _create(client, admin, project["project_id"], endpoints=[LOOKUP, TOP, FILTERED])
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return asset_id


def mint(client, admin, asset_id, **fields):
    resp = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "k", **fields})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def call(client, key, endpoint, method="GET", **kwargs):
    return client.open(f"/api/service/sales-serving/{endpoint}", method=method, headers={"X-API-Key": key}, **kwargs)


def test_lookup_and_sql(client, admin, service):
    key = mint(client, admin, service)["key"]
    one = call(client, key, "customer", query_string={"id": "3"})
    assert one.status_code == 200, one.get_json()
    body = one.get_json()
    assert body["count"] == 1 and body["rows"][0]["customer_key"] == 3
    # Defaults: masked, sensitivity_max medium: names (medium) masked, e-mail (high) and ssn (critical) blocked.
    assert body["rows"][0]["name"] != "Grace Hopper" and body["rows"][0]["name"].startswith("Gr")
    assert body["rows"][0]["email"] == "[BLOCKED]" and body["rows"][0]["ssn"] == "[BLOCKED]"
    high = mint(client, admin, service, sensitivity_max="high")["key"]
    email = call(client, high, "customer", query_string={"id": "3"}).get_json()["rows"][0]["email"]
    assert email.endswith("@example.com") and email != "grace@example.com"

    top = call(client, key, "top").get_json()
    assert [r["tenure"] for r in top["rows"]] == [30, 18, 12, 7, 3] and top["limit"] == 100 and top["offset"] == 0

    eu = call(client, key, "by_region", query_string={"region": "EU", "min_tenure": "5", "limit": "3"}).get_json()
    assert [r["customer_key"] for r in eu["rows"]] == [1, 4]
    assert call(client, key, "by_region", query_string={"limit": "4"}).status_code == 400
    bad = call(client, key, "by_region", query_string={"min_tenure": "lots"})
    assert bad.status_code == 400 and "min_tenure" in bad.get_json()["error"]["message"]
    missing = call(client, key, "customer")
    assert missing.status_code == 400 and "id" in missing.get_json()["error"]["message"]


def test_status_codes_in_contract_order(app, client, admin, service):
    scoped = mint(client, admin, service, allowed_endpoints=["top"])["key"]
    assert call(client, "", "top").status_code == 401
    assert call(client, "dk_" + "x" * 43, "top").status_code == 401
    assert call(client, "not-a-key", "top").status_code == 401
    assert call(client, scoped, "nope").status_code == 404
    assert call(client, scoped, "customer", query_string={"id": "1"}).status_code == 403
    assert call(client, scoped, "top", method="POST", json={}).status_code == 405
    assert call(client, scoped, "top", method="DELETE").status_code == 405
    # An Authorization header is ignored on serving routes.
    resp = client.get("/api/service/sales-serving/top", headers={"X-API-Key": scoped, "Authorization": "Bearer junk"})
    assert resp.status_code == 200
    assert (
        client.get("/api/service/sales-serving/top", headers={"Authorization": f"Bearer {admin.token}"}).status_code
        == 401
    )
    assert call(client, scoped, "top").status_code == 200
    client.post(f"/api/publish/assets/{service}/unpublish", headers=admin.headers)
    assert call(client, scoped, "top").status_code == 404


def test_revoked_and_expired_keys_refused_at_once(app, client, admin, service):
    minted = mint(client, admin, service)
    assert call(client, minted["key"], "top").status_code == 200
    client.delete(f"/api/publish/assets/{service}/api-keys/{minted['id']}", headers=admin.headers)
    revoked = call(client, minted["key"], "top")
    assert revoked.status_code == 403 and revoked.get_json()["error"]["code"] == "key_revoked"

    other = mint(client, admin, service)
    from app.db import ApiKey
    from app.db.columns import utcnow
    from app.extensions import db

    with app.app_context():
        db.session.get(ApiKey, other["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert call(client, other["key"], "top").get_json()["error"]["code"] == "key_expired"


def test_key_of_another_asset_is_refused(app, client, admin, project, service):
    create_dataset(app, project["project_id"], "marts.other")
    other_id = _create(
        client, admin, project["project_id"], key="other-svc", endpoints=[{**LOOKUP, "dataset": "marts.other"}]
    ).get_json()["id"]
    client.post(f"/api/publish/assets/{other_id}/publish", headers=admin.headers)
    key = mint(client, admin, other_id)["key"]
    # 404 like an asset that does not exist (issue 12: a key never learns about assets that are not its own).
    assert call(client, key, "top").status_code == 404


def test_rate_limit_429_with_headers(client, admin, service):
    key = mint(client, admin, service, rate_limit=3)["key"]
    statuses = [call(client, key, "top") for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[0].headers["RateLimit-Limit"] == "3" and statuses[0].headers["RateLimit-Remaining"] == "2"
    limited = statuses[3]
    assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["RateLimit-Remaining"] == "0"
    assert limited.get_json()["error"]["code"] == "rate_limited"


def test_key_policies_masking_columns_and_row_scope(client, admin, service):
    unmasked = mint(client, admin, service, masking_level="unmasked", sensitivity_max="critical")["key"]
    row = call(client, unmasked, "customer", query_string={"id": "1"}).get_json()["rows"][0]
    assert row["email"] == "ada@example.com" and row["ssn"] == "111-22-3333"

    narrow = mint(client, admin, service, allowed_columns=["customer_key", "region"])["key"]
    rows = call(client, narrow, "by_region").get_json()["rows"]
    assert set(rows[0]) == {"customer_key", "region"}

    eu_only = mint(client, admin, service, row_scope={"region": ["EU"]})["key"]
    widened = call(client, eu_only, "by_region", query_string={"region": "US"}).get_json()
    assert widened["rows"] == []
    assert {
        r["region"] for r in call(client, eu_only, "by_region", query_string={"limit": "3"}).get_json()["rows"]
    } == {"EU"}
    assert call(client, eu_only, "customer", query_string={"id": "3"}).get_json()["rows"] == []


def test_cache_hits_misses_policy_separation_and_publish_invalidation(client, admin, service):
    masked = mint(client, admin, service)["key"]
    unmasked = mint(client, admin, service, masking_level="unmasked", sensitivity_max="high")["key"]
    first = call(client, masked, "customer", query_string={"id": "2"})
    second = call(client, masked, "customer", query_string={"id": "2"})
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.get_json() == second.get_json()
    other_policy = call(client, unmasked, "customer", query_string={"id": "2"})
    assert other_policy.headers["X-Cache"] == "MISS"
    assert other_policy.get_json()["rows"][0]["email"] == "alan@example.com"
    assert second.get_json()["rows"][0]["email"] != "alan@example.com"
    client.post(f"/api/publish/assets/{service}/publish", headers=admin.headers)
    assert call(client, masked, "customer", query_string={"id": "2"}).headers["X-Cache"] == "MISS"


def test_serving_works_uncached_when_cache_redis_is_down(app, client, admin, service):
    key = mint(client, admin, service)["key"]
    from app.extensions import redis_store

    good = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions["apiary_redis"]["value"] = None
    try:
        resp = call(client, key, "customer", query_string={"id": "4"})
        assert resp.status_code == 200 and resp.get_json()["rows"][0]["customer_key"] == 4
    finally:
        app.config["REDIS_URL"] = good
        app.extensions["apiary_redis"]["value"] = None
        with app.app_context():
            redis_store.get().ping()


def test_draft_edits_wait_for_publish_and_rollback_restores(client, admin, service):
    key = mint(client, admin, service)["key"]
    url = f"/api/publish/assets/{service}"
    changed = {**TOP, "query": {**TOP["query"], "order_by": [{"column": "tenure", "dir": "asc"}]}}
    client.put(url, headers=admin.headers, json={"config": {"endpoints": [LOOKUP, changed, FILTERED]}})
    assert call(client, key, "top").get_json()["rows"][0]["tenure"] == 30
    client.post(f"{url}/publish", headers=admin.headers)
    assert call(client, key, "top").get_json()["rows"][0]["tenure"] == 3
    client.post(f"{url}/rollback/1", headers=admin.headers)
    assert call(client, key, "top").get_json()["rows"][0]["tenure"] == 30


def test_test_pane_dry_run(client, admin, service):
    url = f"/api/api-services/{service}/endpoints/customer/test"
    dry = client.post(url, headers=admin.headers, json={"id": 1})
    assert dry.status_code == 200, dry.get_json()
    body = dry.get_json()
    assert body["dry"] is True and body["rows"][0]["email"] == "ada@example.com"  # admin-unmasked
    key = mint(client, admin, service, masking_level="unmasked", sensitivity_max="critical")["key"]
    served = call(client, key, "customer", query_string={"id": "1"}).get_json()
    assert {**served, "dry": True} == body
    stranger = sign_up(client)
    assert client.post(url, headers=stranger.headers, json={"id": 1}).status_code == 404
    assert client.post(url, json={"id": 1}).status_code == 401


def test_the_test_pane_reads_one_json_object_as_query_params(client, admin, service):
    """The REST Test pane, the console's and `flask services test` share the rule: for a sql or lookup endpoint the
    body is an object of query params (over those of the URL, numbers as text), anything else a 400."""
    url = f"/api/api-services/{service}/endpoints/customer/test"
    over_url = client.post(url + "?id=2", headers=admin.headers, json={"id": 1})
    assert over_url.status_code == 200 and over_url.get_json()["rows"][0]["email"] == "ada@example.com"
    as_get = client.get(url + "?id=1", headers=admin.headers).get_json()
    assert as_get == over_url.get_json()
    listed = client.post(url, headers=admin.headers, json=[1])
    assert listed.status_code == 400 and "JSON object" in listed.get_json()["error"]["message"]


def test_data_api(app, client, admin, project):
    create_dataset(app, project["project_id"])
    created = client.post(
        "/api/publish/assets",
        headers=admin.project_headers(project["project_id"]),
        json={"asset_type": "data_api", "asset_key": "customers", "title": "Customers", "config": FILTERED["query"]},
    )
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    key = mint(client, admin, asset_id)["key"]
    resp = client.get("/api/data/customers", headers={"X-API-Key": key}, query_string={"region": "US"})
    assert resp.status_code == 200 and [r["customer_key"] for r in resp.get_json()["rows"]] == [3, 5]
    assert client.get("/api/service/customers/x", headers={"X-API-Key": key}).status_code == 404
