"""The published-asset lifecycle over HTTP: drafts, validation, publish, versions, diff, unpublish, rollback."""

from tests.conftest import add_user, sign_up
from tests.warehouse_tables import create_dataset

LOOKUP = {"id": "customer", "kind": "lookup", "dataset": "marts.dim_customer", "key_column": "customer_key"}
TOP = {
    "id": "top",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "tenure"],
        "order_by": [{"column": "tenure", "dir": "desc"}],
    },
}


def _create(client, account, project_id, key="sales-serving", endpoints=None):
    return client.post(
        "/api/publish/assets",
        headers=account.project_headers(project_id),
        json={
            "asset_type": "api_service",
            "asset_key": key,
            "title": "Sales serving",
            "config": {"endpoints": endpoints if endpoints is not None else [LOOKUP]},
        },
    )


def test_create_publish_edit_versions_diff(app, client, admin, project):
    create_dataset(app, project["project_id"])
    created = _create(client, admin, project["project_id"])
    assert created.status_code == 201, created.get_json()
    asset = created.get_json()
    assert asset["status"] == "draft" and asset["project_id"] == project["project_id"]
    assert asset["config"]["endpoints"][0]["key_param"] == "id"  # defaults filled in

    url = f"/api/publish/assets/{asset['id']}"
    assert client.post(f"{url}/publish", headers=admin.headers).get_json() == {
        "ok": True,
        "status": "published",
        "version": 1,
    }
    edited = client.put(
        url, headers=admin.headers, json={"config": {"endpoints": [LOOKUP, TOP]}, "change_note": "add top"}
    )
    assert edited.status_code == 200, edited.get_json()
    assert client.post(f"{url}/publish", headers=admin.headers).get_json()["version"] == 2

    detail = client.get(url, headers=admin.headers).get_json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert detail["versions"][0]["change_note"] == "add top"
    assert detail["versions"][0]["published_by"] == admin.username

    diff = client.get(f"{url}/versions/1/diff/2", headers=admin.headers).get_json()
    assert {"path": "config.endpoints.top", "kind": "added"}.items() <= diff["diff"][0].items()
    assert diff["left"]["version"] == 1 and diff["right"]["version"] == 2

    assert client.post(f"{url}/unpublish", headers=admin.headers).get_json() == {"ok": True, "status": "draft"}
    rolled = client.post(f"{url}/rollback/1", headers=admin.headers).get_json()
    assert rolled == {"ok": True, "status": "published", "version": 3}
    after = client.get(url, headers=admin.headers).get_json()
    assert [e["id"] for e in after["config"]["endpoints"]] == ["customer"]

    listed = client.get("/api/publish/assets?asset_type=api_service&status=published", headers=admin.headers).get_json()
    assert [a["id"] for a in listed["items"]] == [asset["id"]]
    assert client.get("/api/publish/assets?status=draft", headers=admin.headers).get_json()["items"] == []


def test_duplicate_key_and_missing_project(app, client, admin, project):
    create_dataset(app, project["project_id"])
    assert _create(client, admin, project["project_id"]).status_code == 201
    assert _create(client, admin, project["project_id"]).status_code == 409
    resp = client.post(
        "/api/publish/assets",
        headers=admin.headers,
        json={"asset_type": "api_service", "asset_key": "x", "title": "X", "config": {"endpoints": []}},
    )
    assert resp.status_code == 400 and "X-Project-Id" in resp.get_json()["error"]["message"]


def test_bad_configs_name_the_endpoint_and_field(app, client, admin, project):
    create_dataset(app, project["project_id"])
    cases = [
        ([{"id": "a", "kind": "nope"}], "config.endpoints[0].kind"),
        ([LOOKUP, {**LOOKUP}], "config.endpoints[1].id"),
        ([{**LOOKUP, "dataset": "marts.missing"}], "config.endpoints[0].dataset"),
        ([{**LOOKUP, "key_column": "nope"}], "config.endpoints[0].key_column"),
        ([{"id": "risk", "kind": "model", "model_id": 999}], "config.endpoints[0].model_id"),
        ([{**TOP, "query": {**TOP["query"], "columns": ["ghost"]}}], "config.endpoints[0].query.columns[0]"),
        (
            [{**TOP, "query": {**TOP["query"], "filters": [{"column": "tenure", "op": "zz", "param": "t"}]}}],
            "config.endpoints[0].query.filters[0].op",
        ),
        ([{"id": "bad id!", "kind": "sql"}], "config.endpoints[0].id"),
    ]
    for i, (endpoints, field) in enumerate(cases):
        resp = _create(client, admin, project["project_id"], key=f"svc-{i}", endpoints=endpoints)
        assert resp.status_code in (400, 422), (field, resp.get_json())
        fields = resp.get_json()["error"]["details"]["fields"]
        assert field in fields, (field, fields)
    assert client.get("/api/publish/assets", headers=admin.headers).get_json()["items"] == []


