"""Shadow traffic and the comparison report, over HTTP with a real worker: a model endpoint and a function endpoint
answered by version 1 and shadowed on version 2 (another model, another handler)."""

import time

import pytest

from tests.serving.test_end_to_end import seed_service  # noqa: F401 - fixture
from tests.serving.test_serving_data import call, mint

# Version 2's handler: another threshold, and it naps when asked (only the shadow run ever runs it).
SCORE_V2 = (
    "import time\n"
    "def handler(payload):\n"
    "    time.sleep(payload.get('nap', 0))\n"
    "    return {'risk': 'high' if payload['tenure'] < 20 else 'low'}\n"
)
ROWS = [
    {"tenure": t, "plan": p, "monthly": m}
    for t, p, m in [
        (2, "basic", 20.0),
        (8, "premium", 70.0),
        (15, "basic", 35.5),
        (25, "basic", 15.0),
        (40, "premium", 88.0),
        (58, "basic", 12.0),
        (19, "premium", 45.0),
        (11, "basic", 60.0),
    ]
]
TENURES = [5, 15, 30, 16]  # v1 (< 12): high low low low; v2 (< 20): high high low high -> agree on 2 of 4


def _train(client, headers, algorithm: str) -> int:
    recipe = client.post(
        "/api/flow/ai-recipes",
        headers=headers,
        json={
            "recipe_type": "train_model",
            "name": f"churn_{algorithm}",
            "inputs": ["marts.dim_customer"],
            "config": {
                "input_table": "marts.dim_customer",
                "target_column": "churned",
                "task_type": "classification",
                "algorithm": algorithm,
                "feature_columns": ["tenure", "plan", "monthly"],
            },
        },
    )
    assert recipe.status_code == 201, recipe.get_json()
    run = client.post(f"/api/flow/ai-recipes/{recipe.get_json()['recipe_id']}/run", headers=headers)
    assert run.get_json()["status"] == "success", run.get_json()
    return run.get_json()["model_id"]


@pytest.fixture()
def shadowed(app, client, admin, project, seed_service):  # noqa: F811
    asset_id = seed_service["asset_id"]
    other_model = _train(client, admin.project_headers(project["project_id"]), "logistic_regression")
    asset = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    endpoints = []
    for ep in asset["config"]["endpoints"]:
        if ep["id"] == "churn_risk":
            ep = {**ep, "model_id": other_model}
        elif ep["id"] == "score":
            ep = {**ep, "handler": SCORE_V2}
        endpoints.append(ep)
    assert (
        client.put(
            f"/api/publish/assets/{asset_id}", headers=admin.headers, json={"config": {"endpoints": endpoints}}
        ).status_code
        == 200
    )
    published = client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers, json={"activate": False})
    assert published.get_json()["version"] == 2
    key = mint(client, admin, asset_id, rate_limit=10_000, can_force_version=True)["key"]
    return {"asset_id": asset_id, "key": key}


def _shadow_logs(app, client, admin, asset_id, expected: int, wait_s: float = 60) -> list[dict]:
    from app.serving.audit import flush_serving_records

    deadline = time.monotonic() + wait_s
    while True:
        with app.app_context():
            flush_serving_records()
        items = client.get(
            f"/api/api-services/{asset_id}/logs",
            headers=admin.headers,
            query_string={"shadow": "true", "limit": 1000},
        ).get_json()["items"]
        if len(items) >= expected or time.monotonic() > deadline:
            return items
        time.sleep(0.3)


# buffered=True: the test client then closes the response as a server does once it is sent, which is when a shadow
# run is queued (Response.call_on_close).
def _score(client, key, tenure, **extra):
    return call(client, key, "score", method="POST", json={"tenure": tenure, **extra}, buffered=True)


def _risk(client, key, rows, version=None):
    headers = {"X-API-Key": key} | ({"X-Service-Version": str(version)} if version else {})
    return client.post("/api/service/sales-serving/churn_risk", headers=headers, json={"rows": rows}, buffered=True)


