"""Probe findings 1 and 3 through HTTP: a non-admin's saved config cannot filter, join, sort or look up on a column
their role sees masked or blocked, and a join on a column the caller sees masked is refused when it runs (serving
and Test pane): a join condition would check a whole table of guesses at once."""

from __future__ import annotations

import pytest

from tests.conftest import add_user
from tests.publishing.test_assets import LOOKUP, _create
from tests.serving.test_serving_data import call, mint
from tests.warehouse_tables import create_dataset

GUESSES = [{"guess_id": i, "g": g} for i, g in enumerate(["nobody@example.com", "grace@example.com", "Alan Turing"])]
CUSTOMERS = {"schema": "marts", "table": "dim_customer"}


def _sql(endpoint_id: str, **query) -> dict:
    return {"id": endpoint_id, "kind": "sql", "query": {"source": CUSTOMERS, **query}}


def _join(endpoint_id: str, column: str) -> dict:
    return _sql(
        endpoint_id,
        columns=["customer_key", column],
        joins=[
            {
                "type": "inner",
                "schema": "marts",
                "table": "guesses",
                "on": [{"left": column, "right": "g"}],
                "columns": ["g"],
            }
        ],
    )


JOIN_EMAIL, JOIN_NAME = _join("by_email", "email"), _join("by_name", "name")


@pytest.fixture()
def tables(app, project):
    create_dataset(app, project["project_id"])
    create_dataset(app, project["project_id"], "marts.guesses", GUESSES)


def _error_fields(resp) -> dict:
    return resp.get_json()["error"]["details"]["fields"]


# --- finding 1: fixed filters, joins, sorting and lookup keys in a non-admin's config ---------------------------------

PROBES = [
    (
        _sql(
            "q",
            columns=["customer_key", "ssn"],
            filters=[
                {"column": "customer_key", "op": "eq", "value": 3},
                {"column": "ssn", "op": "like", "value": "333-%"},
            ],
        ),
        "config.endpoints[0].query.filters[1].column",
    ),
    (
        _sql("q", columns=["customer_key"], filters=[{"column": "email", "op": "gt", "value": "g"}]),
        "config.endpoints[0].query.filters[0].column",
    ),
    (
        _sql("q", columns=["customer_key"], order_by=[{"column": "name", "dir": "asc"}]),
        "config.endpoints[0].query.order_by[0].column",
    ),
    (JOIN_EMAIL, "config.endpoints[0].query.joins[0].on[0].left"),
    ({**LOOKUP, "key_column": "email"}, "config.endpoints[0].key_column"),
]


@pytest.mark.parametrize(("endpoint", "field"), PROBES)
def test_a_designer_cannot_save_a_config_that_probes_masked_columns(client, admin, project, tables, endpoint, field):
    pid = project["project_id"]
    asset_id = _create(client, admin, pid).get_json()["id"]
    designer = add_user(client, admin, "designer")

    edit = client.put(
        f"/api/publish/assets/{asset_id}",
        headers=designer.headers,
        json={"config": {"endpoints": [endpoint]}, "change_note": "x"},
    )
    assert edit.status_code == 403, edit.get_json()
    assert field in _error_fields(edit), edit.get_json()
    draft = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    assert draft["config"]["endpoints"][0]["id"] == "customer"  # nothing written

    created = _create(client, designer, pid, key="designer-svc", endpoints=[endpoint])
    assert created.status_code == 403 and field in _error_fields(created), created.get_json()

    # An org admin sees every value in clear and may save the same config.
    saved = client.put(
        f"/api/publish/assets/{asset_id}", headers=admin.headers, json={"config": {"endpoints": [endpoint]}}
    )
    assert saved.status_code == 200, saved.get_json()


