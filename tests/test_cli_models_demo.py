"""Operator CLI for models and the demo, with a real worker."""

import re

from tests.models.conftest import churn  # noqa: F401 - fixture
from tests.serving.test_serving_data import call


def test_models_train_and_list(app, admin, project, churn, live_worker):  # noqa: F811 - churn
    runner = app.test_cli_runner()
    trained = runner.invoke(
        args=[
            "models",
            "train",
            "--project",
            str(project["project_id"]),
            "--table",
            churn,
            "--target",
            "churned",
            "--task-type",
            "classification",
            "--algorithm",
            "logistic_regression",
            "--name",
            "churn",
            "--feature",
            "tenure",
            "--feature",
            "plan",
        ]
    )
    assert trained.exit_code == 0, trained.output
    assert re.search(r"model \d+ trained .*accuracy=", trained.output)
    assert "training" in trained.output  # the progress bar's label while it waits for the worker
    listed = runner.invoke(args=["models", "list", "--project", str(project["project_id"])])
    assert "churn\t1\tclassification\tlogistic_regression\tTrue\taccuracy=" in listed.output
    bad = runner.invoke(
        args=[
            "models",
            "train",
            "--project",
            str(project["project_id"]),
            "--table",
            churn,
            "--target",
            "nope",
            "--task-type",
            "classification",
            "--algorithm",
            "random_forest",
        ]
    )
    assert bad.exit_code != 0 and "target_column" in bad.output


def test_demo_builds_the_seed_example(app, client, live_worker):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            args=[
                "users",
                "create",
                "--email",
                "demo@example.com",
                "--password",
                "long password 1",
                "--org",
                "Demo Org",
            ]
        ).exit_code
        == 0
    )
    result = runner.invoke(args=["demo", "--org", "Demo Org"])
    assert result.exit_code == 0, result.output
    secret = re.search(r"API key \(shown once\): (dk_\S+)", result.output).group(1)
    assert call(client, secret, "customer", query_string={"id": "42"}).get_json()["rows"][0]["customer_key"] == 42
    risk = call(
        client,
        secret,
        "churn_risk",
        method="POST",
        json={"features": {"tenure": 8, "plan": "basic", "monthly_fee": 20.0, "region": "EU"}},
    )
    assert risk.status_code == 200 and risk.get_json()["count"] == 1
    assert call(client, secret, "segment", method="POST", json={"tenure": 5}).get_json()["result"]["segment"] == "new"
    top = call(client, secret, "top_tenure", query_string={"region": "EU", "limit": "3"}).get_json()
    assert top["count"] == 3 and {r["region"] for r in top["rows"]} == {"EU"}
    assert "training" in result.output and "loading marts.dim_customer" in result.output
    services = runner.invoke(args=["services", "list"]).output
    assert "sales-serving\tapi_service\tpublished\t1\tcustomer,churn_risk,top_tenure,segment" in services
    again = runner.invoke(args=["demo", "--org", "Demo Org", "--if-missing"])
    assert again.exit_code == 0 and "already exists" in again.output
