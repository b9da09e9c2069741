"""The seed's end-to-end example over HTTP: upload, train, build a service of four kinds, publish, mint, call."""

import io
import random

import pytest

from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import call, mint


def _customers_csv(n: int = 120) -> bytes:
    rng = random.Random(3)
    lines = ["customer_key,name,email,region,tenure,plan,monthly,churned"]
    for i in range(1, n + 1):
        tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
        churned = int((tenure < 20 and plan == "basic") or rng.random() < 0.05)
        lines.append(
            f"{i},Customer {i},c{i}@example.com,{rng.choice(['EU', 'US'])},{tenure},{plan},"
            f"{rng.uniform(10, 90):.2f},{churned}"
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture()
def seed_service(client, admin, project, live_worker):
    headers = admin.project_headers(project["project_id"])
    upload = client.post(
        "/api/datasets/file/upload",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(_customers_csv()), "dim_customer.csv"), "name": "marts.dim_customer"},
    )
    assert upload.status_code == 201, upload.get_json()
    assert upload.get_json()["row_count"] == 120

    recipe = client.post(
        "/api/flow/ai-recipes",
        headers=headers,
        json={
            "recipe_type": "train_model",
            "name": "churn",
            "inputs": ["marts.dim_customer"],
            "config": {
                "input_table": "marts.dim_customer",
                "target_column": "churned",
                "task_type": "classification",
                "algorithm": "random_forest",
                "feature_columns": ["tenure", "plan", "monthly"],
            },
        },
    )
    assert recipe.status_code == 201, recipe.get_json()
    run = client.post(f"/api/flow/ai-recipes/{recipe.get_json()['recipe_id']}/run", headers=headers)
    assert run.get_json()["status"] == "success", run.get_json()
    model_id = run.get_json()["model_id"]

    endpoints = [
        {"id": "customer", "kind": "lookup", "dataset": "marts.dim_customer", "key_column": "customer_key"},
        {"id": "churn_risk", "kind": "model", "model_id": model_id},
        {
            "id": "top",
            "kind": "sql",
            "query": {
                "source": {"schema": "marts", "table": "dim_customer"},
                "columns": ["customer_key", "tenure"],
                "order_by": [{"column": "tenure", "dir": "desc"}],
                "pagination": {"default_limit": 3, "max_limit": 10},
            },
        },
        {
            "id": "score",
            "kind": "function",
            "handler": "def handler(payload):\n    return {'risk': 'high' if payload['tenure'] < 12 else 'low'}\n",
        },
    ]
    created = _create(client, admin, project["project_id"], endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    return {"asset_id": asset_id, "model_id": model_id}


def test_seed_example_step_by_step(client, admin, seed_service):
    key = mint(client, admin, seed_service["asset_id"], sensitivity_max="high")["key"]

    customer = call(client, key, "customer", query_string={"id": "42"})
    assert customer.status_code == 200 and customer.get_json()["rows"][0]["customer_key"] == 42
    assert customer.get_json()["rows"][0]["email"] != "c42@example.com"  # masked

    risk = call(
        client, key, "churn_risk", method="POST", json={"features": {"tenure": 8, "plan": "basic", "monthly": 20.0}}
    )
    assert risk.status_code == 200, risk.get_json()
    body = risk.get_json()
    assert body["model_id"] == seed_service["model_id"] and body["count"] == 1 and body["predictions"][0] in (0, 1)
    assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-6

    batch = call(
        client,
        key,
        "churn_risk",
        method="POST",
        json={"rows": [{"tenure": t, "plan": "premium", "monthly": 50.0} for t in (2, 30, 55)]},
    )
    assert batch.get_json()["count"] == 3 and len(batch.get_json()["predictions"]) == 3

    bad = call(
        client,
        key,
        "churn_risk",
        method="POST",
        json={"features": {"tenure": "eight", "plan": "basic", "monthly": 1.0}},
    )
    assert bad.status_code == 422 and "features.tenure" in bad.get_json()["error"]["message"]
    unknown = call(
        client,
        key,
        "churn_risk",
        method="POST",
        json={"features": {"tenure": 1, "plan": "basic", "monthly": 1.0, "x": 1}},
    )
    assert unknown.status_code == 422 and "x" in unknown.get_json()["error"]["message"]

    top = call(client, key, "top").get_json()
    assert top["count"] == 3 and top["limit"] == 3

    score = call(client, key, "score", method="POST", json={"tenure": 5})
    assert score.status_code == 200 and score.get_json() == {"result": {"risk": "high"}}


def test_model_endpoint_dry_run_scope_and_other_projects_model(app, client, admin, seed_service):
    asset_id = seed_service["asset_id"]
    dry = client.post(
        f"/api/api-services/{asset_id}/endpoints/churn_risk/test",
        headers=admin.headers,
        json={"features": {"tenure": 8, "plan": "basic", "monthly": 20.0}},
    )
    assert dry.status_code == 200 and dry.get_json()["dry"] is True and dry.get_json()["count"] == 1

    scoped = mint(client, admin, asset_id, allowed_endpoints=["customer"])["key"]
    assert call(client, scoped, "churn_risk", method="POST", json={"features": {}}).status_code == 403
    assert call(client, scoped, "customer", query_string={"id": "1"}).status_code == 200

    # A published snapshot can only name this project's models; one pointing elsewhere is answered 404.
    other = client.post("/api/projects", headers=admin.headers, json={"name": "Other", "slug": "other"}).get_json()
    from app.db import AssetVersion, MLModel
    from app.extensions import db

    with app.app_context():
        model = db.session.get(MLModel, seed_service["model_id"])
        model.project_id = other["project_id"]
        db.session.commit()
    key = mint(client, admin, asset_id)["key"]
    moved = call(
        client, key, "churn_risk", method="POST", json={"features": {"tenure": 8, "plan": "basic", "monthly": 2.0}}
    )
    assert moved.status_code == 404
    with app.app_context():
        assert db.session.query(AssetVersion).count() == 1