def test_a_designer_still_saves_low_fixed_filters_and_caller_params(client, admin, project, tables):
    pid = project["project_id"]
    designer = add_user(client, admin, "designer")
    endpoints = [
        LOOKUP,
        _sql(
            "eu",
            columns=["customer_key", "name"],
            filters=[{"column": "region", "op": "eq", "value": "EU"}],
            order_by=[{"column": "tenure", "dir": "desc"}],
        ),
        # A param is the caller's choice: its operator is checked against the calling key (only eq when masked).
        _sql("by_mail", columns=["customer_key"], filters=[{"column": "email", "op": "eq", "param": "email"}]),
    ]
    created = _create(client, designer, pid, key="designer-svc", endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    test = client.get(f"/api/api-services/{asset_id}/endpoints/eu/test", headers=designer.headers)
    assert test.status_code == 200 and [r["customer_key"] for r in test.get_json()["rows"]] == [1, 4, 2]

    # An endpoint an admin saved stays as it is while the designer edits the others.
    admin_endpoint = _sql("ssn", columns=["customer_key"], filters=[{"column": "ssn", "op": "like", "value": "3%"}])
    put = client.put(
        f"/api/publish/assets/{asset_id}",
        headers=admin.headers,
        json={"config": {"endpoints": [*endpoints, admin_endpoint]}},
    )
    assert put.status_code == 200, put.get_json()
    kept = client.put(
        f"/api/publish/assets/{asset_id}",
        headers=designer.headers,
        json={"config": {"endpoints": [LOOKUP, admin_endpoint]}},
    )
    assert kept.status_code == 200, kept.get_json()
    changed = {
        **admin_endpoint,
        "query": {**admin_endpoint["query"], "filters": [{"column": "ssn", "op": "like", "value": "33%"}]},
    }
    refused = client.put(
        f"/api/publish/assets/{asset_id}", headers=designer.headers, json={"config": {"endpoints": [LOOKUP, changed]}}
    )
    assert refused.status_code == 403
    assert "config.endpoints[1].query.filters[0].column" in _error_fields(refused)


def test_a_designers_data_api_query_is_held_to_the_same_rule(client, admin, project, tables):
    designer = add_user(client, admin, "designer")
    query = {"source": CUSTOMERS, "columns": ["customer_key"], "filters": [{"column": "ssn", "op": "gt", "value": "3"}]}
    body = {"asset_type": "data_api", "asset_key": "d-api", "title": "D", "config": query}
    resp = client.post("/api/publish/assets", headers=designer.project_headers(project["project_id"]), json=body)
    assert resp.status_code == 403, resp.get_json()
    assert "config.filters[0].column" in _error_fields(resp)


# --- finding 3: a join on a column the caller sees masked checks many guesses at once ---------------------------------


@pytest.fixture()
def join_service(client, admin, project, tables):
    created = _create(client, admin, project["project_id"], endpoints=[JOIN_EMAIL, JOIN_NAME])
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return asset_id


def test_a_join_on_a_masked_column_is_refused_when_served(client, admin, join_service):
    masked = mint(client, admin, join_service, sensitivity_max="high")["key"]  # sees e-mails as gr****@example.com
    probe = call(client, masked, "by_email")
    assert probe.status_code == 400, probe.get_json()
    assert probe.get_json()["error"]["code"] == "column_masked"
    assert any(f.endswith("joins[0].on[0].left") for f in _error_fields(probe)), probe.get_json()
    by_name = call(client, mint(client, admin, join_service)["key"], "by_name")  # default key: names masked
    assert by_name.status_code == 400 and by_name.get_json()["error"]["code"] == "column_masked"

    clear = mint(client, admin, join_service, masking_level="unmasked", sensitivity_max="high")["key"]
    rows = call(client, clear, "by_email").get_json()["rows"]
    assert rows == [{"customer_key": 3, "email": "grace@example.com", "g": "grace@example.com"}]


def test_a_join_on_a_masked_column_is_refused_in_the_test_pane(client, admin, join_service):
    designer = add_user(client, admin, "designer")
    url = f"/api/api-services/{join_service}/endpoints/by_name/test"
    refused = client.post(url, headers=designer.headers, json={})
    assert refused.status_code == 400, refused.get_json()
    assert any(f.endswith("joins[0].on[0].left") for f in _error_fields(refused)), refused.get_json()
    allowed = client.post(url, headers=admin.headers, json={})
    assert allowed.status_code == 200 and allowed.get_json()["rows"][0]["g"] == "Alan Turing"
