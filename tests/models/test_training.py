"""Training recipes end to end: a real worker trains on the train queue and the registry keeps the versions."""

from __future__ import annotations

import os
import time

from tests.conftest import add_user, sign_up
from tests.models.conftest import (
    churn_rows,
    classification_config,
    create_recipe,
    put_dataset,
    regression_config,
    train,
)


def _models(client, account, project_id, **params):
    resp = client.get("/api/models", headers=account.project_headers(project_id), query_string=params)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["models"]


def _artifacts(app) -> set[str]:
    """Artifact files in the model store (shared by the whole session: compare before and after)."""
    store = app.config["MODEL_STORE"]
    return {name for name in os.listdir(store) if name.endswith(".joblib")} if os.path.isdir(store) else set()


def test_train_a_classifier_and_read_it_back(app, client, admin, project, churn, live_worker):
    pid = project["project_id"]
    run = train(client, admin, pid, classification_config())
    assert run["status"] == "success", run
    assert 0.6 <= run["metrics"]["accuracy"] <= 1.0

    recipe = client.get(f"/api/flow/ai-recipes/{run['recipe_id']}", headers=admin.project_headers(pid)).get_json()
    assert recipe["recipe_type"] == "train_model" and recipe["run_config"]["model_name"] == "churn"
    assert recipe["run_config"]["target_column"] == "churned"
    runs = client.get(f"/api/flow/ai-recipes/{run['recipe_id']}/runs", headers=admin.project_headers(pid)).get_json()
    assert [(r["run_id"], r["status"], r["model_id"]) for r in runs["items"]] == [
        (run["run_id"], "success", run["model_id"])
    ]

    [listed] = _models(client, admin, pid)
    assert listed == {
        "model_id": run["model_id"],
        "name": "churn",
        "version": 1,
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "metrics": run["metrics"],
        "is_active": True,
        "feature_columns": ["tenure", "monthly", "plan", "region"],
    }
    detail = client.get(f"/api/models/{run['model_id']}", headers=admin.project_headers(pid)).get_json()
    assert detail["target_column"] == "churned" and detail["classes"] == [0, 1]
    assert {f["name"]: f["type"] for f in detail["input_schema"]} == {
        "tenure": "integer",
        "monthly": "float",
        "plan": "text",
        "region": "text",
    }
    assert set(detail["feature_importance"]) and all(
        isinstance(v, float) for v in detail["feature_importance"].values()
    )
    assert detail["versions"] == [{"model_id": run["model_id"], "version": 1, "is_active": True}]
    assert detail["created_at"]


def test_train_a_regressor(client, admin, project, churn, live_worker):
    run = train(client, admin, project["project_id"], regression_config(), name="spend")
    assert run["status"] == "success", run
    assert run["metrics"]["r2"] > 0.5
    [model] = _models(client, admin, project["project_id"], name="spend")
    assert (model["task_type"], model["algorithm"], model["version"]) == ("regression", "random_forest", 1)


def test_versions_activation_and_delete_rules(app, client, admin, project, churn, live_worker):
    pid = project["project_id"]
    headers = admin.project_headers(pid)
    before = _artifacts(app)
    first = train(client, admin, pid, classification_config(model_name="churn_model"))
    second = train(client, admin, pid, classification_config(model_name="churn_model", algorithm="random_forest"))
    assert second["status"] == "success", second
    versions = client.get(f"/api/models/{second['model_id']}", headers=headers).get_json()["versions"]
    assert versions == [
        {"model_id": second["model_id"], "version": 2, "is_active": False},
        {"model_id": first["model_id"], "version": 1, "is_active": True},
    ]

    activated = client.post(f"/api/models/{second['model_id']}/activate", headers=headers)
    assert activated.status_code == 200 and activated.get_json()["is_active"] is True
    assert [(m["version"], m["is_active"]) for m in _models(client, admin, pid, name="churn_model")] == [
        (2, True),
        (1, False),
    ]

    conflict = client.delete(f"/api/models/{second['model_id']}", headers=headers)
    assert conflict.status_code == 409 and conflict.get_json()["error"]["code"] == "conflict"
    assert len(_artifacts(app) - before) == 2
    assert client.delete(f"/api/models/{first['model_id']}", headers=headers).status_code == 200
    assert len(_artifacts(app) - before) == 1
    assert client.get(f"/api/models/{first['model_id']}", headers=headers).status_code == 404
    # The last version may go even though it is active; its artifact goes with it.
    assert client.delete(f"/api/models/{second['model_id']}", headers=headers).status_code == 200
    assert _models(client, admin, pid) == [] and _artifacts(app) == before


def test_a_failed_run_is_recorded_and_leaves_no_model(app, client, admin, project, live_worker):
    pid = project["project_id"]
    rows = [{**row, "churned": 0} for row in churn_rows(40)]
    put_dataset(app, pid, "marts.all_stay", rows)
    before = _artifacts(app)
    run = train(client, admin, pid, classification_config("marts.all_stay"))
    assert run["status"] == "failed", run
    assert "class" in run["error"] and "/" not in run["error"].replace("w/o", "")
    assert "Traceback" not in run["error"]
    runs = client.get(f"/api/flow/ai-recipes/{run['recipe_id']}/runs", headers=admin.project_headers(pid)).get_json()
    assert runs["items"][0]["status"] == "failed" and runs["items"][0]["model_id"] is None
    assert _models(client, admin, pid) == [] and _artifacts(app) == before


