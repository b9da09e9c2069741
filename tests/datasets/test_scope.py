"""Datasets belong to one project: other projects and other organizations never see them."""

from __future__ import annotations

from tests.conftest import sign_up


def test_datasets_are_invisible_outside_their_project(client, admin, project, upload):
    assert upload("id,v\n1,from_a\n", name="shared_name").status_code == 201
    other = client.post("/api/projects", headers=admin.headers, json={"name": "Other", "slug": "other"}).get_json()
    other_headers = admin.project_headers(other["project_id"])

    assert client.get("/api/datasets/uploads.shared_name", headers=other_headers).status_code == 404
    assert client.get("/api/datasets/uploads.shared_name/preview", headers=other_headers).status_code == 404
    assert client.get("/api/datasets/uploads.shared_name/settings", headers=other_headers).status_code == 404
    assert client.get("/api/datasets", headers=other_headers).get_json() == {"items": []}

    # The same name in another project is another table.
    assert upload("id,v\n2,from_b\n3,from_b\n", name="shared_name", headers=other_headers).status_code == 201
    rows_a = client.get(
        "/api/datasets/uploads.shared_name/preview", headers=admin.project_headers(project["project_id"])
    ).get_json()["rows"]
    rows_b = client.get("/api/datasets/uploads.shared_name/preview", headers=other_headers).get_json()["rows"]
    assert rows_a == [{"id": 1, "v": "from_a"}]
    assert rows_b == [{"id": 2, "v": "from_b"}, {"id": 3, "v": "from_b"}]


def test_another_organization_sees_nothing(client, admin, project, upload):
    assert upload("id\n1\n", name="private").status_code == 201
    stranger = sign_up(client)
    theirs = client.post("/api/projects", headers=stranger.headers, json={"name": "S", "slug": "s"}).get_json()

    # Naming our project id: the project itself is not found for them.
    ours = stranger.project_headers(project["project_id"])
    assert client.get("/api/datasets", headers=ours).status_code == 404
    assert client.get("/api/datasets/uploads.private", headers=ours).status_code == 404
    assert (
        client.put("/api/datasets/uploads.private/settings", headers=ours, json={"description": "x"}).status_code == 404
    )
    # In their own project the name means nothing.
    own = stranger.project_headers(theirs["project_id"])
    assert client.get("/api/datasets/uploads.private", headers=own).status_code == 404
    assert client.get("/api/datasets", headers=own).get_json() == {"items": []}


def test_every_route_needs_the_project_header(client, admin, project, upload):
    assert upload("id\n1\n", name="needs_header").status_code == 201
    calls = [
        ("get", "/api/datasets", None),
        ("get", "/api/datasets/uploads.needs_header", None),
        ("get", "/api/datasets/uploads.needs_header/settings", None),
        ("put", "/api/datasets/uploads.needs_header/settings", {"description": "x"}),
        ("get", "/api/datasets/uploads.needs_header/preview", None),
        ("post", "/api/flow/datasets/register", {"schema": "uploads", "table": "x"}),
    ]
    for method, url, body in calls:
        resp = getattr(client, method)(url, headers=admin.headers, json=body)
        assert resp.status_code == 400, (url, resp.get_json())
        assert "X-Project-Id" in resp.get_json()["error"]["details"]["fields"]
