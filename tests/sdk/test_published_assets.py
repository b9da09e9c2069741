"""Issue 11 in the SDK against a live server: the new fields, add_endpoint replacing, key update and rotation,
asset delete, and the DataAPI handle sharing PublishedAsset with APIService."""

from __future__ import annotations

import time

import pytest

import apiary
from apiary import lookup_endpoint, sql_endpoint

TOP = sql_endpoint(
    "top",
    {
        "source": {"schema": "marts", "table": "customers"},
        "columns": ["customer_key", "plan"],
        "order_by": [{"column": "customer_key", "dir": "asc"}],
    },
)
CUSTOMER = lookup_endpoint("customer", "marts.customers", "customer_key", columns=["customer_key", "plan"])


@pytest.fixture()
def customers(api, churn_csv) -> apiary.Project:
    project = api.create_project("Sales", "sales", icon="folder", color="#B45309")
    project.upload_file("marts.customers", churn_csv)
    return project


def test_new_fields_round_trip(api, customers):
    assert (customers.icon, customers.color) == ("folder", "#B45309")
    again = api.get_project("sales")
    assert (again.icon, again.color) == ("folder", "#B45309")

    svc = customers.create_api_service(
        "honey",
        "Honey",
        [CUSTOMER],
        theme={"accent": "#B45309"},
        roles=["analyst"],
        is_public=False,
        icon="hexagon",
        sort_order=2,
    )
    assert isinstance(svc, apiary.PublishedAsset) and svc.asset_type == "api_service"
    assert (svc.theme, svc.roles, svc.is_public, svc.icon, svc.sort_order) == (
        {"accent": "#B45309"},
        ["analyst"],
        False,
        "hexagon",
        2,
    )
    first = customers.create_api_service("alpha", "Alpha", [CUSTOMER], sort_order=1)
    assert [a.asset_key for a in api.list_assets()] == ["alpha", "honey"]
    svc.update(sort_order=0, roles=[], theme={})
    assert [a.asset_key for a in api.list_assets("api_service")] == ["honey", "alpha"]
    fetched = api.get_asset(svc.id)
    assert isinstance(fetched, apiary.APIService) and fetched.roles == [] and fetched.icon == "hexagon"
    with pytest.raises(apiary.ValidationError) as bad:
        first.update(roles=["owner"])
    assert "roles" in str(bad.value.details) and "owner" in str(bad.value.details)
    with pytest.raises(apiary.ValidationError):
        api.create_project("Bad", "bad", color="orange")


def test_add_endpoint_replaces_an_endpoint_with_the_same_id(customers):
    svc = customers.create_api_service("sales-serving", "Sales", [CUSTOMER, TOP])
    changed = {**TOP, "query": {**TOP["query"], "columns": ["customer_key"]}}
    svc.add_endpoint(changed)
    assert [e["id"] for e in svc.endpoints] == ["customer", "top"]
    assert svc.endpoints[1]["query"]["columns"] == ["customer_key"]
    svc.add_endpoint(changed, publish=True)  # running the same script twice is not an error
    assert svc.status == "published" and len(svc.endpoints) == 2


def test_update_and_rotate_keys(customers):
    svc = customers.create_api_service("sales-serving", "Sales", [CUSTOMER, TOP], publish=True)
    key = svc.create_key("app", rate_limit=1000)
    assert svc.call("top", api_key=key, method="GET")["count"] == 100  # the default page

    narrowed = svc.update_key(key, allowed_endpoints=["customer"], row_scope={"plan": ["basic"]}, name="narrow")
    assert narrowed.key is None and narrowed.name == "narrow" and narrowed.allowed_endpoints == ["customer"]
    with pytest.raises(apiary.PermissionDeniedError):
        svc.call("top", api_key=key.key, method="GET")
    reopened = svc.update_key(key.id, allowed_endpoints=None, allowed_columns=["customer_key", "plan"])
    assert reopened.allowed_endpoints is None and reopened.row_scope == {"plan": ["basic"]}
    rows = svc.call("top", api_key=key.key, method="GET")["rows"]
    assert rows and {r["plan"] for r in rows} == {"basic"}
    with pytest.raises(apiary.ValidationError) as bad:
        svc.update_key(key, allowed_endpoints=["ghost"])
    assert "allowed_endpoints[0]" in str(bad.value.details)

    rotated = svc.rotate_key(key, grace_seconds=2)
    assert rotated.key.startswith("dk_") and rotated.key != key.key and rotated.grace_expires_at
    assert svc.call("top", api_key=key.key, method="GET")["count"] > 0
    assert svc.call("top", api_key=rotated, method="GET")["count"] > 0
    time.sleep(2.2)
    with pytest.raises(apiary.AuthenticationError):
        svc.call("top", api_key=key.key, method="GET")
    assert svc.call("top", api_key=rotated, method="GET")["count"] > 0
    assert all(k.key is None for k in svc.list_keys())


def test_delete_an_asset(api, customers):
    svc = customers.create_api_service("sales-serving", "Sales", [CUSTOMER], publish=True)
    key = svc.create_key("app")
    with pytest.raises(apiary.ConflictError):
        svc.delete()
    assert api.get_asset(svc.id).status == "published"
    svc.delete(force=True)
    with pytest.raises(apiary.NotFoundError):
        api.get_asset(svc.id)
    with pytest.raises(apiary.AuthenticationError):
        svc.call("customer", api_key=key, method="GET", params={"id": 1})
    assert svc.logs().total >= 0  # the audit log stays readable by the org admin


def test_data_api_handle(api, customers):
    query = {
        "source": {"schema": "marts", "table": "customers"},
        "columns": ["customer_key", "plan"],
        "filters": [{"column": "plan", "op": "eq", "param": "plan"}],
        "order_by": [{"column": "customer_key", "dir": "asc"}],
        "pagination": {"default_limit": 5, "max_limit": 5},
    }
    data = customers.create_data_api("customers", "Customers", query, icon="table", publish=True)
    assert isinstance(data, apiary.DataAPI) and isinstance(data, apiary.PublishedAsset)
    assert data.status == "published" and data.icon == "table"
    key = data.create_key("reader")
    body = data.query(api_key=key, params={"plan": "premium"})
    assert body["count"] == 5 and {r["plan"] for r in body["rows"]} == {"premium"}
    assert [v.version for v in data.versions()] == [1]
    assert isinstance(api.get_asset(data.id), apiary.DataAPI)
    data.update_key(key, allowed_columns=["customer_key"])
    assert set(data.query(api_key=key)["rows"][0]) == {"customer_key"}
    data.unpublish()
    data.delete()
    assert [a.asset_key for a in api.list_assets()] == []
