"""Issue 17 in a real browser: Chromium on the console served by gunicorn with a real worker. Add an enrichment to
a model endpoint with the form (a wrong column first, its error shown next to the block), publish, run the Test
pane with explanations and context, and read the bar chart against the keyed API's own answer."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.console.conftest import churn_csv, signed_up_api
from tests.console.test_browser import ARTIFACTS, browser_page, live_server  # noqa: F401 - fixtures

PASSWORD = "correct horse battery staple"
MODEL_CALL_MS = 120_000  # the first model call loads the model on the worker; the machine may be loaded


def _seed(base: str) -> dict:
    """Over the REST API: an organization, a project with the churn table, a trained model, a service with a plain
    model endpoint, and a key."""
    http, auth, username = signed_up_api(base, "en", PASSWORD, timeout=180)
    project = http.post("/api/projects", headers=auth, json={"name": "Scoring", "slug": "scoring"}).json()
    scoped = {**auth, "X-Project-Id": str(project["project_id"])}
    upload = http.post(
        "/api/datasets/file/upload",
        headers=scoped,
        data={"name": "uploads.churn"},
        files={"file": ("churn.csv", churn_csv().encode(), "text/csv")},
    )
    assert upload.status_code == 201, upload.text
    config = {
        "input_table": "uploads.churn",
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "random_forest",
        "feature_columns": ["tenure", "monthly", "plan"],
        "hyperparams": {"n_estimators": 10, "max_depth": 4},
    }
    recipe = http.post(
        "/api/flow/ai-recipes",
        headers=scoped,
        json={"recipe_type": "train_model", "name": "churn", "inputs": ["uploads.churn"], "config": config},
    )
    assert recipe.status_code == 201, recipe.text
    run = http.post(f"/api/flow/ai-recipes/{recipe.json()['recipe_id']}/run", headers=scoped)
    assert run.status_code == 200 and run.json()["status"] == "success", run.text
    endpoint = {"id": "risk", "kind": "model", "model_id": run.json()["model_id"]}
    created = http.post(
        "/api/publish/assets",
        headers=scoped,
        json={
            "asset_type": "api_service",
            "asset_key": "scoring",
            "title": "Scoring",
            "description": "",
            "config": {"endpoints": [endpoint]},
        },
    )
    assert created.status_code == 201, created.text
    asset_id = created.json()["id"]
    key = http.post(f"/api/publish/assets/{asset_id}/api-keys", headers=auth, json={"name": "app"}).json()
    return {
        "username": username,
        "project_id": project["project_id"],
        "asset_id": asset_id,
        "key": key["key"],
        "http": http,
    }


def test_enrichment_editor_publish_and_explanation_bars_in_a_browser(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server
    seed = _seed(base)
    page.goto(f"{base}/login")
    page.fill("#f-username", seed["username"])
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{base}/projects/{seed['project_id']}/settings/services/{seed['asset_id']}?edit=risk#editor")

    # Add an enrichment: the blank block, plus one more from the "Add another" button (left empty: skipped).
    page.click("#add-enrichment")
    expect(page.locator("[data-enrichment]")).to_have_count(2)
    expect(page.locator("#ep-enr-1-dataset")).to_be_visible()
    page.select_option("#ep-enr-0-dataset", "uploads.churn")
    page.fill("#ep-enr-0-on", "customer_id=no_such_column")
    page.fill("#ep-enr-0-columns", "tenure, plan")
    page.select_option("#ep-enr-0-not_found", "ignore")
    page.fill("#ep-f-explanations", "2")
    page.click("#endpoint-form button[type=submit]")
    block = page.locator("[data-enrichment='0']")
    expect(block.locator(".field-error")).to_contain_text("'no_such_column' is not a column of the dataset")
    page.fill("#ep-enr-0-on", "customer_id=customer_key")
    page.click("#endpoint-form button[type=submit]")
    expect(page.get_by_text("Endpoint risk saved to the draft")).to_be_visible()
    page.click("#publish-button")
    expect(page.get_by_text(re.compile(r"published as version 1"))).to_be_visible()

    # The keyed API's answer for two rows: a known customer (sent only by id and monthly), an unknown one.
    body = {
        "rows": [{"customer_id": 7, "monthly": 25.0}, {"customer_id": 99999, "monthly": 30.0}],
        "context": {"ticket": "T-17"},
    }
    served = seed["http"].post("/api/service/scoring/risk", json=body, headers={"X-API-Key": seed["key"]})
    assert served.status_code == 200, served.text
    answer = served.json()
    assert answer["predictions"][1]["ignored"] is True
    explained = answer["explanations"][0]
    assert explained is not None and len(explained["contributions"]) == 2

    # The Test pane: the same body, bars per contribution with the API's values, the base, context, ignored row.
    page.select_option("#test-endpoint", "risk")
    page.fill("#test-body", json.dumps(body))
    page.click("#test-pane button[type=submit]")
    expect(page.locator("[data-result-status]")).to_have_text("200", timeout=MODEL_CALL_MS)
    chart = page.locator("[data-explain-row='0'] svg.explain-chart")
    expect(chart).to_be_visible()
    expect(page.locator("[data-explain-row]")).to_have_count(1)  # the ignored row has no explanation
    bars = chart.locator("g[data-feature]")
    expect(bars).to_have_count(len(explained["contributions"]) + (1 if explained.get("others") else 0))
    for feature, value in explained["contributions"].items():
        bar = chart.locator(f"g[data-feature='{feature}']")
        assert abs(float(bar.get_attribute("data-value")) - value) < 1e-9
        expect(bar.locator("rect")).to_have_count(1)
        expect(bar.locator("rect")).to_have_class("bar-pos" if value >= 0 else "bar-neg")
        shown = bar.locator("text.bar-value").text_content()
        assert shown.startswith("+" if value >= 0 else "-") and abs(float(shown) - value) <= abs(value) * 1e-3, shown
    assert abs(float(chart.locator("[data-base]").get_attribute("data-base")) - explained["base"]) < 1e-9
    assert abs(float(chart.locator("text.base-value").text_content()) - explained["base"]) <= explained["base"] * 1e-3
    widths = {
        f: float(chart.locator(f"g[data-feature='{f}'] rect").get_attribute("width"))
        for f in explained["contributions"]
    }
    biggest = max(explained["contributions"], key=lambda f: abs(explained["contributions"][f]))
    assert widths[biggest] == max(widths.values())  # the longest bar is the largest contribution
    expect(page.locator("[data-result-context]")).to_contain_text('{"ticket":"T-17"}')
    expect(page.locator("[data-ignored-row]")).to_contain_text("Row 1 ignored:")
    script_errors = [e for e in page.console_errors if "status of 422" not in e]  # the form's error page is a 422
    assert not page.alerts and not script_errors, (page.alerts, page.console_errors)
    page.locator("#test").screenshot(path=str(ARTIFACTS / "enrichment-test-pane.png"))