def test_run_without_waiting_then_poll(client, admin, project, churn, live_worker):
    pid = project["project_id"]
    recipe_id = create_recipe(client, admin, pid, classification_config()).get_json()["recipe_id"]
    queued = client.post(f"/api/flow/ai-recipes/{recipe_id}/run?wait=false", headers=admin.project_headers(pid))
    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json()["status"] == "queued"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = client.get(f"/api/flow/ai-recipes/{recipe_id}/runs", headers=admin.project_headers(pid)).get_json()
        if runs["items"][0]["status"] in ("success", "failed"):
            break
        time.sleep(0.2)
    [run] = runs["items"]
    assert (run["run_id"], run["status"]) == (queued.get_json()["run_id"], "success")
    assert run["model_id"] and run["metrics"]["accuracy"] > 0.5 and run["finished_at"]


def test_a_task_delivered_twice_trains_once(app, client, admin, project, churn, live_worker):
    from tasks.train import train_recipe

    pid = project["project_id"]
    before = _artifacts(app)
    run = train(client, admin, pid, classification_config())
    again = train_recipe.apply_async(args=[run["run_id"]], queue="train").get(timeout=30)
    assert again == {
        "status": "success",
        "run_id": run["run_id"],
        "model_id": run["model_id"],
        "metrics": run["metrics"],
    }
    assert len(_models(client, admin, pid)) == 1 and len(_artifacts(app) - before) == 1


def test_recipe_config_is_checked_against_the_table(client, admin, project, churn):
    pid = project["project_id"]
    cases = [
        ({"target_column": "nope"}, "config.target_column"),
        ({"task_type": "clustering"}, "config.task_type"),
        ({"algorithm": "ridge"}, "config.algorithm"),
        ({"feature_columns": ["tenure", "ghost"]}, "config.feature_columns[1]"),
        ({"hyperparams": {"n_jobs": 64}}, "config.hyperparams.n_jobs"),
        ({"test_size": 2}, "config.test_size"),
        ({"input_table": "marts.missing"}, "config.input_table"),
    ]
    for change, field in cases:
        config = {**classification_config(), **change}
        resp = create_recipe(client, admin, pid, config, inputs=[config["input_table"]])
        assert resp.status_code == 422, (change, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (change, resp.get_json())
    resp = create_recipe(client, admin, pid, regression_config(target_column="plan"))
    assert resp.status_code == 422 and "config.target_column" in resp.get_json()["error"]["details"]["fields"]
    resp = create_recipe(client, admin, pid, classification_config(), recipe_type="score_model")
    assert resp.status_code == 422 and "recipe_type" in resp.get_json()["error"]["details"]["fields"]
    assert (
        client.post(
            "/api/flow/ai-recipes",
            headers=admin.headers,
            json={"recipe_type": "train_model", "name": "x", "config": classification_config()},
        ).status_code
        == 400
    )


def test_only_editors_of_the_project_create_and_run(client, admin, project, churn):
    pid = project["project_id"]
    analyst = add_user(client, admin, "analyst")
    assert create_recipe(client, analyst, pid, classification_config()).status_code == 403
    recipe_id = create_recipe(client, admin, pid, classification_config()).get_json()["recipe_id"]
    assert client.get(f"/api/flow/ai-recipes/{recipe_id}", headers=analyst.project_headers(pid)).status_code == 200
    run = client.post(f"/api/flow/ai-recipes/{recipe_id}/run", headers=analyst.project_headers(pid))
    assert run.status_code == 403


def test_other_projects_and_orgs_see_404(client, admin, project, churn, live_worker):
    pid = project["project_id"]
    run = train(client, admin, pid, classification_config())
    model_id, recipe_id = run["model_id"], run["recipe_id"]
    other_project = client.post("/api/projects", headers=admin.headers, json={"name": "Ops", "slug": "ops"}).get_json()
    other_org = sign_up(client)
    other_org_project = client.post(
        "/api/projects", headers=other_org.headers, json={"name": "Theirs", "slug": "theirs"}
    ).get_json()
    scopes = [(admin, other_project["project_id"]), (other_org, other_org_project["project_id"]), (other_org, None)]
    for account, scope in scopes:
        headers = account.project_headers(scope) if scope else account.headers
        for method, url in [
            ("GET", f"/api/models/{model_id}"),
            ("POST", f"/api/models/{model_id}/activate"),
            ("DELETE", f"/api/models/{model_id}"),
            ("GET", f"/api/flow/ai-recipes/{recipe_id}"),
            ("GET", f"/api/flow/ai-recipes/{recipe_id}/runs"),
            ("POST", f"/api/flow/ai-recipes/{recipe_id}/run"),
        ]:
            resp = client.open(url, method=method, headers=headers)
            assert resp.status_code == 404, (scope, method, url, resp.get_json())
        if scope:
            assert _models(client, account, scope) == []
    # The other org cannot even name this org's project.
    assert client.get("/api/models", headers=other_org.project_headers(pid)).status_code == 404
    assert len(_models(client, admin, pid)) == 1
