"""Dataset settings: friendly name, description and masking overrides; only org admins change them."""

from __future__ import annotations

import pytest

from tests.conftest import add_user

PEOPLE = "id,email,full_name,ssn,region\n1,ada@example.com,Ada Lovelace,111-22-3333,EU\n"


@pytest.fixture()
def people(upload) -> str:
    resp = upload(PEOPLE, name="people", friendly_name="People", description="Everyone")
    assert resp.status_code == 201, resp.get_json()
    return "/api/datasets/uploads.people"


def test_get_settings_and_partial_put(client, admin, project, people):
    headers = admin.project_headers(project["project_id"])
    assert client.get(f"{people}/settings", headers=headers).get_json() == {
        "friendly_name": "People",
        "description": "Everyone",
        "masking": {},
    }
    put = client.put(f"{people}/settings", headers=headers, json={"description": "Customers and staff"})
    assert put.status_code == 200, put.get_json()
    assert put.get_json() == {"friendly_name": "People", "description": "Customers and staff", "masking": {}}

    masking = {"region": {"sensitivity": "high"}, "ssn": {"strategy": "redact"}}
    put = client.put(f"{people}/settings", headers=headers, json={"masking": masking})
    assert put.get_json()["masking"] == masking
    assert put.get_json()["description"] == "Customers and staff"

    detail = client.get(people, headers=headers).get_json()
    assert detail["masking"] == masking
    effective = {c["name"]: (c["sensitivity"], c["strategy"]) for c in detail["columns"]}
    assert effective == {
        "id": ("low", "none"),
        "email": ("high", "partial"),
        "full_name": ("medium", "partial"),
        "ssn": ("critical", "redact"),
        "region": ("high", "partial"),
    }
    assert detail["row_count"] == 1 and detail["source"] == "upload"
    assert detail["created_at"] and detail["updated_at"]

    cleared = client.put(f"{people}/settings", headers=headers, json={"masking": {"region": None, "ssn": None}})
    assert cleared.get_json()["masking"] == {}


def test_masking_errors_name_the_column_and_key(client, admin, project, people):
    headers = admin.project_headers(project["project_id"])
    cases = {
        "masking.email.strategy": {"email": {"strategy": "scramble"}},
        "masking.email.sensitivity": {"email": {"sensitivity": "secret"}},
        "masking.email.colour": {"email": {"colour": "red"}},
        "masking.nope": {"nope": {"strategy": "full"}},
        "masking.ssn": {"ssn": "full"},
    }
    for field, masking in cases.items():
        resp = client.put(f"{people}/settings", headers=headers, json={"masking": masking})
        assert resp.status_code == 422, (field, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], resp.get_json()
    not_object = client.put(f"{people}/settings", headers=headers, json={"masking": ["email"]})
    assert not_object.status_code == 422
    assert "masking" in not_object.get_json()["error"]["details"]["fields"]
    too_long = client.put(f"{people}/settings", headers=headers, json={"friendly_name": "x" * 201})
    assert "friendly_name" in too_long.get_json()["error"]["details"]["fields"]
    # Nothing of the refused bodies was written.
    assert client.get(f"{people}/settings", headers=headers).get_json()["masking"] == {}


def test_only_org_admins_change_settings(client, admin, project, people):
    designer = add_user(client, admin, "designer")
    headers = designer.project_headers(project["project_id"])
    assert client.get(f"{people}/settings", headers=headers).status_code == 200
    denied = client.put(f"{people}/settings", headers=headers, json={"description": "mine now"})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "permission_denied"
    assert client.get(f"{people}/settings", headers=headers).get_json()["description"] == "Everyone"
    missing = client.put(
        "/api/datasets/uploads.nothing/settings",
        headers=admin.project_headers(project["project_id"]),
        json={"description": "x"},
    )
    assert missing.status_code == 404


def test_a_put_with_two_mistakes_reports_both(client, admin, project, people):
    headers = admin.project_headers(project["project_id"])
    bad = client.put(
        f"{people}/settings",
        headers=headers,
        json={"friendly_name": "x" * 1000, "masking": {"nope": {"strategy": "redact"}}},
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["details"]["fields"]) == {"friendly_name", "masking.nope"}
    assert client.get(f"{people}/settings", headers=headers).get_json()["friendly_name"] == "People"


