"""Previews: at most 100 rows, masked for the caller's role."""

from __future__ import annotations

import pytest

from tests.conftest import add_user

PEOPLE = "id,email,full_name,ssn\n1,ada@example.com,Ada Lovelace,111-22-3333\n2,alan@example.com,Alan Turing,\n"


@pytest.fixture()
def people(upload) -> str:
    assert upload(PEOPLE, name="people").status_code == 201
    return "/api/datasets/uploads.people/preview"


def test_preview_is_masked_by_role(client, admin, project, people):
    pid = project["project_id"]
    as_admin = client.get(people, headers=admin.project_headers(pid)).get_json()
    assert as_admin["masked"] is False
    assert as_admin["rows"][0] == {
        "id": 1,
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "ssn": "111-22-3333",
    }

    for role in ("designer", "analyst"):
        user = add_user(client, admin, role)
        body = client.get(people, headers=user.project_headers(pid)).get_json()
        assert body["masked"] is True
        assert body["rows"] == [
            {"id": 1, "email": "ad****@example.com", "full_name": "Ad****", "ssn": "[BLOCKED]"},
            {"id": 2, "email": "al****@example.com", "full_name": "Al****", "ssn": "[BLOCKED]"},
        ], role

    viewer = add_user(client, admin, "viewer")
    rows = client.get(people, headers=viewer.project_headers(pid)).get_json()["rows"]
    assert rows[0] == {"id": 1, "email": "[BLOCKED]", "full_name": "Ad****", "ssn": "[BLOCKED]"}


def test_masking_overrides_apply_to_previews(client, admin, project, people):
    pid = project["project_id"]
    put = client.put(
        "/api/datasets/uploads.people/settings",
        headers=admin.project_headers(pid),
        json={
            "masking": {
                "ssn": {"sensitivity": "medium", "strategy": "full"},
                "email": {"strategy": "none", "sensitivity": "low"},
            }
        },
    )
    assert put.status_code == 200, put.get_json()
    viewer = add_user(client, admin, "viewer")
    rows = client.get(people, headers=viewer.project_headers(pid)).get_json()["rows"]
    assert rows[0] == {"id": 1, "email": "ada@example.com", "full_name": "Ad****", "ssn": "***"}
    assert rows[1]["ssn"] is None  # an empty cell stays null under every strategy


def test_preview_returns_at_most_100_rows_and_checks_limit(client, admin, project, upload):
    csv = "n\n" + "".join(f"{i}\n" for i in range(150))
    assert upload(csv, name="numbers").status_code == 201
    url, headers = "/api/datasets/uploads.numbers/preview", admin.project_headers(project["project_id"])
    default = client.get(url, headers=headers).get_json()
    assert default["count"] == 100 and len(default["rows"]) == 100 and default["limit"] == 100
    assert client.get(f"{url}?limit=100", headers=headers).get_json()["count"] == 100
    assert client.get(f"{url}?limit=1", headers=headers).get_json()["rows"] == [{"n": 0}]
    for bad in ("0", "101", "-1", "ten", ""):
        resp = client.get(f"{url}?limit={bad}", headers=headers)
        assert resp.status_code == 400, (bad, resp.get_json())
        assert "limit" in resp.get_json()["error"]["details"]["fields"]


def test_preview_of_an_unknown_dataset_is_404(client, admin, project):
    resp = client.get("/api/datasets/uploads.nothing/preview", headers=admin.project_headers(project["project_id"]))
    assert resp.status_code == 404
