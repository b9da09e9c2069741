"""Issue 17 in the console: the model endpoint form edits enrichments, return_enriched, on_bad_row and default
explanations; the save goes through the API's validation and its errors land next to the enrichment block's field."""

from __future__ import annotations

import re

from app.db import PublishedAsset
from app.extensions import db
from tests.console.conftest import churn_csv
from tests.console.test_models import _train, _wait_for_runs


def _model_form(model_id: int, **fields) -> dict:
    return {
        "id": "risk",
        "kind": "model",
        "model_id": str(model_id),
        "on_bad_row": "error",
        "explanations": "",
        **fields,
    }


def _config(app, service_id: int) -> dict:
    with app.app_context():
        return db.session.get(PublishedAsset, service_id).config


def _field_html(html: str, field_id: str) -> str:
    """The `.field` holding the input `field_id`, up to the next field."""
    start = html.index(f'id="{field_id}"')
    end = html.find('<div class="field', start)
    return html[start : end if end != -1 else None]


def test_enrichments_are_edited_checked_and_tested_in_the_console(app, console, project, live_worker):
    pid = project["project_id"]
    assert console.upload(pid, churn_csv(), filename="churn.csv").status_code == 302
    _train(console, pid)
    html = _wait_for_runs(console, pid)
    model_id = int(re.search(rf"/projects/{pid}/models/(\d+)\"", html).group(1))
    service_url = console.post(f"/projects/{pid}/settings/services", {"title": "Scoring", "asset_key": "scoring"})
    service_url = service_url.headers["Location"]
    service_id = int(service_url.rstrip("/").split("/")[-1])

    # The empty editor offers one blank enrichment block with the project's datasets.
    page = console.get(service_url).get_data(as_text=True)
    assert 'name="enr-0-dataset"' in page and '<option value="uploads.churn"' in page
    assert 'name="enr-0-missing_key"' in page and 'name="return_enriched"' in page

    # Block 0 left blank (skipped), block 1 names a column the dataset lacks: the API's error is
    # config.endpoints[0].enrichments[0].on[0].column, shown next to block 1's "Match on" input.
    bad = _model_form(
        model_id,
        **{
            "enr-0-dataset": "",
            "enr-0-on": "",
            "enr-0-columns": "",
            "enr-1-dataset": "uploads.churn",
            "enr-1-on": "customer_id=nope",
            "enr-1-columns": "tenure, plan",
            "enr-1-not_found": "ignore",
        },
    )
    resp = console.post(service_url + "/endpoints", bad)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "is not a column of the dataset" in _field_html(html, "ep-enr-1-on")
    assert 'value="customer_id=nope"' in html  # what was typed is shown again
    assert _config(app, service_id)["endpoints"] == []  # nothing half-written

    # A column mapped to a feature the model lacks names the columns input; a bad top N names its own field.
    resp = console.post(
        service_url + "/endpoints",
        _model_form(
            model_id,
            **{"enr-0-dataset": "uploads.churn", "enr-0-on": "customer_id=customer_key", "enr-0-columns": "tenure=age"},
        ),
    )
    assert resp.status_code == 422
    assert "tenure: &#39;age&#39; is not a feature of the model" in _field_html(
        resp.get_data(as_text=True), "ep-enr-0-columns"
    )
    resp = console.post(service_url + "/endpoints", _model_form(model_id, explanations="99"))
    assert resp.status_code == 422
    assert "top_n: an integer from 1 to" in _field_html(resp.get_data(as_text=True), "ep-f-explanations")

    good = _model_form(
        model_id,
        on_bad_row="ignore",
        explanations="2",
        return_enriched="on",
        **{
            "enr-0-dataset": "uploads.churn",
            "enr-0-on": "customer_id=customer_key",
            "enr-0-columns": "tenure, plan",
            "enr-0-not_found": "ignore",
            "enr-0-multiple_matches": "first",
            "enr-0-override": "on",
        },
    )
    resp = console.post(service_url + "/endpoints", good)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    [endpoint] = _config(app, service_id)["endpoints"]
    assert endpoint["enrichments"] == [
        {
            "dataset": "uploads.churn",
            "on": [{"feature": "customer_id", "column": "customer_key"}],
            "columns": {"tenure": "tenure", "plan": "plan"},
            "override": True,
            "missing_key": "error",
            "not_found": "ignore",
            "multiple_matches": "first",
        }
    ]
    assert endpoint["return_enriched"] is True and endpoint["on_bad_row"] == "ignore"
    assert endpoint["explanations"] == {"method": "shapley", "top_n": 2}

    # Editing shows the saved values back, with a way to remove the enrichment.
    page = console.get(service_url + "?edit=risk").get_data(as_text=True)
    # The columns map comes back in the database's key order (PostgreSQL's jsonb sorts keys): either order is right.
    assert 'value="customer_id=customer_key"' in page
    assert 'value="tenure, plan"' in page or 'value="plan, tenure"' in page
    assert 'name="enr-0-remove"' in page and 'name="enr-1-dataset"' in page  # and a blank block to add one
    assert re.search(
        r'name="enr-0-not_found">\s*<option value="error" >error</option><option value="ignore" selected', page
    )

    # The Test pane runs the draft: customer 1 looked up, an unknown customer ignored in place, context echoed.
    result = console.post_json(
        service_url + "/test",
        {
            "endpoint_id": "risk",
            "body": {
                "rows": [{"customer_id": 1, "monthly": 20.0}, {"customer_id": 99999, "monthly": 30.0}],
                "context": {"ticket": "T-1"},
            },
        },
    ).get_json()
    assert result["status"] == 200, result
    body = result["body"]
    assert body["context"] == {"ticket": "T-1"}
    assert body["predictions"][1]["ignored"] is True
    [explained, skipped] = body["explanations"]
    assert skipped is None and len(explained["contributions"]) <= 2
    assert (
        abs(
            explained["base"]
            + sum(explained["contributions"].values())
            + explained.get("others", 0)
            - explained["output"]
        )
        < 1e-6
    )

    # Remove the enrichment and the defaults: the endpoint is a plain model endpoint again.
    plain = {**good, "enr-0-remove": "on", "on_bad_row": "error", "explanations": "", "return_enriched": ""}
    assert console.post(service_url + "/endpoints", {**plain, "original_id": "risk"}).status_code == 302
    [endpoint] = _config(app, service_id)["endpoints"]
    assert endpoint == {"id": "risk", "kind": "model", "model_id": model_id}
