"""Server-side SVG charts: the module's output is well-formed and inert whatever the labels hold, and the console's
service, logs and model pages draw them from the same numbers the API answers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from app.console.charts import Series, bar_chart, heatmap, histogram, line_chart, scatter
from app.db import AuditLog, MLModel
from app.extensions import db
from tests.conftest import add_user, sign_up
from tests.console.conftest import lookup_form, signed_in

SVG = "{http://www.w3.org/2000/svg}"
ATTACK = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


def _parse(svg) -> ET.Element:
    root = ET.fromstring(str(svg))  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def _inert(markup) -> None:
    text = str(markup)
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_line_chart_points_carry_their_values_and_gaps_stay_gaps():
    svg = line_chart([Series("p50", [1.5, None, 3.0]), Series("p99", [4.0, 8.0, None])], ["a", "b", "c"], "Latency")
    root = _parse(svg)
    assert root.get("data-chart") == "line" and root.find(f"{SVG}title").text == "Latency"
    groups = root.findall(f"{SVG}g[@class='series']")
    assert [g.get("data-series") for g in groups] == ["p50", "p99"]
    assert [c.get("data-value") for c in groups[0].findall(f"{SVG}circle")] == ["1.5", "3"]
    assert len(groups[0].findall(f"{SVG}polyline")) == 2  # the None splits the line
    assert [c.get("data-value") for c in groups[1].findall(f"{SVG}circle")] == ["4", "8"]


def test_negative_values_extend_the_axis_below_zero():
    root = _parse(line_chart([Series("r2", [-0.4, 0.8])], ["v1", "v2"], "R²", y_max=1))
    ys = [float(c.get("cy")) for c in root.iter(f"{SVG}circle")]
    assert all(14 <= y <= 170 for y in ys)  # inside the plot, not drawn off the bottom


def test_bar_chart_histogram_scatter_and_heatmap_values():
    bars = _parse(bar_chart([0, 3, 12], ["x", "y", "z"], "Calls")).findall(f"{SVG}rect[@class='bar']")
    assert [b.get("data-value") for b in bars] == ["0", "3", "12"]
    assert float(bars[0].get("height")) == 0 and float(bars[2].get("height")) > float(bars[1].get("height"))
    assert _parse(histogram([1, 2], ["≤ 1 ms", "> 1 ms"], "H")).get("data-chart") == "histogram"
    dots = _parse(scatter([(0.0, 0.0), (0.5, 0.9), (1.0, 1.0)], "ROC", "fpr", "tpr", line=True))
    assert [(c.get("data-x"), c.get("data-y")) for c in dots.iter(f"{SVG}circle")] == [
        ("0", "0"),
        ("0.5", "0.9"),
        ("1", "1"),
    ]
    cells = _parse(heatmap([[5, 1], [2, 7]], ["no", "yes"], "Confusion")).findall(f"{SVG}g[@class='cell']")
    assert [(c.get("data-row"), c.get("data-col"), c.get("data-value")) for c in cells] == [
        ("0", "0", "5"),
        ("0", "1", "1"),
        ("1", "0", "2"),
        ("1", "1", "7"),
    ]


def test_every_label_is_escaped():
    for svg in (
        line_chart([Series(ATTACK, [1, 2])], [ATTACK, ATTACK], ATTACK, y_unit=ATTACK),
        bar_chart([1, 2], [ATTACK, "b"], ATTACK),
        scatter([(1, 2)], ATTACK, ATTACK, ATTACK),
        heatmap([[1, 0], [0, 1]], [ATTACK, "b"], ATTACK),
    ):
        _inert(svg)
        root = _parse(svg)
        assert root.find(f"{SVG}title").text == ATTACK  # shown as text, exactly
        assert not list(root.iter("script")) and not list(root.iter(f"{SVG}script"))


def test_non_finite_values_do_not_break_the_markup():
    _parse(line_chart([Series("x", [float("nan"), float("inf"), 1.0])], ["a", "b", "c"], "t"))
    _parse(bar_chart([], [], "empty"))
    _parse(scatter([], "empty", "x", "y"))


def _audit(app, asset_id: int, rows) -> None:
    with app.app_context():
        db.session.add_all(
            AuditLog(
                created_at=datetime.now(UTC), asset_id=asset_id, endpoint_id=e, method="GET", status=s, latency_ms=ms
            )
            for e, s, ms in rows
        )
        db.session.commit()


def test_service_page_charts_match_the_stats_api(app, client, admin, console, project, customers, service):
    assert console.post(service["url"] + "/endpoints", lookup_form()).status_code == 302
    # A caller may name any endpoint in a URL (a 404 still leaves an audit record): it is charted as text.
    _audit(
        app, service["id"], [("customer", 200, 4.0), ("customer", 200, 6.0), ("customer", 404, 9.0), (ATTACK, 404, 1)]
    )
    html = console.get(service["url"] + "?window=hour").get_data(as_text=True)
    _inert(html)
    stats = client.get(
        f"/api/api-services/{service['id']}/stats", headers=admin.headers, query_string={"window": "hour"}
    ).get_json()
    customer = next(e for e in stats["endpoints"] if e["endpoint_id"] == "customer")
    section = html[html.index('data-endpoint="customer"') :]
    section = section[: section.index('class="traffic-endpoint"') if 'class="traffic-endpoint"' in section else None]
    bars = re.findall(r'class="bar"[^>]*data-value="([\d.]+)"', section)
    assert [float(v) for v in bars] == [b["calls"] for b in customer["buckets"]]
    latency = re.findall(r'data-series="p99">(.*?)</g>', section, re.S)[0]
    assert re.findall(r'data-value="([\d.]+)"', latency) == ["9"] == [str(int(customer["p99_ms"]))]
    errors = re.findall(r'data-value="([\d.]+)"', re.findall(r'data-series="error rate">(.*?)</g>', section, re.S)[0])
    assert [float(v) for v in errors] == [round(customer["error_rate"] * 100, 2)]
    assert 'aria-current="true" data-window="hour"' in html
    assert console.get(service["url"] + "?window=nonsense").status_code == 200  # falls back to a day


def test_logs_page_histogram_counts_the_filtered_calls(app, client, admin, console, project, customers, service):
    _audit(app, service["id"], [("customer", 200, 0.5), ("customer", 200, 40.0), ("customer", 500, 40.0)])
    html = console.get(service["url"] + "/logs?errors_only=true").get_data(as_text=True)
    assert 'id="latency-histogram" data-total="1"' in html
    api = client.get(
        f"/api/api-services/{service['id']}/logs/histogram", headers=admin.headers, query_string={"errors_only": "true"}
    ).get_json()
    bars = [int(v) for v in re.findall(r'class="bar"[^>]*data-value="(\d+)"', html)]
    assert bars == [b["count"] for b in api["bins"]] and sum(bars) == 1
    everything = console.get(service["url"] + "/logs").get_data(as_text=True)
    assert 'data-total="3"' in everything
    assert 'id="latency-histogram"' not in console.get(service["url"] + "/logs?status=302").get_data(as_text=True)


def _model(app, project_id: int, version: int, **fields) -> int:
    with app.app_context():
        model = MLModel(
            project_id=project_id,
            name="churn",
            version=version,
            task_type=fields.pop("task_type", "classification"),
            algorithm="logistic_regression",
            target_column="churned",
            feature_columns=["tenure"],
            input_schema=[{"name": "tenure", "type": "integer"}],
            artifact_path="/nonexistent",
            artifact_sha256="0" * 64,
            sklearn_version="1",
            **fields,
        )
        db.session.add(model)
        db.session.commit()
        return model.id


def test_model_page_draws_stored_curves_with_class_names_escaped(app, console, project):
    pid = project["project_id"]
    evaluation = {
        "n_test": 12,
        "roc": [{"class": ATTACK, "auc": 0.75, "fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.8, 1.0]}],
        "confusion": {"labels": ["no", ATTACK], "matrix": [[5, 1], [2, 4]]},
    }
    _model(app, pid, 1, metrics={"accuracy": 0.6, "f1": 0.5, "roc_auc": 0.7})
    second = _model(app, pid, 2, metrics={"accuracy": 0.75, "f1": 0.7, "roc_auc": 0.75}, evaluation=evaluation)
    html = console.get(f"/projects/{pid}/models/{second}").get_data(as_text=True)
    _inert(html)
    assert len(re.findall(r'<svg class="chart" data-chart="scatter"', html)) == 1
    cells = re.findall(r'class="cell" data-row="(\d)" data-col="(\d)" data-value="(\d+)"', html)
    assert [int(v) for _r, _c, v in cells] == [5, 1, 2, 4]
    versions = html[html.index('id="version-metrics"') :]
    accuracy = re.findall(r'data-series="accuracy">(.*?)</g>', versions, re.S)[0]
    assert re.findall(r'data-value="([\d.]+)"', accuracy) == ["0.6", "0.75"]  # oldest first
    assert "0.7500" in versions and "0.6000" in versions


def test_model_without_stored_curves_says_so(app, console, project):
    pid = project["project_id"]
    old = _model(app, pid, 1, task_type="regression", metrics={"r2": 0.5, "rmse": 3.0})
    html = console.get(f"/projects/{pid}/models/{old}").get_data(as_text=True)
    assert "trained before Apiary stored evaluation curves" in html
    assert 'data-chart="scatter"' not in html


def test_a_viewer_sees_the_traffic_as_the_api_lets_them(app, client, admin, console, project, customers, service):
    assert console.post(service["url"] + "/endpoints", lookup_form()).status_code == 302
    _audit(app, service["id"], [("customer", 200, 4.0)])
    viewer = signed_in(app, add_user(client, admin, "viewer"))
    html = viewer.get(service["url"]).get_data(as_text=True)
    assert 'id="traffic"' in html and 'data-endpoint="customer"' in html
    assert 'id="editor"' not in html
    stranger = signed_in(app, sign_up(client))
    assert stranger.get(service["url"]).status_code == 404


def test_logs_pager_links_keep_the_filters_and_the_service(app, console, project, customers, service):
    """Past one page of records the logs page links to the older page (same filters, same service), and back."""
    _audit(app, service["id"], [("customer", 200, 1.0)] * 60)
    first = console.get(service["url"] + "/logs?endpoint_id=customer").get_data(as_text=True)
    path = service["url"].split("://", 1)[-1]
    path = path[path.index("/") :] if "://" in service["url"] else service["url"]
    older = re.findall(r'href="([^"]+)">Older →', first)
    assert len(older) == 1 and older[0].startswith(path + "/logs?") and "offset=50" in older[0]
    assert "endpoint_id=customer" in older[0] and "← Newer" not in first
    second = console.get(older[0].replace("&amp;", "&")).get_data(as_text=True)
    newer = re.findall(r'href="([^"]+)">← Newer', second)
    assert len(newer) == 1 and "offset=0" in newer[0] and "Older →" not in second
