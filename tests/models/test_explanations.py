"""Exact Shapley explanations of model predictions, computed on a real worker and served over HTTP."""

from __future__ import annotations

import random

import pytest

from tests.models.conftest import classification_config, put_dataset, regression_config, train
from tests.models.test_enrichment import model_ep, predict, publish
from tests.serving.test_serving_data import mint

ROWS = [
    {"tenure": 2, "monthly": 80.0, "plan": "basic", "region": "US"},
    {"tenure": 50, "monthly": None, "plan": "premium", "region": "EU"},
    {"tenure": 15, "monthly": 40.0, "plan": "premium", "region": None},
]


@pytest.fixture()
def models(client, admin, project, churn, live_worker) -> dict:
    pid = project["project_id"]
    ids = {}
    for algorithm in ("random_forest", "gradient_boosting", "logistic_regression"):
        extra = {"hyperparams": {"n_estimators": 20}} if algorithm != "logistic_regression" else {}
        run = train(client, admin, pid, classification_config(algorithm=algorithm, **extra), name=algorithm)
        assert run["status"] == "success", run
        ids[algorithm] = run["model_id"]
    run = train(
        client,
        admin,
        pid,
        regression_config(algorithm="gradient_boosting", hyperparams={"n_estimators": 20}),
        name="spend",
    )
    assert run["status"] == "success", run
    ids["spend"] = run["model_id"]
    return ids


def test_contributions_sum_to_the_served_output(client, admin, project, models):
    asset = publish(
        client,
        admin,
        project["project_id"],
        [model_ep(mid, name) for name, mid in models.items()]
        + [model_ep(models["random_forest"], "default", explanations={"method": "shapley", "top_n": 1})],
    )
    key = mint(client, admin, asset, rate_limit=1000)["key"]
    for name in models:
        rows = ROWS if name != "spend" else [{k: v for k, v in r.items() if k != "region"} for r in ROWS]
        resp = predict(client, key, name, {"rows": rows, "explanations": {"method": "shapley", "top_n": 4}})
        assert resp.status_code == 200, (name, resp.get_json())
        body = resp.get_json()
        for i, explained in enumerate(body["explanations"]):
            served = body["probabilities"][i]["1"] if name != "spend" else body["predictions"][i]
            assert set(explained["contributions"]) == {"tenure", "monthly", "plan", "region"} - set(
                rows[i]
            ).symmetric_difference({"tenure", "monthly", "plan", "region"})
            total = explained["base"] + sum(explained["contributions"].values()) + explained["others"]
            assert abs(total - served) < 1e-6, (name, i, explained, served)
            assert abs(explained["output"] - served) < 1e-6
        # one-hot columns are folded back: plan is one feature, never plan_basic
        assert all("_" not in f for e in body["explanations"] for f in e["contributions"])

    top = predict(client, key, "logistic_regression", {"features": ROWS[0], "explanations": {"method": "shapley"}})
    [explained] = top.get_json()["explanations"]
    assert len(explained["contributions"]) == 3  # top_n defaults to 3; the rest is in "others"
    every = predict(
        client, key, "logistic_regression", {"features": ROWS[0], "explanations": {"method": "shapley", "top_n": 4}}
    ).get_json()
    full = every["explanations"][0]["contributions"]
    [left_out] = set(full) - set(explained["contributions"])
    assert all(abs(v) >= abs(full[left_out]) for v in explained["contributions"].values())
    assert abs(explained["others"] - full[left_out]) < 1e-12

    default = predict(client, key, "default", {"features": ROWS[0]}).get_json()  # the endpoint's default
    assert len(default["explanations"][0]["contributions"]) == 1
    plain = predict(client, key, "random_forest", {"features": ROWS[0]}).get_json()
    assert "explanations" not in plain


def test_bad_explanation_requests_and_the_row_cap(app, client, admin, project, models, live_worker):
    pid = project["project_id"]
    # A model of 13 input features: exact Shapley values would cost 2^13 evaluations per row.
    rng = random.Random(1)
    names = [f"x{i}" for i in range(13)]
    rows = [{**{n: rng.random() for n in names}, "y": rng.randint(0, 1)} for _ in range(60)]
    put_dataset(app, pid, "marts.wide", rows, {**dict.fromkeys(names, "float"), "y": "integer"})
    wide = train(
        client,
        admin,
        pid,
        {
            "input_table": "marts.wide",
            "target_column": "y",
            "task_type": "classification",
            "algorithm": "logistic_regression",
            "feature_columns": names,
        },
        name="wide",
    )
    assert wide["status"] == "success", wide
    refused = _create_default(client, admin, pid, wide["model_id"])
    assert refused.status_code == 422
    assert "config.endpoints[0].explanations.method" in refused.get_json()["error"]["details"]["fields"]

    asset = publish(client, admin, pid, [model_ep(models["random_forest"], "rf"), model_ep(wide["model_id"], "wide")])
    key = mint(client, admin, asset, rate_limit=1000)["key"]
    for endpoint, ask, field in (
        ("rf", {"method": "lime"}, "explanations.method"),
        ("rf", {"method": "shapley", "top_n": 0}, "explanations.top_n"),
        ("rf", "yes", "explanations"),
        ("wide", {"method": "shapley"}, "explanations.method"),
    ):
        features = ROWS[0] if endpoint == "rf" else {n: 0.5 for n in names}
        resp = predict(client, key, endpoint, {"features": features, "explanations": ask})
        assert resp.status_code == 422, (ask, resp.get_json())
        assert list(resp.get_json()["error"]["details"]["fields"]) == [field]
    app.config["EXPLAIN_MAX_ROWS"] = 2
    capped = predict(client, key, "rf", {"rows": ROWS, "explanations": {"method": "shapley"}})
    assert capped.status_code == 422 and "explanations" in capped.get_json()["error"]["details"]["fields"]
    assert predict(client, key, "rf", {"rows": ROWS[:2], "explanations": {"method": "shapley"}}).status_code == 200


def _create_default(client, admin, pid, model_id):
    from tests.publishing.test_assets import _create

    return _create(
        client, admin, pid, key="wide-service", endpoints=[model_ep(model_id, "w", explanations={"method": "shapley"})]
    )
