"""An XSS attempt in every text field renders as text, never as markup."""

import re
import time

import pytest

from tests.console.conftest import churn_csv, lookup_form

XSS = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _assert_inert(html: str, echoed: bool = True) -> None:
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    if echoed:
        assert ESCAPED in html


def test_project_name_and_description(console):
    resp = console.post("/projects", {"name": XSS, "slug": "xss", "description": XSS})
    assert resp.status_code == 302
    _assert_inert(console.get("/projects").get_data(as_text=True))
    # The name is in the title and the breadcrumb of every page of the project.
    pid = int(resp.headers["Location"].split("/")[2])
    for page in ("datasets", "models", "settings"):
        _assert_inert(console.get(f"/projects/{pid}/{page}").get_data(as_text=True))


def test_service_title_description_endpoint_and_key_name(console, project, customers, service):
    pid = project["project_id"]
    resp = console.post(f"/projects/{pid}/settings/services", {"title": XSS, "asset_key": "xss", "description": XSS})
    assert resp.status_code == 302
    _assert_inert(console.get(f"/projects/{pid}/settings").get_data(as_text=True))
    _assert_inert(console.get(resp.headers["Location"]).get_data(as_text=True))
    _assert_inert(console.get(resp.headers["Location"] + "/logs").get_data(as_text=True))
    console.post(service["url"] + "/endpoints", lookup_form(description=XSS))
    console.post(service["url"] + "/publish", {"change_note": XSS})
    minted = console.post(service["url"] + "/keys", {"name": XSS})
    assert minted.status_code == 303
    revealed = console.get(minted.headers["Location"]).get_data(as_text=True)
    assert 'id="revealed-key"' in revealed
    _assert_inert(revealed)
    _assert_inert(console.get(service["url"]).get_data(as_text=True))


@pytest.mark.parametrize("field", ["id", "key_column", "key_param", "columns", "query", "max_results", "model_id"])
def test_endpoint_editor_fields_echoed_back_with_errors(console, customers, service, field):
    form = lookup_form(**{field: XSS})
    if field in ("query", "model_id"):
        form["kind"] = "sql" if field == "query" else "model"
    resp = console.post(service["url"] + "/endpoints", form)
    assert resp.status_code == 422
    # A model is picked from a list: an unknown id is refused, not echoed.
    _assert_inert(resp.get_data(as_text=True), echoed=field != "model_id")


def test_dataset_friendly_name_description_and_cell_values(console, project):
    pid = project["project_id"]
    csv_text = f'id,comment\n1,"{XSS.replace(chr(34), chr(34) * 2)}"\n'
    resp = console.upload(pid, csv_text, filename="notes.csv", friendly_name=XSS, description=XSS)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    _assert_inert(console.get(f"/projects/{pid}/datasets").get_data(as_text=True))
    html = console.get(f"/projects/{pid}/datasets/uploads.notes").get_data(as_text=True)
    _assert_inert(html)
    assert re.search(r"<td>&lt;script&gt;alert\(1\)", html)


def test_dataset_settings_form(console, project, customers):
    url = f"/projects/{project['project_id']}/datasets/uploads.customers"
    assert console.post(url + "/settings", {"friendly_name": XSS, "description": XSS}).status_code == 302
    _assert_inert(console.get(url).get_data(as_text=True))
    resp = console.post(url + "/settings", {"friendly_name": XSS, "description": XSS, "strategy_0": XSS})
    assert resp.status_code == 422
    _assert_inert(resp.get_data(as_text=True), echoed=False)


def test_upload_table_name_errors(console, project):
    resp = console.upload(project["project_id"], "a\n1\n", filename="x.csv", name=XSS)
    assert resp.status_code == 422
    assert "<script>alert(1)" not in resp.get_data(as_text=True)


def test_login_username_and_audit_filters(app, console, service):
    from tests.console.conftest import Console

    anonymous = Console(app.test_client())
    anonymous.get("/login")
    resp = anonymous.post("/login", {"username": XSS, "password": "x"})
    _assert_inert(resp.get_data(as_text=True))
    resp = console.get(service["url"] + "/logs", query_string={"endpoint_id": XSS, "since": XSS})
    assert "<script>alert(1)" not in resp.get_data(as_text=True)


def test_signup_fields_echoed_back_with_errors(app):
    from tests.console.conftest import Console

    visitor = Console(app.test_client())
    visitor.get("/signup")
    resp = visitor.post("/signup", {"org_name": XSS, "username": XSS, "email": XSS, "password": "short"})
    assert resp.status_code == 422
    _assert_inert(resp.get_data(as_text=True))


def test_model_and_recipe_names(console, project, live_worker):
    """A model is named in the training form: its name shows on the models pages and in the endpoint editor."""
    pid = project["project_id"]
    assert console.upload(pid, churn_csv(60), filename="churn.csv").status_code == 302
    resp = console.post(
        f"/projects/{pid}/models",
        {
            "name": XSS,
            "input_table": "uploads.churn",
            "target_column": "churned",
            "task_type": "classification",
            "algorithm": "logistic_regression",
            "feature_columns": "tenure, plan",
            "test_size": "0.25",
        },
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)
    deadline = time.monotonic() + 90
    while "data-refresh-seconds" in (html := console.get(f"/projects/{pid}/models").get_data(as_text=True)):
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
    assert "badge-run-success" in html, html
    _assert_inert(html)
    model_id = re.search(rf'/projects/{pid}/models/(\d+)"', html).group(1)
    _assert_inert(console.get(f"/projects/{pid}/models/{model_id}").get_data(as_text=True))
    resp = console.post(f"/projects/{pid}/settings/services", {"title": "Scoring", "asset_key": "scoring"})
    service_url = resp.headers["Location"]
    assert (
        console.post(service_url + "/endpoints", {"id": "risk", "kind": "model", "model_id": model_id}).status_code
        == 302
    )
    _assert_inert(console.get(service_url).get_data(as_text=True))  # the endpoint list and the model picker


def test_training_form_values(console, project, customers):
    resp = console.post(
        f"/projects/{project['project_id']}/models",
        {
            "name": XSS,
            "input_table": "uploads.customers",
            "target_column": XSS,
            "task_type": "classification",
            "algorithm": "random_forest",
            "feature_columns": XSS,
            "test_size": XSS,
        },
    )
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "<script>alert(1)" not in html and "<img src=x" not in html
