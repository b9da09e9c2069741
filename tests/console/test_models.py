"""Models pages: train with the form on a real worker, see the run, metrics and versions, activate, serve it."""

import re
import time

from tests.console.conftest import churn_csv


def _train(console, pid: int, name: str = "churn", **fields) -> None:
    form = {
        "name": name,
        "input_table": "uploads.churn",
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": "tenure, monthly, plan",
        "test_size": "0.25",
        **fields,
    }
    resp = console.post(f"/projects/{pid}/models", form)
    assert resp.status_code == 302, resp.get_data(as_text=True)


def _wait_for_runs(console, pid: int) -> str:
    deadline = time.monotonic() + 90
    while True:
        html = console.get(f"/projects/{pid}/models").get_data(as_text=True)
        if "data-refresh-seconds" not in html:
            return html
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)


def test_train_see_metrics_versions_activate_and_serve(console, project, live_worker):
    pid = project["project_id"]
    assert console.upload(pid, churn_csv(), filename="churn.csv").status_code == 302
    _train(console, pid)
    html = _wait_for_runs(console, pid)
    assert "badge-run-success" in html, html
    assert re.search(r"accuracy</span> 0\.\d{3}", html)
    _train(console, pid)
    html = _wait_for_runs(console, pid)
    ids = sorted({int(m) for m in re.findall(rf"/projects/{pid}/models/(\d+)\"", html)})
    assert len(ids) == 2
    first, second = ids
    detail = console.get(f"/projects/{pid}/models/{second}").get_data(as_text=True)
    assert "v2" in detail and "Feature importance" in detail
    assert f"/models/{second}/activate" in detail  # a new version waits to be activated
    assert console.post(f"/projects/{pid}/models/{second}/activate").status_code == 302
    detail = console.get(f"/projects/{pid}/models/{second}").get_data(as_text=True)
    assert "Version 2 of churn is now the active one." in detail
    assert f"/models/{first}/activate" in detail and f"/models/{second}/activate" not in detail

    resp = console.post(f"/projects/{pid}/settings/services", {"title": "Scoring", "asset_key": "scoring"})
    service_url = resp.headers["Location"]
    resp = console.post(service_url + "/endpoints", {"id": "risk", "kind": "model", "model_id": str(first)})
    assert resp.status_code == 302
    result = console.post_json(
        service_url + "/test",
        {"endpoint_id": "risk", "body": {"features": {"tenure": 3, "monthly": 20.0, "plan": "basic"}}},
    ).get_json()
    assert result["status"] == 200, result
    assert result["body"]["predictions"][0] in (0, 1, "0", "1")


def test_training_form_errors_are_shown_next_to_the_field(console, project):
    pid = project["project_id"]
    console.upload(pid, churn_csv(20), filename="churn.csv")
    resp = console.post(
        f"/projects/{pid}/models",
        {
            "name": "m",
            "input_table": "uploads.churn",
            "target_column": "nope",
            "task_type": "classification",
            "algorithm": "logistic_regression",
            "test_size": "0.2",
        },
    )
    assert resp.status_code == 422
    assert re.search(r'id="f-target_column".*?class="field-error"', resp.get_data(as_text=True), re.S)


def test_models_page_empty_states(console, project):
    html = console.get(f"/projects/{project['project_id']}/models").get_data(as_text=True)
    assert "No models yet" in html and "Upload a dataset first" in html
