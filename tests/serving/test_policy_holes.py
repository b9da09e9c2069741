"""Issue 12 regressions through HTTP: masked columns cannot be probed, the result cache follows the rules it was
computed under, row scope holds through joins without physical table names, and the Test pane masks by role."""

from __future__ import annotations

import pytest

from tests.conftest import add_user
from tests.publishing.test_assets import LOOKUP, _create
from tests.serving.test_serving_data import call, mint
from tests.warehouse_tables import create_dataset

BY_EMAIL_LIKE = {
    "id": "email_like",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "email"],
        "filters": [{"column": "email", "op": "like", "param": "email"}],
    },
}
BY_EMAIL_EQ = {
    "id": "email_eq",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "email"],
        "filters": [{"column": "email", "op": "eq", "param": "email"}],
    },
}
BY_EMAIL_RANGE = {
    "id": "email_gt",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "email"],
        "filters": [{"column": "email", "op": "gt", "param": "after"}],
    },
}
SORTED_BY_NAME = {
    "id": "by_name",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "dim_customer"},
        "columns": ["customer_key", "name"],
        "order_by": [{"column": "name", "dir": "asc"}],
    },
}


def _publish(client, admin, project, endpoints, key="sales-serving") -> int:
    created = _create(client, admin, project["project_id"], key=key, endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return asset_id


@pytest.fixture()
def probe_service(app, client, admin, project):
    create_dataset(app, project["project_id"])
    return _publish(client, admin, project, [LOOKUP, BY_EMAIL_LIKE, BY_EMAIL_EQ, BY_EMAIL_RANGE, SORTED_BY_NAME])


# --- item 3: a masked column can be matched exactly, never probed ---------------------------------------------------


def test_masked_column_refuses_like_range_and_sort_but_accepts_eq(client, admin, probe_service):
    masked = mint(client, admin, probe_service, sensitivity_max="high")["key"]  # sees e-mails as gr****@example.com
    probe = call(client, masked, "email_like", query_string={"email": "g%"})
    assert probe.status_code == 400, probe.get_json()
    error = probe.get_json()["error"]
    assert error["code"] == "column_masked" and "email" in error["details"]["fields"]
    assert call(client, masked, "email_gt", query_string={"after": "f"}).status_code == 400
    sort = call(client, masked, "by_name")
    assert sort.status_code == 400 and "order_by[0].column" in sort.get_json()["error"]["message"]

    # eq on a value the caller already knows: the row comes back, still masked.
    known = call(client, masked, "email_eq", query_string={"email": "grace@example.com"})
    assert known.status_code == 200, known.get_json()
    assert known.get_json()["rows"] == [{"customer_key": 3, "email": "gr****@example.com"}]

    # A key that sees the column in clear may filter and sort on it.
    clear = mint(client, admin, probe_service, masking_level="unmasked", sensitivity_max="high")["key"]
    rows = call(client, clear, "email_like", query_string={"email": "g%"}).get_json()["rows"]
    assert rows == [{"customer_key": 3, "email": "grace@example.com"}]
    assert call(client, clear, "by_name").status_code == 200


def test_keys_calling_one_endpoint_in_turn_each_keep_their_own_rules(client, admin, probe_service):
    """One prepared query serves every key of the endpoint; its query templates are per key policy (issue 15): a
    key that sees e-mails in clear going first never lets a masked or blocked key reuse what it was allowed."""
    clear = mint(client, admin, probe_service, masking_level="unmasked", sensitivity_max="high")["key"]
    masked = mint(client, admin, probe_service, sensitivity_max="high")["key"]
    blocked = mint(client, admin, probe_service)["key"]  # medium ceiling: e-mails are [BLOCKED]
    for _ in range(2):
        rows = call(client, clear, "email_like", query_string={"email": "g%"}).get_json()["rows"]
        assert rows == [{"customer_key": 3, "email": "grace@example.com"}]
        probe = call(client, masked, "email_like", query_string={"email": "g%"})
        assert (probe.status_code, probe.get_json()["error"]["code"]) == (400, "column_masked")
        hidden = call(client, blocked, "email_like", query_string={"email": "g%"})
        assert (hidden.status_code, hidden.get_json()["error"]["code"]) == (400, "column_not_permitted")
        known = {"email": "grace@example.com"}
        assert call(client, clear, "email_eq", query_string=known).get_json()["rows"][0]["email"] == known["email"]
        masked_row = call(client, masked, "email_eq", query_string=known).get_json()["rows"][0]
        assert masked_row == {"customer_key": 3, "email": "gr****@example.com"}
        assert call(client, blocked, "email_eq", query_string=known).status_code == 400


def test_test_pane_applies_the_same_probe_rules_by_role(client, admin, probe_service):
    designer = add_user(client, admin, "designer")
    url = f"/api/api-services/{probe_service}/endpoints/email_like/test"
    assert client.post(url, headers=designer.headers, json={"email": "g%"}).status_code == 400
    admin_run = client.post(url, headers=admin.headers, json={"email": "g%"})
    assert admin_run.status_code == 200 and admin_run.get_json()["rows"][0]["email"] == "grace@example.com"


# --- item 8: the Test pane masks by the caller's role ---------------------------------------------------------------


def test_test_pane_masks_by_the_callers_role(client, admin, project, probe_service):
    designer = add_user(client, admin, "designer")
    url = f"/api/api-services/{probe_service}/endpoints/customer/test"
    row = client.post(url, headers=designer.headers, json={"id": 3}).get_json()["rows"][0]
    assert row["ssn"] == "[BLOCKED]" and row["email"] == "gr****@example.com" and row["name"] != "Grace Hopper"
    preview = client.get(
        "/api/datasets/marts.dim_customer/preview", headers=designer.project_headers(project["project_id"])
    ).get_json()
    assert next(r for r in preview["rows"] if r["customer_key"] == 3)["ssn"] == row["ssn"]
    raw = client.post(url, headers=admin.headers, json={"id": 3}).get_json()["rows"][0]
    assert raw["ssn"] == "333-44-5555" and raw["email"] == "grace@example.com"


def test_console_test_pane_masks_by_the_callers_role(app, client, admin, project, probe_service):
    from tests.console.conftest import signed_in

    console = signed_in(app, add_user(client, admin, "designer"))
    answer = console.post_json(
        f"/projects/{project['project_id']}/settings/services/{probe_service}/test",
        {"endpoint_id": "customer", "body": {"id": 3}},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["status"] == 200, body
    assert body["body"]["rows"][0]["ssn"] == "[BLOCKED]"


# --- item 4: a cached answer never outlives the rules it was computed under ----------------------------------------


def test_settings_change_makes_cached_answers_unreachable(client, admin, project, probe_service):
    key = mint(client, admin, probe_service)["key"]  # masked, medium ceiling: names are masked
    first = call(client, key, "customer", query_string={"id": "2"})
    second = call(client, key, "customer", query_string={"id": "2"})
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.get_json()["rows"][0]["name"] == "Al****"

    settings = client.put(
        "/api/datasets/marts.dim_customer/settings",
        headers=admin.project_headers(project["project_id"]),
        json={"masking": {"name": {"sensitivity": "critical"}}},
    )
    assert settings.status_code == 200, settings.get_json()
    after = call(client, key, "customer", query_string={"id": "2"})
    assert after.headers["X-Cache"] == "MISS"
    assert after.get_json()["rows"][0]["name"] == "[BLOCKED]"


def test_replacing_a_datasets_data_makes_cached_answers_unreachable(client, admin, project):
    headers = admin.project_headers(project["project_id"])

    def upload(content: str, **form):
        import io

        return client.post(
            "/api/datasets/file/upload",
            headers=headers,
            data={"file": (io.BytesIO(content.encode()), "people.csv"), "name": "uploads.people", **form},
            content_type="multipart/form-data",
        )

    assert upload("person_id,plan\n1,basic\n2,premium\n").status_code == 201
    lookup = {"id": "person", "kind": "lookup", "dataset": "uploads.people", "key_column": "person_id"}
    asset_id = _publish(client, admin, project, [lookup], key="people-serving")
    key = mint(client, admin, asset_id)["key"]

    def person(pid: str):
        return client.get(f"/api/service/people-serving/person?id={pid}", headers={"X-API-Key": key})

    assert person("1").headers["X-Cache"] == "MISS"
    hit = person("1")
    assert hit.headers["X-Cache"] == "HIT" and hit.get_json()["rows"][0]["plan"] == "basic"
    assert upload("person_id,plan\n1,gold\n2,premium\n", replace="true").status_code == 201
    fresh = person("1")
    assert fresh.headers["X-Cache"] == "MISS" and fresh.get_json()["rows"][0]["plan"] == "gold"


def test_other_organizations_cache_survives_a_dataset_change(app, client, admin, project, probe_service):
    """The invalidation is scoped: only the organization whose dataset changed loses its cached answers."""
    from tests.conftest import sign_up

    key = mint(client, admin, probe_service)["key"]
    call(client, key, "customer", query_string={"id": "1"})
    assert call(client, key, "customer", query_string={"id": "1"}).headers["X-Cache"] == "HIT"
    other = sign_up(client)
    other_project = client.post("/api/projects", headers=other.headers, json={"name": "O", "slug": "o"}).get_json()
    create_dataset(app, other_project["project_id"])
    resp = client.put(
        "/api/datasets/marts.dim_customer/settings",
        headers=other.project_headers(other_project["project_id"]),
        json={"masking": {"name": {"sensitivity": "critical"}}},
    )
    assert resp.status_code == 200, resp.get_json()
    assert call(client, key, "customer", query_string={"id": "1"}).headers["X-Cache"] == "HIT"


# --- item 6: row scope on every joined table; dataset names, never physical tables ----------------------------------

ACCOUNTS = [
    {"customer_key": 1, "region": "EU", "plan": "basic"},
    {"customer_key": 2, "region": "US", "plan": "premium"},
]
ORDERS = [
    {"order_id": "o1", "customer_key": 1, "region": "EU", "status": "paid"},
    {"order_id": "o2", "customer_key": 1, "region": "US", "status": "paid"},  # an EU account's order booked in the US
    {"order_id": "o3", "customer_key": 2, "region": "US", "status": "open"},
]
JOINED = {
    "id": "joined",
    "kind": "sql",
    "query": {
        "source": {"schema": "marts", "table": "accounts"},
        "joins": [{"schema": "marts", "table": "orders", "on": [{"left": "customer_key", "right": "customer_key"}]}],
        "filters": [{"column": "orders.status", "op": "eq", "param": "status"}],
        "order_by": [{"column": "orders.order_id", "dir": "asc"}],
    },
}


@pytest.fixture()
def joined_service(app, client, admin, project):
    create_dataset(app, project["project_id"], "marts.accounts", ACCOUNTS)
    create_dataset(app, project["project_id"], "marts.orders", ORDERS)
    return _publish(client, admin, project, [JOINED], key="joined-serving")


def test_row_scope_applies_to_every_joined_table(client, admin, joined_service):
    eu = mint(client, admin, joined_service, row_scope={"region": ["EU"]})["key"]
    resp = client.get("/api/service/joined-serving/joined", headers={"X-API-Key": eu})
    assert resp.status_code == 200, resp.get_json()
    rows = resp.get_json()["rows"]
    assert [r["order_id"] for r in rows] == ["o1"]
    assert {r["region"] for r in rows} == {"EU"} and {r["orders__region"] for r in rows} == {"EU"}


def test_joined_output_names_and_errors_never_show_physical_tables(client, admin, project, joined_service):
    key = mint(client, admin, joined_service)["key"]
    resp = client.get("/api/service/joined-serving/joined?status=paid", headers={"X-API-Key": key})
    assert resp.status_code == 200, resp.get_json()
    names = set(resp.get_json()["rows"][0])
    assert "orders__region" in names and not any(n.startswith("p") and "__" in n for n in names), names
    assert [r["order_id"] for r in resp.get_json()["rows"]] == ["o1", "o2"]

    bad = {**JOINED, "query": {**JOINED["query"], "filters": [{"column": "orders.nope", "op": "eq", "param": "x"}]}}
    refused = client.put(
        f"/api/publish/assets/{joined_service}", headers=admin.headers, json={"config": {"endpoints": [bad]}}
    )
    assert refused.status_code == 422
    message = refused.get_json()["error"]["message"]
    assert "marts.orders" in message and f"p{project['project_id']}__" not in message, message

    aliased = {
        **JOINED,
        "query": {
            **JOINED["query"],
            "joins": [{**JOINED["query"]["joins"][0], "alias": "o"}],
            "filters": [],
            "order_by": [{"column": "o.order_id", "dir": "asc"}],
        },
    }
    saved = client.put(
        f"/api/publish/assets/{joined_service}", headers=admin.headers, json={"config": {"endpoints": [aliased]}}
    )
    assert saved.status_code == 200, saved.get_json()
    dry = client.get(f"/api/api-services/{joined_service}/endpoints/joined/test", headers=admin.headers)
    assert dry.status_code == 200, dry.get_json()
    assert "o__region" in dry.get_json()["rows"][0]


def test_changing_a_keys_policy_never_reaches_its_old_cached_answers(app, client, admin, probe_service):
    """What a key update (PATCH) writes: the policy fingerprint is part of the cache key, so the next call misses."""
    from app.db import ApiKey
    from app.extensions import db

    minted = mint(client, admin, probe_service)
    call(client, minted["key"], "customer", query_string={"id": "2"})
    hit = call(client, minted["key"], "customer", query_string={"id": "2"})
    assert hit.headers["X-Cache"] == "HIT" and hit.get_json()["rows"][0]["name"] == "Al****"
    from app.keys.service import bump_serving_generation

    with app.app_context():
        db.session.get(ApiKey, minted["id"]).sensitivity_max = "low"
        db.session.commit()
        bump_serving_generation()  # as a key update does: keys are cached per process (issue 15)
    after = call(client, minted["key"], "customer", query_string={"id": "2"})
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["rows"][0]["name"] == "[BLOCKED]"
