"""The SDK's APIService against a live server: endpoints, publishing, keys, calls, dry runs, versions and logs."""

from __future__ import annotations

import time

import pytest

import apiary
from apiary import function_endpoint, lookup_endpoint, model_endpoint, sql_endpoint

TOP = sql_endpoint(
    "top",
    {
        "source": {"schema": "marts", "table": "customers"},
        "columns": ["customer_key", "tenure"],
        "filters": [{"column": "plan", "op": "eq", "param": "plan"}],
        "order_by": [{"column": "tenure", "dir": "desc"}],
        "pagination": {"default_limit": 3, "max_limit": 5},
    },
)
CUSTOMER = lookup_endpoint("customer", "marts.customers", "customer_key", columns=["customer_key", "name", "plan"])


@pytest.fixture()
def customers(sdk_project, churn_csv) -> apiary.Project:
    sdk_project.upload_file("marts.customers", churn_csv)
    return sdk_project


def test_create_publish_and_call_sql_and_lookup(api, customers):
    svc = customers.create_api_service("sales-serving", "Sales serving", endpoints=[CUSTOMER])
    assert svc.status == "draft" and svc.project_id == customers.id
    assert [e["id"] for e in svc.endpoints] == ["customer"]
    key = svc.create_key(name="app")
    assert key.key.startswith("dk_") and key.key.startswith(key.prefix)
    with pytest.raises(apiary.NotFoundError):  # a draft is not served
        svc.call("customer", api_key=key.key, method="GET", params={"id": 1})

    assert svc.publish() is svc and svc.status == "published" and svc.published_version == 1
    row = svc.call("customer", api_key=key.key, method="GET", params={"id": 42})
    assert row["count"] == 1 and row["rows"][0]["customer_key"] == 42
    assert row["rows"][0]["name"] != "Customer 42"  # a person's name is masked for a default key
    with pytest.raises(apiary.ValidationError, match="id"):
        svc.call("customer", api_key=key, method="GET")  # the key object works as well as its secret

    # Edits go to the draft: serving keeps version 1 until the next publish.
    svc.add_endpoint(TOP)
    assert [e["id"] for e in svc.endpoints] == ["customer", "top"] and svc.published_version == 1
    with pytest.raises(apiary.NotFoundError):
        svc.call("top", api_key=key.key, method="GET")
    svc.publish("add top")
    top = svc.call("top", api_key=key.key, method="GET", params={"plan": "premium", "limit": 5})
    assert top["count"] == 5 and all(isinstance(r["tenure"], int) for r in top["rows"])
    assert [r["tenure"] for r in top["rows"]] == sorted((r["tenure"] for r in top["rows"]), reverse=True)
    with pytest.raises(apiary.ValidationError):
        svc.call("top", api_key=key.key, method="GET", params={"limit": 50})
    with pytest.raises(apiary.ApiaryError) as wrong_method:
        svc.call("top", {"x": 1}, api_key=key.key)
    assert wrong_method.value.status == 405

    same = api.get_api_service(svc.id)
    assert same.asset_key == "sales-serving" and same.status == "published"
    assert [e["id"] for e in same.endpoints] == ["customer", "top"]


def test_keys_scope_rate_limit_listing_and_revocation(customers):
    svc = customers.create_api_service("sales-serving", "Sales", endpoints=[CUSTOMER, TOP], publish=True)
    assert svc.status == "published"
    scoped = svc.create_key(name="scoped", allowed_endpoints=["top"], rate_limit=2, expires_days=0)
    assert scoped.allowed_endpoints == ["top"] and scoped.rate_limit == 2 and scoped.expires_at is None
    with pytest.raises(apiary.PermissionDeniedError):
        svc.call("customer", api_key=scoped.key, method="GET", params={"id": 1})
    for _ in range(2):
        svc.call("top", api_key=scoped.key, method="GET")
    with pytest.raises(apiary.RateLimitError) as limited:
        svc.call("top", api_key=scoped.key, method="GET")
    assert limited.value.retry_after is not None and limited.value.retry_after > 0

    unmasked = svc.create_key(
        name="ops", masking_level="unmasked", sensitivity_max="critical", allowed_columns=["customer_key", "name"]
    )
    row = svc.call("customer", api_key=unmasked.key, method="GET", params={"id": 7})["rows"][0]
    assert row["name"] == "Customer 7" and "plan" not in row
    strict = svc.create_key(name="strict", masking_level="unmasked", sensitivity_max="low")
    row = svc.call("customer", api_key=strict.key, method="GET", params={"id": 7})["rows"][0]
    assert row["name"] == "[BLOCKED]" and row["customer_key"] == 7  # a person's name is above `low`

    listed = svc.list_keys()
    assert sorted(k.name for k in listed) == ["ops", "scoped", "strict"]
    assert all(k.key is None and k.prefix for k in listed)
    svc.revoke_key(scoped)
    svc.revoke_key(unmasked.id)
    svc.revoke_key(strict)
    with pytest.raises(apiary.AuthError):
        svc.call("customer", api_key=unmasked.key, method="GET", params={"id": 7})
    assert not any(k.is_active for k in svc.list_keys())
    with pytest.raises(apiary.ValidationError) as bad:
        svc.create_key(name="bad", masking_level="sometimes")
    assert "masking_level" in bad.value.fields
    with pytest.raises(apiary.AuthenticationError):
        svc.call("top", api_key="dk_" + "x" * 40, method="GET")