def test_shadow_runs_never_change_answers_and_the_report_pairs_them(app, client, admin, shadowed):
    asset_id, key = shadowed["asset_id"], shadowed["key"]
    # The answers without a shadow, and what version 2 would answer (forced).
    plain = [_risk(client, key, [row]).get_json() for row in ROWS]
    v2 = [_risk(client, key, [row], version=2).get_json()["predictions"][0] for row in ROWS]
    plain_scores = [_score(client, key, t).get_json() for t in TENURES]

    routing = {"strategy": "single", "entries": [{"version": 1, "weight": 100}], "shadow_version": 2}
    assert client.put(f"/api/publish/assets/{asset_id}/routing", headers=admin.headers, json=routing).status_code == 200
    shadowed_answers = []
    for row in ROWS:
        resp = _risk(client, key, [row])
        assert resp.status_code == 200 and resp.headers["X-Service-Version"] == "1"
        shadowed_answers.append(resp.get_json())
    assert shadowed_answers == plain  # the shadow changes nothing in the answer
    assert [_score(client, key, t).get_json() for t in TENURES] == plain_scores

    # The answer never waits for its shadow run: version 2 naps 3 s on this call, version 1 answers at once.
    started = time.monotonic()
    napped = _score(client, key, 30, nap=3)
    assert napped.status_code == 200 and napped.get_json() == {"result": {"risk": "low"}}
    assert time.monotonic() - started < 2.5

    shadows = _shadow_logs(app, client, admin, asset_id, len(ROWS) + len(TENURES) + 1)
    assert len(shadows) == len(ROWS) + len(TENURES) + 1
    assert {s["version"] for s in shadows} == {2} and all(s["shadow"] for s in shadows)
    answered = {
        e["call_id"]: e
        for e in client.get(
            f"/api/api-services/{asset_id}/logs", headers=admin.headers, query_string={"shadow": "false", "limit": 1000}
        ).get_json()["items"]
        if e["call_id"]
    }
    for shadow in shadows:  # both answers' summaries are kept, paired by call id
        primary = answered[shadow["call_id"]]
        assert primary["version"] == 1 and primary["summary"] and shadow["summary"]

    report = client.get(
        f"/api/api-services/{asset_id}/versions/compare", headers=admin.headers, query_string={"a": 1, "b": 2}
    )
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    v1_stats, v2_stats = body["versions"]
    assert v1_stats["version"] == 1 and v1_stats["calls"] == 2 * len(ROWS) + 2 * len(TENURES) + 1
    assert v1_stats["error_rate"] == 0 and 0 < v1_stats["p50_ms"] <= v1_stats["p99_ms"]
    assert v2_stats["calls"] == len(ROWS) and v2_stats["shadow_runs"] == len(shadows)  # the forced calls
    assert v1_stats["predictions"]["kind"] == "classification" and v1_stats["predictions"]["count"] == 2 * len(ROWS)
    expected = sum(a["predictions"][0] == b for a, b in zip(plain, v2, strict=True)) / len(ROWS)
    assert body["shadow"]["pairs"] == len(shadows)
    assert body["shadow"]["agreement_rate"] == pytest.approx(expected, abs=1e-4)
    assert body["shadow"]["function_agreement_rate"] == pytest.approx(3 / 5)  # 2 of 4, and the napped call agrees

    assert (
        client.get(f"/api/api-services/{asset_id}/versions/compare?a=1&b=9", headers=admin.headers).status_code == 404
    )
    missing = client.get(f"/api/api-services/{asset_id}/versions/compare?a=1", headers=admin.headers)
    assert missing.status_code == 422 and "b" in missing.get_json()["error"]["details"]["fields"]


def test_shadow_runs_are_dropped_first_under_load(app, client, admin, shadowed):
    from app.serving.shadow_runs import dropped_shadow_runs

    asset_id, key = shadowed["asset_id"], shadowed["key"]
    routing = {"strategy": "single", "entries": [{"version": 1, "weight": 100}], "shadow_version": 2}
    assert client.put(f"/api/publish/assets/{asset_id}/routing", headers=admin.headers, json=routing).status_code == 200
    app.config["SHADOW_MAX_IN_FLIGHT"] = 0  # no room: every shadow run is dropped, every call still answered
    try:
        for t in TENURES:
            assert _score(client, key, t).status_code == 200
        with app.app_context():
            assert dropped_shadow_runs() == len(TENURES)
        assert _shadow_logs(app, client, admin, asset_id, 1, wait_s=3) == []
    finally:
        app.config["SHADOW_MAX_IN_FLIGHT"] = 32


def test_routing_a_version_preloads_its_models_on_every_predict_process(app, client, admin, shadowed, worker):
    from app.db import AssetVersion
    from app.extensions import db
    from app.serving.shadow_runs import warmed_by

    asset_id = shadowed["asset_id"]
    with app.app_context():
        config = db.session.query(AssetVersion).filter_by(asset_id=asset_id, version=2).one().config
        new_model = next(ep["model_id"] for ep in config["endpoints"] if ep["kind"] == "model")
    routing = {"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}
    assert client.put(f"/api/publish/assets/{asset_id}/routing", headers=admin.headers, json=routing).status_code == 200
    deadline = time.monotonic() + 20
    with app.app_context():
        while len(warmed_by(new_model)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        processes = warmed_by(new_model)
    # The session's worker runs two pool processes: both hold the model before any call reaches version 2.
    assert len(processes) == 2, processes
