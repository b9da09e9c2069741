"""Versions in flight over HTTP: publish without switching, routing (single/random/hash), forced versions, the
version that answered in every response header and audit record."""

import copy
import math

import httpx
import pytest

from tests.conftest import add_user
from tests.publishing.test_assets import TOP
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture

# Version 2 of the service answers `top` with a default limit of 2 (version 1: 100), so every answer shows which
# version made it.
TOP_V2 = copy.deepcopy(TOP)
TOP_V2["query"]["pagination"] = {"default_limit": 2, "max_limit": 10}
LIMIT_OF = {1: 100, 2: 2}


def publish_v2(client, admin, asset_id, activate=False) -> int:
    asset = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    endpoints = [TOP_V2 if ep["id"] == "top" else ep for ep in asset["config"]["endpoints"]]
    edited = client.put(
        f"/api/publish/assets/{asset_id}", headers=admin.headers, json={"config": {"endpoints": endpoints}}
    )
    assert edited.status_code == 200, edited.get_json()
    resp = client.post(
        f"/api/publish/assets/{asset_id}/publish",
        headers=admin.headers,
        json={"change_note": "v2", "activate": activate},
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["version"]


def call_with(client, key, endpoint, headers, **kwargs):
    return client.get(f"/api/service/sales-serving/{endpoint}", headers={"X-API-Key": key, **headers}, **kwargs)


def route(client, account, asset_id, body):
    return client.put(f"/api/publish/assets/{asset_id}/routing", headers=account.headers, json=body)


def served_version(resp) -> int:
    """The version the header names, checked against the body that version answers with."""
    assert resp.status_code == 200, resp.get_json()
    version = int(resp.headers["X-Service-Version"])
    assert resp.get_json()["limit"] == LIMIT_OF[version], (version, resp.get_json()["limit"])
    return version


def flushed_logs(app, client, admin, asset_id, **query):
    from app.serving.audit import flush_serving_records

    with app.app_context():
        flush_serving_records()
    resp = client.get(
        f"/api/api-services/{asset_id}/logs", headers=admin.headers, query_string={"limit": 1000, **query}
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_publish_inactive_then_route_records_changes_and_versions(app, client, admin, project, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10_000)["key"]
    assert served_version(call(client, key, "top")) == 1
    assert publish_v2(client, admin, service, activate=False) == 2
    # The new version exists but takes no traffic.
    assert {served_version(call(client, key, "top")) for _ in range(20)} == {1}
    state = client.get(f"/api/publish/assets/{service}/routing", headers=admin.headers).get_json()
    assert state["strategy"] == "single" and state["entries"] == [{"version": 1, "weight": 100}]
    assert state["shadow_version"] is None

    switched = route(client, admin, service, {"strategy": "single", "entries": [{"version": 2, "weight": 100}]})
    assert switched.status_code == 200, switched.get_json()
    assert served_version(call(client, key, "top")) == 2
    change = switched.get_json()["changes"][0]
    assert change["changed_by"] == admin.username and change["changed_at"]
    assert change["before"]["entries"] == [{"version": 1, "weight": 100}]
    assert change["after"]["entries"] == [{"version": 2, "weight": 100}]
    # Errors answered after the version was chosen say which version refused them too.
    bad = call(client, key, "top", query_string={"limit": "99"})
    assert bad.status_code == 400 and bad.headers["X-Service-Version"] == "2"

    logs = flushed_logs(app, client, admin, service)
    assert {(e["version"], e["status"]) for e in logs["items"]} == {(1, 200), (2, 200), (2, 400)}
    only_v1 = flushed_logs(app, client, admin, service, version=1)
    assert only_v1["total"] == 21 and {e["version"] for e in only_v1["items"]} == {1}
    bad_filter = client.get(f"/api/api-services/{service}/logs?version=x", headers=admin.headers)
    assert bad_filter.status_code == 422 and "version" in bad_filter.get_json()["error"]["details"]["fields"]


def test_activate_false_needs_a_served_version(client, admin, project):
    from tests.publishing.test_assets import _create

    asset_id = _create(client, admin, project["project_id"], endpoints=[]).get_json()["id"]
    resp = client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers, json={"activate": False})
    assert resp.status_code == 409
    assert (
        route(client, admin, asset_id, {"strategy": "single", "entries": [{"version": 1, "weight": 100}]}).status_code
        == 409
    )


@pytest.mark.parametrize(
    "body,field",
    [
        ({"strategy": "weighted", "entries": [{"version": 1, "weight": 100}]}, "strategy"),
        ({"strategy": "random", "entries": []}, "entries"),
        ({"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 2, "weight": 9}]}, "entries"),
        (
            {"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 7, "weight": 10}]},
            "entries[1].version",
        ),
        (
            {"strategy": "random", "entries": [{"version": 1, "weight": 100}, {"version": 2, "weight": 0}]},
            "entries[1].weight",
        ),
        (
            {"strategy": "random", "entries": [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]},
            "entries[1].version",
        ),
        ({"strategy": "random", "entries": [{"version": True, "weight": 100}]}, "entries[0].version"),
        ({"strategy": "hash", "entries": [{"version": 1, "weight": "100"}]}, "entries[0].weight"),
        ({"strategy": "single", "entries": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}, "entries"),
        ({"strategy": "single", "entries": [{"version": 1, "weight": 100}], "shadow_version": 9}, "shadow_version"),
        ({"strategy": "single", "entries": [{"version": 1, "weight": 100}], "sticky": True}, "sticky"),
    ],
)
def test_bad_routing_is_a_422_naming_the_field(client, admin, service, body, field):  # noqa: F811
    publish_v2(client, admin, service)
    resp = route(client, admin, service, body)
    assert resp.status_code == 422, resp.get_json()
    assert field in resp.get_json()["error"]["details"]["fields"], resp.get_json()


def test_routing_permissions(client, admin, service):  # noqa: F811
    publish_v2(client, admin, service)
    analyst, designer = add_user(client, admin, "analyst"), add_user(client, admin, "designer")
    body = {"strategy": "random", "entries": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    assert route(client, analyst, service, body).status_code == 403
    assert client.get(f"/api/publish/assets/{service}/routing", headers=analyst.headers).status_code == 403
    assert route(client, designer, service, body).status_code == 200
    # Setting a shadow version is for org admins.
    assert route(client, designer, service, {**body, "shadow_version": 2}).status_code == 403
    assert route(client, admin, service, {**body, "shadow_version": 2}).status_code == 200
    # Another organization's admin sees no such asset.
    from tests.conftest import sign_up

    stranger = sign_up(client)
    assert route(client, stranger, service, body).status_code == 404


def five_sigma(n: int, p: float) -> tuple[float, float]:
    spread = 5 * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


def test_random_weights_hold_over_2000_calls(client, admin, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=100_000)["key"]
    publish_v2(client, admin, service)
    body = {"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}
    assert route(client, admin, service, body).status_code == 200
    versions = [served_version(call(client, key, "top")) for _ in range(2000)]
    low, high = five_sigma(2000, 0.10)
    assert low <= versions.count(2) <= high, versions.count(2)


def test_hash_is_sticky_and_moving_weights_moves_fewest_keys(client, admin, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=100_000)["key"]
    publish_v2(client, admin, service)
    entries = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    assert route(client, admin, service, {"strategy": "hash", "entries": entries}).status_code == 200

    def dispatch(user: str, how: str = "header") -> int:
        if how == "header":
            return served_version(call_with(client, key, "top", {"X-Dispatch-Key": user}))
        return served_version(call(client, key, "top", query_string={"dispatch_key": user}))

    users = [f"user-{i}" for i in range(1000)]
    before = {user: dispatch(user) for user in users}
    low, high = five_sigma(1000, 0.10)
    assert low <= list(before.values()).count(2) <= high
    # Sticky: the same key lands on the same version again (the query-string form of the key too).
    assert all(dispatch(user, "query") == before[user] for user in users[:200])

    entries = [{"version": 1, "weight": 70}, {"version": 2, "weight": 30}]
    assert route(client, admin, service, {"strategy": "hash", "entries": entries}).status_code == 200
    after = {user: dispatch(user) for user in users}
    moved = [user for user in users if after[user] != before[user]]
    # Only keys of the version that lost weight move, to the one that gained it; about 20 % of all keys.
    assert all(before[user] == 1 and after[user] == 2 for user in moved)
    low, high = five_sigma(1000, 0.20)
    assert low <= len(moved) <= high, len(moved)

    no_key = call(client, key, "top")
    assert no_key.headers["X-Dispatch-Fallback"] == "random"
    assert "X-Dispatch-Fallback" not in call_with(client, key, "top", {"X-Dispatch-Key": "a"}).headers


def test_forced_version_needs_the_key_right_and_a_published_version(client, admin, service):  # noqa: F811
    plain = mint(client, admin, service, rate_limit=1000)
    forcer = mint(client, admin, service, rate_limit=1000, can_force_version=True)
    assert forcer["can_force_version"] is True and plain["can_force_version"] is False
    publish_v2(client, admin, service, activate=True)

    def forced(key, version):
        return call_with(client, key, "top", {"X-Service-Version": version})

    refused = forced(plain["key"], "1")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "version_not_forcible"
    assert served_version(forced(forcer["key"], "1")) == 1
    assert served_version(forced(forcer["key"], "2")) == 2
    assert served_version(call(client, forcer["key"], "top")) == 2
    assert forced(forcer["key"], "3").status_code == 404
    bad = forced(forcer["key"], "one")
    assert bad.status_code == 400 and "X-Service-Version" in bad.get_json()["error"]["details"]["fields"]
    # The right can be granted (and taken back) later; effective on the next call.
    patched = client.patch(
        f"/api/publish/assets/{service}/api-keys/{plain['id']}", headers=admin.headers, json={"can_force_version": True}
    )
    assert patched.status_code == 200 and patched.get_json()["can_force_version"] is True
    assert served_version(forced(plain["key"], "1")) == 1


def test_every_answer_header_matches_its_audit_record(app, client, admin, service):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10_000)["key"]
    publish_v2(client, admin, service)
    body = {"strategy": "random", "entries": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    assert route(client, admin, service, body).status_code == 200
    answers = [call(client, key, "top", query_string={"offset": str(i % 3)}) for i in range(60)]
    seen = {resp.headers["X-Request-Id"]: served_version(resp) for resp in answers}
    logs = flushed_logs(app, client, admin, service)["items"]
    # Call by call (matched on the request id each answer echoes): the version its header named is its record's.
    assert {e["request_id"]: e["version"] for e in logs if e["request_id"] in seen} == seen
    assert {1, 2} <= set(seen.values())


def test_routing_change_is_effective_on_the_next_call_on_every_server(client, admin, service, two_web_processes):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10_000)["key"]
    publish_v2(client, admin, service)
    urls = [f"http://127.0.0.1:{port}/api/service/sales-serving/top" for port in two_web_processes]
    for url in urls:  # both servers cache the routing of version 1
        assert [int(httpx.get(url, headers={"X-API-Key": key}).headers["X-Service-Version"]) for _ in range(3)] == [
            1
        ] * 3
    body = {"strategy": "single", "entries": [{"version": 2, "weight": 100}]}
    assert route(client, admin, service, body).status_code == 200
    for url in urls:
        resp = httpx.get(url, headers={"X-API-Key": key})
        assert resp.headers["X-Service-Version"] == "2" and resp.json()["limit"] == 2


def test_openapi_documents_the_routing_routes_and_headers(client):
    spec = client.get("/api/openapi.json").get_json()
    routing = spec["paths"]["/api/publish/assets/{asset_id}/routing"]
    assert {"get", "put"} <= set(routing) and "requestBody" in routing["put"]
    assert "/api/api-services/{asset_id}/versions/compare" in spec["paths"]
    serving = spec["paths"]["/api/service/{asset_key}/{endpoint_id}"]["get"]
    headers = {p["name"] for p in serving["parameters"] if p["in"] == "header"}
    assert {"X-Dispatch-Key", "X-Service-Version"} <= headers
    assert {"X-Service-Version", "Server-Timing"} <= set(serving["responses"]["200"]["headers"])
    assert "`cpu`" in serving["responses"]["200"]["headers"]["Server-Timing"]["description"]
    publish = spec["components"]["schemas"]["Publish"]["properties"]
    assert "activate" in publish


def test_other_organizations_and_other_assets_keys_get_nothing(client, admin, project, service):  # noqa: F811
    from tests.conftest import sign_up
    from tests.publishing.test_assets import LOOKUP, _create

    publish_v2(client, admin, service)
    stranger = sign_up(client)
    assert (
        client.get(f"/api/api-services/{service}/versions/compare?a=1&b=2", headers=stranger.headers).status_code == 404
    )
    assert client.get(f"/api/publish/assets/{service}/routing", headers=stranger.headers).status_code == 404
    # A forcing key of another asset of the same organization cannot reach this one's versions.
    other = _create(client, admin, project["project_id"], key="other-serving", endpoints=[LOOKUP]).get_json()["id"]
    assert client.post(f"/api/publish/assets/{other}/publish", headers=admin.headers).status_code == 200
    foreign = mint(client, admin, other, can_force_version=True)["key"]
    resp = call_with(client, foreign, "top", {"X-Service-Version": "2"})
    assert resp.status_code == 404 and "X-Service-Version" not in resp.headers
    # Forcing never takes what is not a plain version number.
    forcer = mint(client, admin, service, can_force_version=True)["key"]
    for bad in ("-1", "0", "2.0", "1e3", "99999999999999999999", "２"):
        assert call_with(client, forcer, "top", {"X-Service-Version": bad}).status_code == 400, bad
    # An analyst (project.view) reads the comparison; routing stays for editors.
    analyst = add_user(client, admin, "analyst")
    assert (
        client.get(f"/api/api-services/{service}/versions/compare?a=1&b=2", headers=analyst.headers).status_code == 200
    )
