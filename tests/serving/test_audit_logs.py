"""Every serving call leaves an audit record, flushed to the database by a worker and readable by members."""

import time

from tests.conftest import add_user, sign_up
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


def test_calls_are_audited_and_filterable(client, admin, service, worker):  # noqa: F811
    key = mint(client, admin, service, rate_limit=3)
    for _ in range(2):
        call(client, key["key"], "top")
    call(client, key["key"], "customer")  # 400: missing id (it still spends from the rate limit)
    call(client, key["key"], "top")  # 429
    call(client, key["key"], "top")  # 429
    url = f"/api/api-services/{service}/logs"
    deadline = time.monotonic() + 15
    body = {"total": 0}
    while time.monotonic() < deadline and body["total"] < 5:
        time.sleep(0.3)
        body = client.get(url, headers=admin.headers).get_json()
    assert body["total"] == 5, body
    statuses = sorted(item["status"] for item in body["items"])
    assert statuses == [200, 200, 400, 429, 429]
    assert {item["key_id"] for item in body["items"]} == {key["id"]}
    assert all(item["latency_ms"] >= 0 for item in body["items"])
    errors = client.get(url, headers=admin.headers, query_string={"errors_only": "true"}).get_json()
    assert sorted(i["status"] for i in errors["items"]) == [400, 429, 429]
    only_customer = client.get(url, headers=admin.headers, query_string={"endpoint_id": "customer"}).get_json()
    assert only_customer["total"] == 1 and only_customer["items"][0]["error_code"] == "validation_error"
    page = client.get(url, headers=admin.headers, query_string={"limit": 2, "offset": 1}).get_json()
    assert len(page["items"]) == 2 and page["total"] == 5
    assert client.get(url, headers=admin.headers, query_string={"limit": 0}).status_code == 422

    viewer = add_user(client, admin, "viewer")
    assert client.get(url, headers=viewer.headers).status_code == 200
    assert client.get(url, headers=sign_up(client).headers).status_code == 404

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = client.get(f"/api/publish/assets/{service}/api-keys", headers=admin.headers).get_json()["items"]
        if listed[0]["last_used_at"] is not None:
            break
        time.sleep(0.2)
    assert listed[0]["last_used_at"] is not None


def test_out_of_range_log_filters_name_the_field(client, admin, service):  # noqa: F811
    url = f"/api/api-services/{service}/logs"
    for name, value in (("offset", "99999999999999999999"), ("key_id", "99999999999999999999"), ("key_id", "-1")):
        resp = client.get(url, headers=admin.headers, query_string={name: value})
        assert resp.status_code == 422, (name, value, resp.get_json())
        assert name in resp.get_json()["error"]["details"]["fields"]
    assert client.get(url, headers=admin.headers, query_string={"offset": "5", "key_id": "7"}).status_code == 200
