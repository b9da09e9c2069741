"""Model fixtures: a churn table in the warehouse registered as a project dataset, and helpers to train on it."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

CHURN_TYPES = {
    "customer_key": "integer",
    "tenure": "integer",
    "monthly": "float",
    "plan": "text",
    "region": "text",
    "churned": "integer",
    "spend": "float",
    "segment": "text",
}


def churn_rows(n: int = 160, seed: int = 7) -> list[dict]:
    """Short tenure on the basic plan churns; spend grows with tenure and the monthly fee. Learnable, not trivial."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tenure = rng.randint(1, 60)
        plan = rng.choice(["basic", "premium"])
        monthly = round(rng.uniform(10, 90), 2)
        churned = int((tenure < 20 and plan == "basic") or rng.random() < 0.05)
        rows.append(
            {
                "customer_key": i + 1,
                "tenure": tenure,
                "monthly": monthly,
                "plan": plan,
                "region": rng.choice(["EU", "US", "APAC"]),
                "churned": churned,
                "spend": round(tenure * monthly * 0.5 + rng.uniform(-20, 20), 2),
                "segment": "retail",
            }
        )
    return rows


def put_dataset(app, project_id: int, name: str, rows: list[dict], types: dict[str, str] = CHURN_TYPES) -> str:
    """Create the physical table (dropping an old one) and the Dataset row pointing at it; returns the name."""
    from app.db import Dataset
    from app.extensions import db, warehouse
    from app.warehouse.engine import ensure_schema, sa_type_for

    logical_schema, table = name.split(".")
    schema = app.config["WAREHOUSE_SCHEMA_PREFIX"] + logical_schema
    physical = f"p{project_id}__{table}"
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, schema)
        tbl = sa.Table(physical, sa.MetaData(), *[sa.Column(c, sa_type_for(types[c])) for c in rows[0]], schema=schema)
        with engine.begin() as conn:
            tbl.drop(conn, checkfirst=True)
            tbl.create(conn)
            conn.execute(tbl.insert(), rows)
        db.session.add(
            Dataset(
                project_id=project_id,
                name=name,
                schema_name=schema,
                table_name=physical,
                source="upload",
                columns=[{"name": c, "type": types[c]} for c in rows[0]],
                row_count=len(rows),
                masking={},
            )
        )
        db.session.commit()
    return name


@pytest.fixture()
def churn(app, project) -> str:
    return put_dataset(app, project["project_id"], "marts.churn", churn_rows())


def classification_config(table: str = "marts.churn", **extra) -> dict:
    return {
        "input_table": table,
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": ["tenure", "monthly", "plan", "region"],
        **extra,
    }


def regression_config(table: str = "marts.churn", **extra) -> dict:
    return {
        "input_table": table,
        "target_column": "spend",
        "task_type": "regression",
        "algorithm": "random_forest",
        "feature_columns": ["tenure", "monthly", "plan"],
        "hyperparams": {"n_estimators": 20, "max_depth": 6},
        **extra,
    }


def create_recipe(client, account, project_id: int, config: dict, name: str = "churn", **fields):
    body = {
        "recipe_type": "train_model",
        "name": name,
        "inputs": [config.get("input_table", "marts.churn")],
        "config": config,
        **fields,
    }
    return client.post("/api/flow/ai-recipes", headers=account.project_headers(project_id), json=body)


def train(client, account, project_id: int, config: dict, name: str = "churn") -> dict:
    """Create a recipe and run it, waiting; returns the run's answer (asserting the HTTP exchange went through)."""
    created = create_recipe(client, account, project_id, config, name)
    assert created.status_code == 201, created.get_json()
    resp = client.post(
        f"/api/flow/ai-recipes/{created.get_json()['recipe_id']}/run", headers=account.project_headers(project_id)
    )
    assert resp.status_code == 200, resp.get_json()
    return {**resp.get_json(), "recipe_id": created.get_json()["recipe_id"]}