def test_set_endpoints_versions_rollback_unpublish(customers):
    svc = customers.create_api_service("sales-serving", "Sales", endpoints=[CUSTOMER])
    svc.publish("v1")
    svc.set_endpoints([TOP], publish=True)
    assert [e["id"] for e in svc.endpoints] == ["top"] and svc.published_version == 2
    versions = svc.versions()
    assert [v.version for v in versions] == [2, 1] and versions[1].change_note == "v1"
    assert any(entry["kind"] in ("added", "removed", "changed") for entry in svc.diff(1, 2)["diff"])

    key = svc.create_key(name="app")
    with pytest.raises(apiary.NotFoundError):
        svc.call("customer", api_key=key.key, method="GET", params={"id": 1})
    svc.rollback(1)
    assert svc.published_version == 3
    assert svc.call("customer", api_key=key.key, method="GET", params={"id": 1})["count"] == 1

    svc.remove_endpoint("customer")
    assert "customer" not in [e["id"] for e in svc.endpoints]
    assert svc.call("customer", api_key=key.key, method="GET", params={"id": 1})["count"] == 1  # until published

    assert svc.unpublish() is svc and svc.status == "draft"
    with pytest.raises(apiary.NotFoundError):
        svc.call("customer", api_key=key.key, method="GET", params={"id": 1})


def test_bad_endpoint_configs_are_refused_with_the_field(customers, api):
    with pytest.raises(apiary.ValidationError) as missing_table:
        customers.create_api_service("bad", "Bad", endpoints=[lookup_endpoint("c", "marts.nope", "id")])
    assert "endpoints" in str(missing_table.value)
    svc = customers.create_api_service("sales-serving", "Sales", endpoints=[CUSTOMER])
    with pytest.raises(apiary.ValidationError):
        svc.add_endpoint(model_endpoint("risk", model_id=999_999))
    svc.add_endpoint(CUSTOMER)  # the same id replaces the endpoint (issue 11), it is no longer an error
    assert [e["id"] for e in svc.endpoints] == ["customer"]
    with pytest.raises(apiary.ConflictError):
        customers.create_api_service("sales-serving", "Again")
    with pytest.raises(apiary.NotFoundError):
        api.get_api_service(999_999)


def test_model_and_function_endpoints_with_dry_runs_and_logs(api, customers, live_worker):
    trained = customers.train_model(
        "churn",
        input_table="marts.customers",
        target_column="churned",
        task_type="classification",
        algorithm="logistic_regression",
        features=["tenure", "plan"],
    )
    echo = function_endpoint("double", "def handler(payload):\n    return {'doubled': payload['x'] * 2}\n")
    svc = api.create_api_service(customers.slug, "sales-serving", "Sales", endpoints=[CUSTOMER])
    svc.add_endpoint(model_endpoint("churn_risk", model_id=trained.model_id))
    svc.add_endpoint(echo, publish=True)
    assert svc.status == "published"

    # The dry run needs no key and sees the draft, unmasked.
    dry = svc.test("churn_risk", {"features": {"tenure": 3, "plan": "basic"}})
    assert dry["dry"] is True and dry["predictions"] in ([0], [1]) and dry["model_id"] == trained.model_id
    looked_up = svc.test("customer", {"id": 5})
    assert looked_up["rows"][0]["name"] == "Customer 5"

    key = svc.create_key(name="app")
    out = svc.call(
        "churn_risk", {"rows": [{"tenure": 2, "plan": "basic"}, {"tenure": 55, "plan": "premium"}]}, api_key=key.key
    )
    assert out["count"] == 2 and out["predictions"] == [1, 0] and out["model_id"] == trained.model_id
    assert svc.call("double", {"x": 21}, api_key=key.key) == {"result": {"doubled": 42}}
    with pytest.raises(apiary.ValidationError):
        svc.call("churn_risk", {"features": {"tenure": "lots"}}, api_key=key.key)

    deadline = time.monotonic() + 20
    page = svc.logs()
    while page.total < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
        page = svc.logs()
    assert page.total == 3, page
    statuses = sorted(e.status for e in page.items)
    assert statuses[:2] == [200, 200] and statuses[2] in (400, 422)
    errors = svc.logs(errors_only=True)
    assert errors.total == 1 and errors.items[0].endpoint_id == "churn_risk" and errors.items[0].status >= 400
    model_calls = svc.logs(endpoint_id="churn_risk", status=200)
    assert model_calls.total == 1 and model_calls.items[0].model_id == trained.model_id
    assert svc.logs(key_id=key.id, limit=1).items[0].key_id == key.id
