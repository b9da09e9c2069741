"""`flask models show|activate|delete` and a model endpoint through `services test|call`, with a real worker."""

from __future__ import annotations

import json

from tests.conftest import add_user
from tests.models.conftest import churn, classification_config, train  # noqa: F401 - fixtures
from tests.test_cli_lifecycle import _email, _fails, _json, _ok

FEATURES = {"tenure": 3, "monthly": 20.0, "plan": "basic", "region": "EU"}


def test_models_show_activate_delete_and_a_model_endpoint(app, client, admin, project, churn, live_worker):  # noqa: F811 - churn
    runner = app.test_cli_runner()
    pid = project["project_id"]
    first = train(client, admin, pid, classification_config())["model_id"]
    second = train(client, admin, pid, classification_config())["model_id"]
    headers = admin.project_headers(pid)

    listed = _json(runner.invoke(args=["models", "list", "--project", "sales", "--json"]))
    assert listed == client.get("/api/models", headers=headers).get_json()
    shown = _json(runner.invoke(args=["models", "show", str(first), "--json"]))
    assert shown == client.get(f"/api/models/{first}", headers=headers).get_json()
    assert [v["model_id"] for v in shown["versions"]] == [second, first] and shown["is_active"] is True
    text = _ok(runner.invoke(args=["models", "show", str(second)])).stdout
    assert f"model {second}: churn version 2" in text and "inactive" in text and "importance: " in text

    activated = _json(runner.invoke(args=["models", "activate", str(second), "--json"]))
    assert (
        activated["is_active"] is True and activated == client.get(f"/api/models/{second}", headers=headers).get_json()
    )
    assert client.get(f"/api/models/{first}", headers=headers).get_json()["is_active"] is False

    # A model endpoint added, tested (draft) and called with a key (published), scored on the worker.
    add = [
        "services",
        "endpoints",
        "add",
        "sales-serving",
        "--id",
        "risk",
        "--kind",
        "model",
        "--model-id",
        str(second),
    ]
    _ok(runner.invoke(args=["services", "create", "--project", str(pid), "--key", "sales-serving", "--title", "S"]))
    _ok(runner.invoke(args=add))
    dry = _json(
        runner.invoke(args=["services", "test", "sales-serving", "risk", "-d", json.dumps({"features": FEATURES})])
    )
    assert dry["dry"] is True and dry["count"] == 1 and dry["model_id"] == second
    _ok(runner.invoke(args=["services", "publish", "sales-serving"]))
    secret = _json(runner.invoke(args=["keys", "mint", "sales-serving", "--name", "app", "--json"]))["key"]
    scored = _json(
        runner.invoke(
            args=[
                "services",
                "call",
                "sales-serving",
                "risk",
                "--key",
                secret,
                "-d",
                json.dumps({"rows": [FEATURES, {**FEATURES, "tenure": 50}]}),
            ]
        )
    )
    assert scored["count"] == 2 and scored["model_id"] == second and len(scored["predictions"]) == 2
    http = client.post(
        "/api/service/sales-serving/risk",
        headers={"X-API-Key": secret},
        json={"rows": [FEATURES, {**FEATURES, "tenure": 50}]},
    )
    assert http.get_json()["predictions"] == scored["predictions"]
    _fails(
        runner.invoke(args=["services", "call", "sales-serving", "risk", "--key", secret, "-d", '{"features": 1}']),
        "features",
    )
    # Without a body the call is a GET, the model endpoint's one-row form: no features is a 422 naming one.
    _fails(runner.invoke(args=["services", "call", "sales-serving", "risk", "--key", secret]), "features.tenure")

    # Deleting: the active version goes last, and a version a published service scores with stays.
    _fails(runner.invoke(args=["models", "delete", str(second), "--yes"]), "active version")
    _ok(runner.invoke(args=["models", "activate", str(first)]))
    _fails(runner.invoke(args=["models", "delete", str(second), "--yes"]), "sales-serving")
    _ok(runner.invoke(args=["services", "unpublish", "sales-serving"]))
    aborted = runner.invoke(args=["models", "delete", str(second)], input="n\n")
    assert aborted.exit_code != 0 and client.get(f"/api/models/{second}", headers=headers).status_code == 200
    viewer = add_user(client, admin, "viewer")
    _fails(runner.invoke(args=["models", "delete", str(second), "--yes", "--user", _email(viewer)]), "project.edit")
    assert f"deleted model {second}" in _ok(runner.invoke(args=["models", "delete", str(second)], input="y\n")).stdout
    assert client.get(f"/api/models/{second}", headers=headers).status_code == 404

    _fails(runner.invoke(args=["models", "show", str(second)]), f"model {second} not found")
    other = client.post("/api/projects", headers=admin.headers, json={"name": "Other", "slug": "other"}).get_json()
    _fails(runner.invoke(args=["models", "show", str(first), "--project", str(other["project_id"])]), "not found")
    _fails(runner.invoke(args=["models", "activate", "x"]), "MODEL_ID", "not a valid integer")
