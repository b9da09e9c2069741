"""Model endpoint requests beyond features: the caller's context (audited) and the GET form for one row."""

from __future__ import annotations

import time

import pytest

from tests.models.conftest import classification_config, put_dataset, train
from tests.models.test_enrichment import CUSTOMER_TYPES, CUSTOMERS, ENRICH, model_ep, predict, publish
from tests.serving.test_serving_data import mint

LEAVES = {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"}


@pytest.fixture()
def service(app, client, admin, project, churn, live_worker) -> dict:
    pid = project["project_id"]
    put_dataset(app, pid, "marts.customers", CUSTOMERS, CUSTOMER_TYPES)
    trained = train(client, admin, pid, classification_config())
    assert trained["status"] == "success", trained
    mid = trained["model_id"]
    asset = publish(
        client,
        admin,
        pid,
        [
            model_ep(mid, "churn"),
            model_ep(mid, "by_id", enrichments=[ENRICH]),
            {"id": "fn", "kind": "function", "handler": "def handler(p):\n    return p\n"},
        ],
    )
    return {"asset": asset, "key": mint(client, admin, asset, rate_limit=1000, masking_level="unmasked")["key"]}


def get(client, key: str, endpoint: str, **params):
    return client.get(f"/api/service/enriched/{endpoint}", headers={"X-API-Key": key}, query_string=params)


def test_context_is_never_scored_is_audited_and_shown_in_the_test_pane(client, admin, service):
    context = {"request_id": "r-42", "channel": "web", "note": "é" * 10}
    resp = predict(client, service["key"], "churn", {"features": LEAVES, "context": context})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["predictions"] == [1] and "context" not in resp.get_json()

    for bad in ({"a": "x" * 4100}, {"a": "é" * 2100}, ["not", "an", "object"], "text"):
        refused = predict(client, service["key"], "churn", {"features": LEAVES, "context": bad})
        assert refused.status_code == 422, refused.get_json()
        assert list(refused.get_json()["error"]["details"]["fields"]) == ["context"]

    url = f"/api/api-services/{service['asset']}/logs"
    deadline, items = time.monotonic() + 15, []
    while time.monotonic() < deadline and not any(i["status"] == 200 for i in items):
        time.sleep(0.3)
        items = client.get(url, headers=admin.headers).get_json()["items"]
    [ok] = [i for i in items if i["status"] == 200]
    assert ok["context"] == context and ok["model_id"] == resp.get_json()["model_id"]
    assert all(i["model_id"] is None for i in items if i["status"] != 200)  # a refused call names no model

    pane = client.post(
        f"/api/api-services/{service['asset']}/endpoints/churn/test",
        headers=admin.headers,
        json={"features": LEAVES, "context": context},
    )
    assert pane.status_code == 200, pane.get_json()
    assert pane.get_json()["context"] == context and pane.get_json()["dry"] is True


def test_get_form_scores_one_row_with_the_same_validation(client, service):
    key = service["key"]
    as_get = get(client, key, "churn", tenure="2", monthly="80", plan="basic", region="US")
    assert as_get.status_code == 200, as_get.get_json()
    as_post = predict(client, key, "churn", {"features": LEAVES}).get_json()
    assert as_get.get_json()["probabilities"] == as_post["probabilities"] and as_get.get_json()["count"] == 1

    for params, field in (
        (dict(tenure="two", monthly="80", plan="basic", region="US"), "features.tenure"),
        (dict(tenure="2", monthly="lots", plan="basic", region="US"), "features.monthly"),
        (dict(tenure="2", monthly="80", plan="basic"), "features.region"),
        (dict(tenure="2", monthly="80", plan="basic", region="US", ghost="1"), "features.ghost"),
    ):
        resp = get(client, key, "churn", **params)
        assert resp.status_code == 422, (params, resp.get_json())
        assert field in resp.get_json()["error"]["details"]["fields"], (params, resp.get_json())

    # An enrichment key arrives as a string and is matched as the dataset column's type.
    enriched = get(client, key, "by_id", customer_id="1", monthly="80")
    assert enriched.status_code == 200, enriched.get_json()
    assert enriched.get_json()["probabilities"] == as_post["probabilities"]

    # GET is for model endpoints only: a function endpoint still answers 405.
    assert get(client, key, "fn").status_code == 405
    put = client.put("/api/service/enriched/churn", headers={"X-API-Key": key}, json={})
    assert put.status_code == 405 and put.headers["Allow"] == "POST, GET"


def test_classifiers_answer_probability_percentiles_from_held_out_scores(app, client, service):
    from app.db import MLModel
    from app.extensions import db

    rows = [
        {"tenure": t, "monthly": m, "plan": p, "region": "EU"}
        for t in (1, 10, 30, 60)
        for m in (15.0, 85.0)
        for p in ("basic", "premium")
    ]
    resp = predict(client, service["key"], "churn", {"rows": rows})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    with app.app_context():
        model = db.session.get(MLModel, body["model_id"])
        quantiles = model.score_quantiles
    assert set(quantiles) == {"0", "1"} and all(len(q) == 101 and q == sorted(q) for q in quantiles.values())
    pairs = sorted(
        (probs["1"], pct["1"])
        for probs, pct in zip(body["probabilities"], body["probability_percentiles"], strict=True)
    )
    assert [pct for _, pct in pairs] == sorted(pct for _, pct in pairs)  # a higher score never ranks lower
    for p, pct in pairs:
        assert 0 <= pct <= 100
        if p <= quantiles["1"][0]:
            assert pct == 0
        if p >= quantiles["1"][-1]:
            assert pct == 100
    assert len({pct for _, pct in pairs}) > 3

    # A model trained before percentiles were recorded has none: the field is left out.
    with app.app_context():
        db.session.get(MLModel, body["model_id"]).score_quantiles = None
        db.session.commit()
        from app.serving.state import bump_serving_generation

        bump_serving_generation()  # model rows are cached per web process (issue 15): a direct change bumps
    older = predict(client, service["key"], "churn", {"rows": rows[:2]}).get_json()
    assert "probability_percentiles" not in older and len(older["probabilities"]) == 2


def test_percentile_of_matches_the_empirical_rank():
    import random

    import numpy as np

    from app.ml.percentiles import percentile_of

    rng = random.Random(3)
    scores = np.array([rng.betavariate(2, 5) for _ in range(2000)])
    quantiles = [float(q) for q in np.quantile(scores, np.linspace(0, 1, 101))]
    for p in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7):
        assert abs(percentile_of(quantiles, p) - 100 * float((scores <= p).mean())) < 1.0
    assert percentile_of(quantiles, -1) == 0 and percentile_of(quantiles, 2) == 100
    assert percentile_of([0.0] * 50 + [1.0] * 51, 0.0) == 24.5  # a tie takes the middle of its run