def test_masking_put_merges_per_column(client, admin, project, people):
    """Probe finding 6: a PUT with one column's masking dropped every other override (a column protected only by an
    override fell back to `low`, unmasked). Now the columns sent replace theirs, the others stay, null removes one."""
    headers = admin.project_headers(project["project_id"])
    designer = add_user(client, admin, "designer")
    preview = f"{people}/preview"

    def region_seen_by_designer():
        return client.get(preview, headers=designer.project_headers(project["project_id"])).get_json()["rows"][0][
            "region"
        ]

    assert region_seen_by_designer() == "EU"  # low by name: served as stored
    first = client.put(
        f"{people}/settings",
        headers=headers,
        json={"masking": {"region": {"sensitivity": "critical", "strategy": "full"}}},
    )
    assert first.status_code == 200, first.get_json()
    assert region_seen_by_designer() != "EU"

    second = client.put(f"{people}/settings", headers=headers, json={"masking": {"ssn": {"strategy": "redact"}}})
    assert second.status_code == 200, second.get_json()
    both = {"region": {"sensitivity": "critical", "strategy": "full"}, "ssn": {"strategy": "redact"}}
    assert second.get_json()["masking"] == both
    assert client.get(f"{people}/settings", headers=headers).get_json()["masking"] == both
    assert region_seen_by_designer() != "EU"  # still protected

    # A column sent replaces that column's override as a whole.
    third = client.put(f"{people}/settings", headers=headers, json={"masking": {"region": {"sensitivity": "high"}}})
    assert third.get_json()["masking"] == {"region": {"sensitivity": "high"}, "ssn": {"strategy": "redact"}}

    # null removes one column's override (automatic classification again); the others stay.
    fourth = client.put(f"{people}/settings", headers=headers, json={"masking": {"region": None}})
    assert fourth.status_code == 200, fourth.get_json()
    assert fourth.get_json()["masking"] == {"ssn": {"strategy": "redact"}}
    assert region_seen_by_designer() == "EU"

    # {} changes nothing; an unknown column, even with null, is still a 422 and nothing is written.
    assert client.put(f"{people}/settings", headers=headers, json={"masking": {}}).get_json()["masking"] == {
        "ssn": {"strategy": "redact"}
    }
    bad = client.put(f"{people}/settings", headers=headers, json={"masking": {"ssn": None, "nope": None}})
    assert bad.status_code == 422
    assert "masking.nope" in bad.get_json()["error"]["details"]["fields"]
    assert client.get(f"{people}/settings", headers=headers).get_json()["masking"] == {"ssn": {"strategy": "redact"}}


def test_merged_masking_reaches_keyed_calls_and_their_cache(app, client, admin, project):
    """Through serving: an override survives a PUT for another column, and removing one with null takes effect at
    once (the cached answer computed under the old rules is not served)."""
    from tests.publishing.test_assets import LOOKUP, _create
    from tests.serving.test_serving_data import call, mint
    from tests.warehouse_tables import create_dataset

    create_dataset(app, project["project_id"])
    created = _create(client, admin, project["project_id"], key="sales-serving", endpoints=[LOOKUP])
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    key = mint(client, admin, asset_id)["key"]  # masked, medium ceiling
    settings = "/api/datasets/marts.dim_customer/settings"
    headers = admin.project_headers(project["project_id"])

    def name_served():
        resp = call(client, key, "customer", query_string={"id": "2"})
        assert resp.status_code == 200, resp.get_json()
        return resp.headers["X-Cache"], resp.get_json()["rows"][0]["name"]

    assert name_served() == ("MISS", "Al****")
    assert name_served() == ("HIT", "Al****")
    assert (
        client.put(settings, headers=headers, json={"masking": {"name": {"sensitivity": "critical"}}}).status_code
        == 200
    )
    assert name_served() == ("MISS", "[BLOCKED]")
    other = client.put(settings, headers=headers, json={"masking": {"email": {"strategy": "hash"}}})
    assert other.get_json()["masking"] == {"name": {"sensitivity": "critical"}, "email": {"strategy": "hash"}}
    assert name_served()[1] == "[BLOCKED]"  # before: the name's override was dropped and the name served masked only
    assert client.put(settings, headers=headers, json={"masking": {"name": None}}).status_code == 200
    assert name_served() == ("MISS", "Al****")
