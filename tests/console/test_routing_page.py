"""The console's versions-in-flight page: routing editor (weights, shadow picker), change history, comparison chart."""

import re

import pytest

from tests.conftest import add_user
from tests.console.conftest import signed_in
from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.publishing.test_routing import flushed_logs, publish_v2
from tests.serving.test_serving_data import mint
from tests.warehouse_tables import create_dataset


@pytest.fixture()
def two_versions(app, client, admin, project) -> dict:
    create_dataset(app, project["project_id"])
    asset_id = _create(client, admin, project["project_id"], endpoints=[LOOKUP, TOP]).get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    publish_v2(client, admin, asset_id)
    url = f"/projects/{project['project_id']}/settings/services/{asset_id}/routing"
    return {"id": asset_id, "url": url}


def test_routing_editor_saves_weights_and_refuses_a_bad_sum_in_place(app, client, admin, two_versions):
    console = signed_in(app, admin)
    page = console.get(two_versions["url"]).get_data(as_text=True)
    assert 'name="weight_1" type="number" min="0" max="100" value="100"' in page
    assert 'id="routing-shadow"' in page

    bad = console.post(two_versions["url"], {"strategy": "random", "weight_1": "90", "weight_2": "5"})
    assert bad.status_code == 422
    assert "weights must sum to 100" in bad.get_data(as_text=True)
    assert 'name="weight_2" type="number" min="0" max="100" value="5"' in bad.get_data(as_text=True)  # kept

    saved = console.post(two_versions["url"], {"strategy": "random", "weight_1": "90", "weight_2": "10"})
    assert saved.status_code == 302
    state = client.get(f"/api/publish/assets/{two_versions['id']}/routing", headers=admin.headers).get_json()
    assert state["strategy"] == "random"
    assert state["entries"] == [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    history = console.get(two_versions["url"]).get_data(as_text=True)
    assert f"{admin.username} · routing" in history and "random v1 90%, v2 10%" in history


def test_viewers_see_the_page_but_cannot_change_the_routing(app, client, admin, two_versions):
    viewer = signed_in(app, add_user(client, admin, "viewer"))
    page = viewer.get(two_versions["url"])
    assert page.status_code == 200 and "Save routing" not in page.get_data(as_text=True)
    assert viewer.post(two_versions["url"], {"strategy": "single", "weight_2": "100"}).status_code == 403


def test_the_comparison_shows_each_versions_calls_with_an_inline_svg_chart(app, client, admin, two_versions):
    key = mint(client, admin, two_versions["id"], rate_limit=1000, can_force_version=True)["key"]
    for version, n in (("1", 3), ("2", 5)):
        for _ in range(n):
            resp = client.get(
                "/api/service/sales-serving/top", headers={"X-API-Key": key, "X-Service-Version": version}
            )
            assert resp.status_code == 200
    flushed_logs(app, client, admin, two_versions["id"])
    console = signed_in(app, admin)
    html = console.get(two_versions["url"], query_string={"a": "1", "b": "2"}).get_data(as_text=True)
    assert re.findall(r'<td data-field="calls">(\d+)</td>', html) == ["3", "5"]
    assert html.count("<svg") >= 2 and "<rect" in html
    # Nothing fetched from elsewhere: every src and href stays on this server.
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', html)


def test_a_key_minted_in_the_console_may_force_versions(app, client, admin, two_versions):
    console = signed_in(app, admin)
    service_url = two_versions["url"].rsplit("/routing", 1)[0]
    resp = console.post(service_url + "/keys", {"name": "ops", "rate_limit": "100", "can_force_version": "on"})
    assert resp.status_code in (201, 303), resp.get_data(as_text=True)[:500]
    keys = client.get(f"/api/publish/assets/{two_versions['id']}/api-keys", headers=admin.headers).get_json()["items"]
    assert [k["can_force_version"] for k in keys] == [True]
    assert "forces versions" in console.get(service_url).get_data(as_text=True)


def test_the_console_audit_log_shows_and_filters_the_version(app, client, admin, two_versions):
    key = mint(client, admin, two_versions["id"], rate_limit=1000, can_force_version=True)["key"]
    for version in ("1", "2", "2"):
        client.get("/api/service/sales-serving/top", headers={"X-API-Key": key, "X-Service-Version": version})
    flushed_logs(app, client, admin, two_versions["id"])
    console = signed_in(app, admin)
    logs_url = two_versions["url"].rsplit("/routing", 1)[0] + "/logs"
    html = console.get(logs_url, query_string={"version": "2"}).get_data(as_text=True)
    assert re.findall(r'<td class="small" data-field="version">(v\d)</td>', html) == ["v2", "v2"]
    assert console.get(logs_url, query_string={"version": "two"}).status_code == 422


def test_the_service_page_marks_each_routed_version_with_its_share(app, client, admin, two_versions):
    body = {"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}
    assert (
        client.put(f"/api/publish/assets/{two_versions['id']}/routing", headers=admin.headers, json=body).status_code
        == 200
    )
    html = signed_in(app, admin).get(two_versions["url"].rsplit("/routing", 1)[0]).get_data(as_text=True)
    assert "serving 90%" in html and "serving 10%" in html
