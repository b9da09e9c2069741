"""Projects: create, list, fetch by id or slug, and isolation between organizations."""

from tests.conftest import add_user, sign_up


def test_create_list_get(client, admin, project):
    assert project["slug"] == "sales" and isinstance(project["project_id"], int)
    items = client.get("/api/projects", headers=admin.headers).get_json()["items"]
    assert [(p["project_id"], p["slug"], p["name"]) for p in items] == [(project["project_id"], "sales", "Sales")]
    for ref in (project["project_id"], "sales"):
        assert client.get(f"/api/projects/{ref}", headers=admin.headers).get_json()["name"] == "Sales"


def test_duplicate_slug_is_409(client, admin, project):
    resp = client.post("/api/projects", headers=admin.headers, json={"name": "Again", "slug": "sales"})
    assert resp.status_code == 409


def test_other_organization_sees_404_and_empty_list(client, admin, project):
    other = sign_up(client)
    assert client.get(f"/api/projects/{project['project_id']}", headers=other.headers).status_code == 404
    assert client.get("/api/projects/sales", headers=other.headers).status_code == 404
    assert client.get("/api/projects", headers=other.headers).get_json()["items"] == []
    # The same slug is free in another organization.
    assert client.post("/api/projects", headers=other.headers, json={"name": "S", "slug": "sales"}).status_code == 201


def test_viewer_can_list_but_not_create(client, admin, project):
    viewer = add_user(client, admin, "viewer")
    assert len(client.get("/api/projects", headers=viewer.headers).get_json()["items"]) == 1
    resp = client.post("/api/projects", headers=viewer.headers, json={"name": "X", "slug": "x"})
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "permission_denied"


def test_bad_slug_names_the_field(client, admin):
    resp = client.post("/api/projects", headers=admin.headers, json={"name": "X", "slug": "Not A Slug!"})
    assert resp.status_code == 422
    assert list(resp.get_json()["error"]["details"]["fields"]) == ["slug"]


def test_out_of_range_ids_are_404_not_500(client, admin, project):
    # Larger than any stored id (PostgreSQL INTEGER): not found, never a database overflow.
    for ref in ("2147483648", "999999999999999999999", "1" * 400, "\u00b2"):
        assert client.get(f"/api/projects/{ref}", headers=admin.headers).status_code == 404, ref
        resp = client.get("/api/datasets", headers={**admin.headers, "X-Project-Id": ref})
        assert resp.status_code in (400, 404), (ref, resp.get_json())
        if resp.status_code == 400:
            assert "X-Project-Id" in resp.get_json()["error"]["details"]["fields"]


def test_project_header_takes_the_slug(client, admin, project):
    """X-Project-Id accepts the slug as /api/projects/{id_or_slug} does; another organization's slug is a 404."""
    by_slug = client.get("/api/datasets", headers={**admin.headers, "X-Project-Id": "sales"})
    by_id = client.get("/api/datasets", headers=admin.project_headers(project["project_id"]))
    assert by_slug.status_code == 200 and by_slug.get_json() == by_id.get_json()
    models = client.get("/api/models", headers={**admin.headers, "X-Project-Id": " sales "})
    assert models.status_code == 200 and models.get_json() == {"models": []}
    assert client.get("/api/datasets", headers={**admin.headers, "X-Project-Id": "nope"}).status_code == 404
    other = sign_up(client)
    assert client.get("/api/datasets", headers={**other.headers, "X-Project-Id": "sales"}).status_code == 404
