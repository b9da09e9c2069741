"""Issue 11: the fields Honeyframe clients send on projects and published assets are accepted, stored and returned."""

from tests.conftest import add_user
from tests.publishing.test_assets import LOOKUP
from tests.warehouse_tables import create_dataset

HONEYFRAME_ASSET = {"theme": {}, "roles": [], "is_public": False, "icon": "", "sort_order": 0}


def _service(client, account, project_id, key, **fields):
    body = {
        "asset_key": key,
        "asset_type": "api_service",
        "title": fields.pop("title", key),
        "description": "",
        "config": {"endpoints": [LOOKUP]},
        **HONEYFRAME_ASSET,
        **fields,
    }
    return client.post("/api/publish/assets", headers=account.project_headers(project_id), json=body)


def test_create_project_as_honeyframe_sends_it(client, admin):
    resp = client.post(
        "/api/projects",
        headers=admin.headers,
        json={"name": "Sales", "slug": "sales", "icon": "folder", "color": "#B45309"},
    )
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert created["icon"] == "folder" and created["color"] == "#B45309"
    one = client.get(f"/api/projects/{created['project_id']}", headers=admin.headers).get_json()
    assert (one["icon"], one["color"]) == ("folder", "#B45309")
    listed = client.get("/api/projects", headers=admin.headers).get_json()["items"]
    assert [(p["icon"], p["color"]) for p in listed] == [("folder", "#B45309")]
    plain = client.post("/api/projects", headers=admin.headers, json={"name": "Plain", "slug": "plain"}).get_json()
    assert plain["icon"] == "" and plain["color"] is None


