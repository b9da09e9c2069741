"""The SDK against a live server: logging in, projects, dataset uploads and model training."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

import apiary
from apiary import lookup_endpoint


def test_log_in_with_a_password_or_a_personal_token(login, api):
    me = api.me()
    assert me["username"] == login.username and me["role"] == "admin"
    jwt = api._transport.token
    minted = httpx.post(
        f"{login.url}/api/auth/tokens",
        headers={"Authorization": f"Bearer {jwt}"},
        json={"name": "sdk", "expires_days": 1},
    )
    assert minted.status_code == 201, minted.text
    with apiary.Client(login.url, token=minted.json()["token"]) as by_token:
        assert by_token.me()["username"] == login.username
    with pytest.raises(apiary.AuthenticationError):
        apiary.Client(login.url, username=login.username, password="not the password")
    with pytest.raises(apiary.AuthenticationError), apiary.Client(login.url, token="junk") as junk:
        junk.list_projects()


def test_create_get_and_list_projects(api):
    created = api.create_project("Sales", "sales", description="the sales team")
    assert created.slug == "sales" and created.name == "Sales" and isinstance(created.id, int)
    assert api.get_project("sales").id == created.id
    assert api.get_project(created.id).slug == "sales"
    assert [p.slug for p in api.list_projects()] == ["sales"]
    with pytest.raises(apiary.ConflictError):
        api.create_project("Sales again", "sales")
    with pytest.raises(apiary.ValidationError) as bad:
        api.create_project("Bad", "Not A Slug")
    assert "slug" in bad.value.fields
    with pytest.raises(apiary.NotFoundError):
        api.get_project("nope")


def test_another_organizations_project_is_not_found(login, api, server_url):
    project = api.create_project("Sales", "sales")
    other = httpx.post(
        f"{server_url}/api/auth/register",
        json={
            "org_name": "Other",
            "username": f"x{login.username}",
            "email": f"x{login.username}@example.com",
            "password": login.password,
        },
    )
    assert other.status_code == 201
    with apiary.Client(server_url, username=f"x{login.username}", password=login.password) as stranger:
        with pytest.raises(apiary.NotFoundError):
            stranger.get_project(project.id)


def test_upload_a_csv_file_and_a_dataframe(sdk_project, churn_csv):
    dataset = sdk_project.upload_file("marts.customers", churn_csv)
    assert dataset.name == "marts.customers" and dataset.row_count == 120
    assert dataset.column_names == ["customer_key", "name", "tenure", "plan", "monthly", "churned"]
    assert {c["name"]: c["type"] for c in dataset.columns}["monthly"] == "float"
    with pytest.raises(apiary.ConflictError):
        sdk_project.upload_file("marts.customers", churn_csv)
    again = sdk_project.upload_file("marts.customers", churn_csv, replace=True, types={"customer_key": "text"})
    assert {c["name"]: c["type"] for c in again.columns}["customer_key"] == "text"

    frame = pd.DataFrame({"sku": ["a-1", "b-2", "c-3"], "price": [1.5, 2.0, 3.25], "in stock": [True, False, True]})
    uploaded = sdk_project.upload_dataframe("Price List", frame, friendly_name="Prices")
    assert uploaded.name == "uploads.price_list" and uploaded.row_count == 3
    assert uploaded.column_names == ["sku", "price", "in_stock"]
    fetched = sdk_project.get_dataset("uploads.price_list")
    assert fetched.row_count == 3 and fetched.raw["friendly_name"] == "Prices"
    with pytest.raises(TypeError):
        sdk_project.upload_dataframe("x", [1, 2, 3])


def test_upload_a_list_of_dicts_or_anything_with_to_csv(sdk_project):
    rows = [
        {"sku": "a-1", "price": 1.5, "tags": ["new"]},
        {"sku": "b-2", "price": 2, "note": "back, soon"},
        {"sku": "c-3", "price": None, "note": None},
    ]
    uploaded = sdk_project.upload_dataframe("marts.items", rows)
    assert uploaded.name == "marts.items" and uploaded.row_count == 3
    # Columns are every key in order of first appearance; None and missing keys are empty cells.
    assert uploaded.column_names == ["sku", "price", "tags", "note"]
    assert {c["name"]: c["type"] for c in uploaded.columns}["price"] == "float"
    svc = sdk_project.create_api_service("items", "Items", endpoints=[lookup_endpoint("item", "marts.items", "sku")])
    found = svc.test("item", {"id": "b-2"})["rows"][0]
    assert found == {"sku": "b-2", "price": 2.0, "tags": None, "note": "back, soon"}
    assert svc.test("item", {"id": "a-1"})["rows"][0]["tags"] == '["new"]'

    class Table:
        """Not pandas: a to_csv() without pandas' index flag is called as it is."""

        def to_csv(self):
            return "day,amount\n2024-01-01,3\n"

    assert sdk_project.upload_dataframe("daily", Table()).column_names == ["day", "amount"]
    for bad in ([], [{"a": 1}, "b"], {"a": [1]}, "a,b\n1,2\n"):
        with pytest.raises(TypeError):
            sdk_project.upload_dataframe("bad", bad)


def test_train_a_model_and_read_it_back(sdk_project, churn_csv, live_worker):
    sdk_project.upload_file("marts.customers", churn_csv)
    result = sdk_project.train_model(
        "churn",
        input_table="marts.customers",
        target_column="churned",
        task_type="classification",
        algorithm="logistic_regression",
        features=["tenure", "plan", "monthly"],
    )
    assert result.status == "success" and isinstance(result.model_id, int)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    model = sdk_project.get_model(result.model_id)
    assert model.name == "churn" and model.version == 1 and model.is_active
    assert model.task_type == "classification" and model.algorithm == "logistic_regression"
    assert sorted(model.feature_columns) == ["monthly", "plan", "tenure"]
    assert model.feature_importance and model.versions[0]["model_id"] == model.model_id

    second = sdk_project.train_model(
        "churn",
        input_table="marts.customers",
        target_column="churned",
        algorithm="random_forest",
        features=["tenure", "plan"],
    )
    assert sdk_project.get_model(second.model_id).version == 2
    assert [m.version for m in sdk_project.list_models("churn")] in ([2, 1], [1, 2])

    queued = sdk_project.train_model(
        "spend", input_table="marts.customers", target_column="monthly", task_type="regression", wait=False
    )
    assert queued.status == "queued" and queued.model_id is None
    finished = sdk_project.wait_for_run(queued, timeout=60, poll_s=0.2)
    assert finished.status == "success" and sdk_project.get_model(finished.model_id).task_type == "regression"

    with pytest.raises(apiary.ValidationError) as bad:
        sdk_project.train_model("oops", input_table="marts.customers", target_column="no_such_column")
    assert "target_column" in str(bad.value)
    with pytest.raises(apiary.NotFoundError):
        sdk_project.get_model(999_999)


def test_a_failed_training_run_raises_training_error(sdk_project, live_worker):
    frame = pd.DataFrame({"tenure": list(range(1, 41)), "plan": ["basic", "premium"] * 20, "churned": [0] * 40})
    sdk_project.upload_dataframe("marts.all_stay", frame)
    with pytest.raises(apiary.TrainingError) as failed:
        sdk_project.train_model("stay", input_table="marts.all_stay", target_column="churned")
    assert isinstance(failed.value.run_id, int) and "class" in failed.value.message
    assert sdk_project.list_models() == []
