"""Probe finding 2: a model's predicted labels and probability keys are the raw values of its target column, served
to every key, so a target above `low` (e.g. a `medium` name) needs an org admin's explicit `allow_sensitive`."""

from __future__ import annotations

from tests.conftest import add_user
from tests.models.conftest import CHURN_TYPES, churn_rows, create_recipe, put_dataset, train

TYPES = {**CHURN_TYPES, "name": "text"}


def _rows() -> list[dict]:
    return [{**row, "name": ("Grace Hopper", "Ada Lovelace")[row["churned"]]} for row in churn_rows()]


def _config(**extra) -> dict:
    return {
        "input_table": "marts.people",
        "target_column": "name",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": ["tenure", "plan"],
        **extra,
    }


def test_a_medium_target_needs_an_admins_explicit_consent(app, client, admin, project, live_worker):
    pid = project["project_id"]
    put_dataset(app, pid, "marts.people", _rows(), TYPES)
    designer = add_user(client, admin, "designer")

    refused = create_recipe(client, designer, pid, _config(), name="leakname")
    assert refused.status_code == 422, refused.get_json()
    fields = refused.get_json()["error"]["details"]["fields"]
    assert "config.target_column" in fields and "medium" in fields["config.target_column"][0]
    # An admin without consent is refused the same way; the designer may not give consent.
    assert create_recipe(client, admin, pid, _config(), name="leakname").status_code == 422
    assert create_recipe(client, designer, pid, _config(allow_sensitive=True), name="leakname").status_code == 403
    # A medium column as a plain feature stays allowed (its values are not served back).
    feature = create_recipe(
        client,
        designer,
        pid,
        {**_config(), "target_column": "churned", "feature_columns": ["tenure", "name"]},
        name="byname",
    )
    assert feature.status_code == 201, feature.get_json()

    run = train(client, admin, pid, _config(allow_sensitive=True), name="names")
    assert run["status"] == "success", run
    detail = client.get(f"/api/models/{run['model_id']}", headers=admin.project_headers(pid)).get_json()
    assert detail["classes"] == ["Ada Lovelace", "Grace Hopper"]
