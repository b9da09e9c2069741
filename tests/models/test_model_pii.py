"""Issue 12 item 7: model metadata never shows a role more than a preview would, and training on high or critical
columns needs an org admin's explicit `allow_sensitive`."""

from __future__ import annotations

from tests.conftest import add_user
from tests.models.conftest import CHURN_TYPES, churn_rows, create_recipe, put_dataset, train

TYPES = {**CHURN_TYPES, "email": "text"}


def _rows() -> list[dict]:
    # Five shared e-mail addresses: a categorical feature, not an identifier, so it would be listed in full.
    return [{**row, "email": f"user{row['customer_key'] % 5}@example.com"} for row in churn_rows()]


def _config(**extra) -> dict:
    return {
        "input_table": "marts.contacts",
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": ["tenure", "plan", "email"],
        **extra,
    }


def test_training_on_sensitive_columns_needs_an_admins_explicit_consent(app, client, admin, project):
    pid = project["project_id"]
    put_dataset(app, pid, "marts.contacts", _rows(), TYPES)
    designer = add_user(client, admin, "designer")

    feature = create_recipe(client, designer, pid, _config())
    assert feature.status_code == 422, feature.get_json()
    assert "config.feature_columns[2]" in feature.get_json()["error"]["details"]["fields"]
    target = create_recipe(client, admin, pid, _config(target_column="email", feature_columns=["tenure"]))
    assert target.status_code == 422 and "config.target_column" in target.get_json()["error"]["details"]["fields"]
    consent = create_recipe(client, designer, pid, _config(allow_sensitive=True))
    assert consent.status_code == 403, consent.get_json()
    assert "config.allow_sensitive" in consent.get_json()["error"]["details"]["fields"]
    assert create_recipe(client, admin, pid, _config(allow_sensitive="yes")).status_code == 422
    assert create_recipe(client, admin, pid, _config(allow_sensitive=True)).status_code == 201


def test_model_metadata_is_masked_by_the_callers_role(app, client, admin, project, live_worker):
    pid = project["project_id"]
    put_dataset(app, pid, "marts.contacts", _rows(), TYPES)
    run = train(client, admin, pid, _config(allow_sensitive=True), name="contacts")
    assert run["status"] == "success", run
    url = f"/api/models/{run['model_id']}"

    def email_categories(account):
        resp = client.get(url, headers=account.project_headers(pid))
        assert resp.status_code == 200, resp.get_json()
        return next(f for f in resp.get_json()["input_schema"] if f["name"] == "email")["categories"]

    raw = email_categories(admin)
    assert "user1@example.com" in raw
    viewer, designer = add_user(client, admin, "viewer"), add_user(client, admin, "designer")
    assert email_categories(viewer) is None  # a viewer's preview blocks high columns
    masked = email_categories(designer)
    assert masked == ["us****@example.com"]  # a designer's preview masks them
    assert "user1@example.com" not in client.get(url, headers=viewer.project_headers(pid)).get_data(as_text=True)

    # Automatic feature selection leaves sensitive columns out without the admin's consent.
    auto = train(client, admin, pid, {**_config(), "feature_columns": None}, name="contacts_auto")
    assert auto["status"] == "success", auto
    detail = client.get(f"/api/models/{auto['model_id']}", headers=admin.project_headers(pid)).get_json()
    assert "email" not in detail["feature_columns"] and "tenure" in detail["feature_columns"]


def test_classes_of_a_sensitive_target_are_masked(app, client, admin, project, live_worker):
    pid = project["project_id"]
    rows = [{**row, "email": f"user{row['churned']}@example.com"} for row in churn_rows()]
    put_dataset(app, pid, "marts.contacts", rows, TYPES)
    config = _config(target_column="email", feature_columns=["tenure", "plan"], allow_sensitive=True)
    run = train(client, admin, pid, config, name="who")
    assert run["status"] == "success", run
    url = f"/api/models/{run['model_id']}"
    assert client.get(url, headers=admin.project_headers(pid)).get_json()["classes"] == [
        "user0@example.com",
        "user1@example.com",
    ]
    viewer = add_user(client, admin, "viewer")
    assert client.get(url, headers=viewer.project_headers(pid)).get_json()["classes"] == ["[BLOCKED]", "[BLOCKED]"]
