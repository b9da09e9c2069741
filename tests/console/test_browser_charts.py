"""Issue 18's charts in a real browser (Chromium on the console served by gunicorn, with a real worker): a service's
traffic per endpoint, the latency histogram of the audit log and a model's held-out curves and metrics by version,
each drawn as inline SVG with the numbers the API answers."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.console.conftest import CUSTOMERS_CSV, churn_csv, signed_up_api
from tests.console.test_browser import ARTIFACTS, browser_page, live_server  # noqa: F401 - fixtures

PASSWORD = "correct horse battery staple"


def _seed(base: str) -> dict:
    """Over the REST API: a published service with a lookup endpoint called 7 times (2 refused), and a churn
    model trained twice."""
    http, auth, username = signed_up_api(base, "ch", PASSWORD, timeout=180)
    project = http.post("/api/projects", headers=auth, json={"name": "Sales", "slug": "sales"}).json()
    scoped = {**auth, "X-Project-Id": str(project["project_id"])}
    for name, csv in (("uploads.customers", CUSTOMERS_CSV), ("uploads.churn", churn_csv())):
        upload = http.post(
            "/api/datasets/file/upload",
            headers=scoped,
            data={"name": name},
            files={"file": (f"{name}.csv", csv.encode(), "text/csv")},
        )
        assert upload.status_code == 201, upload.text
    lookup = {"id": "customer", "kind": "lookup", "dataset": "uploads.customers", "key_column": "customer_key"}
    created = http.post(
        "/api/publish/assets",
        headers=scoped,
        json={"asset_type": "api_service", "asset_key": "sales-serving", "title": "Sales serving",
              "config": {"endpoints": [lookup]}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    asset_id = created.json()["id"]
    assert http.post(f"/api/publish/assets/{asset_id}/publish", headers=auth).status_code == 200
    key = http.post(f"/api/publish/assets/{asset_id}/api-keys", headers=auth, json={"name": "app"}).json()["key"]
    for params in [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 1}, {"id": 2}, {}, {}]:
        http.get("/api/service/sales-serving/customer", params=params, headers={"X-API-Key": key})
    deadline = time.monotonic() + 60
    while http.get(f"/api/api-services/{asset_id}/logs", headers=auth).json()["total"] < 7:
        assert time.monotonic() < deadline, "the audit records were not flushed"
        time.sleep(0.3)

    config = {
        "input_table": "uploads.churn",
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": ["tenure", "monthly", "plan"],
    }
    recipe = http.post(
        "/api/flow/ai-recipes",
        headers=scoped,
        json={"recipe_type": "train_model", "name": "churn", "inputs": ["uploads.churn"], "config": config},
    ).json()
    model_ids = []
    for _ in range(2):
        run = http.post(f"/api/flow/ai-recipes/{recipe['recipe_id']}/run", headers=scoped).json()
        assert run["status"] == "success", run
        model_ids.append(run["model_id"])
    return {"username": username, "project_id": project["project_id"], "asset_id": asset_id, "auth": auth,
            "scoped": scoped, "http": http, "models": model_ids}  # fmt: skip


def _values(locator, attribute: str = "data-value") -> list[float]:
    return [float(v) for v in locator.evaluate_all(f"els => els.map(e => e.getAttribute('{attribute}'))")]


def test_traffic_histogram_and_model_charts_render_with_the_api_numbers(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server
    seed = _seed(base)
    http, auth, pid, asset_id = seed["http"], seed["auth"], seed["project_id"], seed["asset_id"]
    page.goto(f"{base}/login")
    page.fill("#f-username", seed["username"])
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")

    # The service page: calls, error rate and p50/p99 of the customer endpoint over the last hour.
    page.goto(f"{base}/projects/{pid}/settings/services/{asset_id}")
    page.click("#traffic a[data-window='hour']")
    expect(page.locator("#traffic a[aria-current='true']")).to_have_attribute("data-window", "hour")
    stats = http.get(f"/api/api-services/{asset_id}/stats", headers=auth, params={"window": "hour"}).json()
    (customer,) = stats["endpoints"]
    assert customer["calls"] == 7 and customer["errors"] == 2
    block = page.locator(".traffic-endpoint[data-endpoint='customer']")
    expect(block.locator("svg.chart")).to_have_count(3)
    bars = block.locator(".chart-calls svg rect.bar")
    expect(bars).to_have_count(12)
    assert _values(bars) == [b["calls"] for b in customer["buckets"]]
    assert sum(_values(bars)) == 7
    busy = [b for b in customer["buckets"] if b["calls"]]
    rates = _values(block.locator(".chart-errors svg circle.point"))
    assert rates == [round(b["error_rate"] * 100, 2) for b in busy]
    p99 = _values(block.locator(".chart-latency svg g[data-series='p99'] circle.point"))
    assert p99 == [round(b["p99_ms"], 3) for b in busy]
    expect(block).to_contain_text("7 calls")
    box = block.locator(".chart-calls svg").bounding_box()
    assert box["width"] > 200 and box["height"] > 60  # drawn, not collapsed
    page.screenshot(path=str(ARTIFACTS / "charts-01-traffic.png"), full_page=True)

    # The audit log: the histogram counts every filtered call, not only the page.
    page.click("text=Audit log")
    histogram = page.locator("#latency-histogram svg rect.bar")
    expect(histogram).to_have_count(14)
    api = http.get(f"/api/api-services/{asset_id}/logs/histogram", headers=auth).json()
    assert _values(histogram) == [b["count"] for b in api["bins"]] and api["total"] == 7
    page.check("input[name=errors_only]")
    page.click("button:has-text('Filter')")
    expect(page.locator("#latency-histogram")).to_have_attribute("data-total", "2")
    assert sum(_values(page.locator("#latency-histogram svg rect.bar"))) == 2
    page.screenshot(path=str(ARTIFACTS / "charts-02-histogram.png"), full_page=True)

    # The model page: ROC curve and confusion matrix of the held-out test set, metrics by version.
    first, second = seed["models"]
    detail = http.get(f"/api/models/{second}", headers=seed["scoped"]).json()
    evaluation = detail["evaluation"]
    page.goto(f"{base}/projects/{pid}/models/{second}")
    roc = page.locator("#evaluation .chart-roc svg circle.point")
    (curve,) = evaluation["roc"]
    expect(roc).to_have_count(len(curve["fpr"]))
    assert _values(roc, "data-x") == curve["fpr"] and _values(roc, "data-y") == curve["tpr"]
    cells = page.locator("#evaluation .chart-confusion svg g.cell")
    expect(cells).to_have_count(4)
    assert _values(cells) == [v for row in evaluation["confusion"]["matrix"] for v in row]
    assert sum(_values(cells)) == evaluation["n_test"]
    accuracy = _values(page.locator("#version-metrics g[data-series='accuracy'] circle.point"))
    older = http.get(f"/api/models/{first}", headers=seed["scoped"]).json()
    assert accuracy == [older["metrics"]["accuracy"], detail["metrics"]["accuracy"]]
    page.screenshot(path=str(ARTIFACTS / "charts-03-model.png"), full_page=True)
    assert not page.console_errors, page.console_errors