def test_bad_project_fields_are_named(client, admin):
    cases = [
        ({"color": "B45309"}, "color"),
        ({"color": "#B4530"}, "color"),
        ({"color": "#GGGGGG"}, "color"),
        ({"icon": "x" * 65}, "icon"),
        ({"icon": 3}, "icon"),
        ({"colour": "#B45309"}, "colour"),
    ]
    for extra, field in cases:
        resp = client.post("/api/projects", headers=admin.headers, json={"name": "S", "slug": "s", **extra})
        assert resp.status_code == 422, (extra, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (extra, resp.get_json())
    assert client.get("/api/projects", headers=admin.headers).get_json()["items"] == []


def test_create_api_service_as_honeyframe_sends_it(app, client, admin, project):
    create_dataset(app, project["project_id"])
    resp = _service(client, admin, project["project_id"], "honey")
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    for field, value in HONEYFRAME_ASSET.items():
        assert created[field] == value, field
    assert created["status"] == "draft" and created["project_id"] == project["project_id"]

    themed = {
        "theme": {"primary": "#B45309", "layout": {"dense": True}},
        "roles": ["analyst", "designer"],
        "is_public": True,
        "icon": "chart-line",
        "sort_order": 7,
    }
    resp = _service(client, admin, project["project_id"], "themed", **themed)
    assert resp.status_code == 201, resp.get_json()
    asset_id = resp.get_json()["id"]
    detail = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    assert {k: detail[k] for k in themed} == themed
    listed = {a["asset_key"]: a for a in client.get("/api/publish/assets", headers=admin.headers).get_json()["items"]}
    assert {k: listed["themed"][k] for k in themed} == themed

    change = {"theme": {"primary": "#000000"}, "roles": [], "is_public": False, "icon": "star", "sort_order": -2}
    put = client.put(f"/api/publish/assets/{asset_id}", headers=admin.headers, json=change)
    assert put.status_code == 200, put.get_json()
    assert {k: put.get_json()[k] for k in change} == change
    # PUT writes only the fields sent.
    client.put(f"/api/publish/assets/{asset_id}", headers=admin.headers, json={"title": "Renamed"})
    again = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    assert {k: again[k] for k in change} == change and again["title"] == "Renamed"


def test_bad_asset_fields_are_named_and_nothing_is_written(app, client, admin, project):
    create_dataset(app, project["project_id"])
    cases = [
        ({"theme": []}, "theme"),
        ({"theme": {"blob": "x" * (16 * 1024)}}, "theme"),
        ({"roles": ["admin", "owner"]}, "roles"),
        ({"roles": "analyst"}, "roles"),
        ({"sort_order": "first"}, "sort_order"),
        ({"sort_order": 1.5}, "sort_order"),
        ({"is_public": "perhaps"}, "is_public"),
        ({"icon": "x" * 201}, "icon"),
        ({"colour": "red"}, "colour"),
    ]
    for extra, field in cases:
        resp = _service(client, admin, project["project_id"], "bad", **extra)
        assert resp.status_code == 422, (extra, resp.get_json())
        error = resp.get_json()["error"]
        assert any(name.startswith(field) for name in error["details"]["fields"]), (extra, error)
    unknown = _service(client, admin, project["project_id"], "bad", roles=["owner"]).get_json()["error"]
    assert "owner" in str(unknown["details"]["fields"])
    assert client.get("/api/publish/assets", headers=admin.headers).get_json()["items"] == []

    asset_id = _service(client, admin, project["project_id"], "good").get_json()["id"]
    for extra, field in cases:
        resp = client.put(f"/api/publish/assets/{asset_id}", headers=admin.headers, json=extra)
        assert resp.status_code == 422, (extra, resp.get_json())
        assert any(name.startswith(field) for name in resp.get_json()["error"]["details"]["fields"]), extra
    after = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    assert {k: after[k] for k in HONEYFRAME_ASSET} == HONEYFRAME_ASSET


def test_lists_are_ordered_by_sort_order_then_title(app, client, admin, project):
    create_dataset(app, project["project_id"])
    for key, title, order in [("c", "Charlie", 1), ("a", "Alpha", 2), ("b", "Bravo", 1), ("z", "Zulu", -5)]:
        assert _service(client, admin, project["project_id"], key, title=title, sort_order=order).status_code == 201
    listed = client.get("/api/publish/assets", headers=admin.headers).get_json()["items"]
    assert [a["title"] for a in listed] == ["Zulu", "Bravo", "Charlie", "Alpha"]


def test_roles_hide_assets_from_other_roles(app, client, admin, project):
    create_dataset(app, project["project_id"])
    analyst, designer = add_user(client, admin, "analyst"), add_user(client, admin, "designer")
    hidden = _service(client, admin, project["project_id"], "analysts-only", roles=["analyst"]).get_json()["id"]
    _service(client, admin, project["project_id"], "for-all")

    def keys(account):
        return [a["asset_key"] for a in client.get("/api/publish/assets", headers=account.headers).get_json()["items"]]

    assert keys(analyst) == ["analysts-only", "for-all"]
    assert keys(designer) == ["for-all"]
    assert keys(admin) == ["analysts-only", "for-all"]  # org admins see every asset
    assert client.get(f"/api/publish/assets/{hidden}", headers=designer.headers).status_code == 404
    assert client.get(f"/api/publish/assets/{hidden}", headers=analyst.headers).status_code == 200
    put = client.put(f"/api/publish/assets/{hidden}", headers=designer.headers, json={"title": "Mine now"})
    assert put.status_code == 404

    # The console hides it too: not in the project's services, and its page is a 404.
    from tests.console.conftest import signed_in

    console = signed_in(app, designer)
    page = console.get(f"/projects/{project['project_id']}/settings")
    assert page.status_code == 200 and "for-all" in page.get_data(as_text=True)
    assert "analysts-only" not in page.get_data(as_text=True)
    assert console.get(f"/projects/{project['project_id']}/settings/services/{hidden}").status_code == 404
    seen = signed_in(app, analyst).get(f"/projects/{project['project_id']}/settings")
    assert "analysts-only" in seen.get_data(as_text=True)


def test_openapi_describes_the_new_fields_and_routes(client):
    spec = client.get("/api/openapi.json").get_json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    assert "delete" in paths["/api/publish/assets/{asset_id}"]
    assert "patch" in paths["/api/publish/assets/{asset_id}/api-keys/{key_id}"]
    assert "post" in paths["/api/publish/assets/{asset_id}/api-keys/{key_id}/rotate"]
    assert "get" in paths["/api/publish/deleted-assets"]
    for name in ("AssetCreate", "AssetUpdate", "Asset"):
        assert {"theme", "icon", "sort_order", "is_public", "roles"} <= set(schemas[name]["properties"]), name
    assert "key requirement" in schemas["AssetCreate"]["properties"]["is_public"]["description"]
    assert {"icon", "color"} <= set(schemas["ProjectCreate"]["properties"]) and "color" in schemas["Project"][
        "properties"
    ]
    assert "required" not in schemas["KeyUpdate"]  # PATCH: every field optional
    assert schemas["KeyRotate"]["properties"]["grace_seconds"]["maximum"] == 86400