def test_draft_edit_is_checked_and_other_orgs_get_404(app, client, admin, project):
    create_dataset(app, project["project_id"])
    asset_id = _create(client, admin, project["project_id"]).get_json()["id"]
    bad = client.put(
        f"/api/publish/assets/{asset_id}",
        headers=admin.headers,
        json={"config": {"endpoints": [{"id": "x", "kind": "lookup"}]}},
    )
    assert bad.status_code == 422
    assert (
        client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()["config"]["endpoints"][0]["id"]
        == "customer"
    )
    stranger = sign_up(client)
    for method, path in (("get", ""), ("put", ""), ("post", "/publish"), ("get", "/api-keys")):
        resp = getattr(client, method)(f"/api/publish/assets/{asset_id}{path}", headers=stranger.headers, json={})
        assert resp.status_code == 404, (method, path)
    assert client.get("/api/publish/assets", headers=stranger.headers).get_json()["items"] == []


def test_rollback_needs_org_admin_and_functions_need_admin(app, client, admin, project):
    create_dataset(app, project["project_id"])
    asset_id = _create(client, admin, project["project_id"]).get_json()["id"]
    client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    designer = add_user(client, admin, "designer")
    assert client.post(f"/api/publish/assets/{asset_id}/rollback/1", headers=designer.headers).status_code == 403
    fn = {"id": "score", "kind": "function", "handler": "def handler(payload):\n    return 1\n"}
    denied = client.put(
        f"/api/publish/assets/{asset_id}", headers=designer.headers, json={"config": {"endpoints": [LOOKUP, fn]}}
    )
    assert denied.status_code == 403
    allowed = client.put(
        f"/api/publish/assets/{asset_id}", headers=admin.headers, json={"config": {"endpoints": [LOOKUP, fn]}}
    )
    assert allowed.status_code == 200
    # A designer may still edit other endpoints while leaving the admin's function untouched.
    other = {**LOOKUP, "id": "customer2"}
    kept = client.put(
        f"/api/publish/assets/{asset_id}", headers=designer.headers, json={"config": {"endpoints": [LOOKUP, fn, other]}}
    )
    assert kept.status_code == 200, kept.get_json()
    syntax = client.put(
        f"/api/publish/assets/{asset_id}",
        headers=admin.headers,
        json={"config": {"endpoints": [{**fn, "handler": "def handler(p):\n  return (\n"}]}},
    )
    assert (
        syntax.status_code == 422 and "config.endpoints[0].handler" in syntax.get_json()["error"]["details"]["fields"]
    )


def test_out_of_range_ids_are_404_and_bad_filters_name_the_field(app, client, admin, project):
    create_dataset(app, project["project_id"])
    asset_id = _create(client, admin, project["project_id"]).get_json()["id"]
    big = "999999999999999999999"
    for method, path in (
        ("get", f"/api/publish/assets/{big}"),
        ("put", f"/api/publish/assets/{big}"),
        ("post", f"/api/publish/assets/{big}/publish"),
        ("post", f"/api/publish/assets/{asset_id}/rollback/{big}"),
        ("get", f"/api/publish/assets/{asset_id}/versions/{big}/diff/1"),
        ("get", f"/api/publish/assets/{big}/api-keys"),
        ("delete", f"/api/publish/assets/{asset_id}/api-keys/{big}"),
        ("get", f"/api/flow/ai-recipes/{big}"),
        ("get", f"/api/models/{big}"),
        ("delete", f"/api/auth/tokens/{big}"),
        ("get", f"/api/api-services/{big}/logs"),
        ("post", f"/api/api-services/{big}/endpoints/customer/test"),
        ("get", "/api/publish/assets/2147483648"),
    ):
        resp = getattr(client, method)(path, headers=admin.headers, json={"title": "x"})
        assert resp.status_code == 404, (method, path, resp.get_json())
    for value in (big, "-5", "0"):
        resp = client.get("/api/publish/assets", headers=admin.headers, query_string={"project_id": value})
        assert resp.status_code == 422 and "project_id" in resp.get_json()["error"]["details"]["fields"], value


def test_a_put_with_two_mistakes_reports_both(app, client, admin, project):
    create_dataset(app, project["project_id"])
    asset_id = _create(client, admin, project["project_id"]).get_json()["id"]
    url = f"/api/publish/assets/{asset_id}"
    bad = client.put(
        url, headers=admin.headers, json={"title": "", "config": {"endpoints": [{**LOOKUP, "key_column": "nope"}]}}
    )
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["details"]["fields"]
    assert set(fields) == {"title", "config.endpoints[0].key_column"}, fields
    alone = client.put(url, headers=admin.headers, json={"config": {"endpoints": [{**LOOKUP, "key_column": "nope"}]}})
    assert list(alone.get_json()["error"]["details"]["fields"]) == ["config.endpoints[0].key_column"]
    unchanged = client.get(url, headers=admin.headers).get_json()
    assert unchanged["title"] == "Sales serving" and unchanged["config"]["endpoints"][0]["key_column"] == "customer_key"
