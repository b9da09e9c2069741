"""The SDK's model endpoint builders against a live server and worker: enrichment, explanations, context."""

from __future__ import annotations

import time

import pytest

import apiary
from apiary import enrichment, model_endpoint, predict_body, shapley
from tests.sdk.test_services import customers  # noqa: F401 - fixture


def test_enrichment_explanations_and_context_through_the_sdk(customers, live_worker):  # noqa: F811 - customers
    trained = customers.train_model(
        "churn",
        input_table="marts.customers",
        target_column="churned",
        task_type="classification",
        algorithm="logistic_regression",
        features=["tenure", "plan"],
    )
    by_id = model_endpoint(
        "by_id",
        model_id=trained.model_id,
        return_enriched=True,
        on_bad_row="ignore",
        enrichments=[
            enrichment(
                "marts.customers",
                {"customer_id": "customer_key"},
                {"tenure": "tenure", "plan": "plan"},
                not_found="ignore",
            )
        ],
    )
    svc = customers.create_api_service("extras", "Extras", endpoints=[by_id])
    svc.publish()
    key = svc.create_key(name="app")
    body = predict_body(
        rows=[{"customer_id": 3}, {"customer_id": 9999}], explanations=shapley(top_n=2), context={"request_id": "sdk-1"}
    )
    out = svc.call("by_id", body, api_key=key.key)
    assert out["predictions"][1] == {"ignored": True, "reason": out["predictions"][1]["reason"]}
    assert set(out["enriched"][0]) == {"tenure", "plan"} and out["enriched"][1] is None
    explained = out["explanations"][0]
    total = explained["base"] + sum(explained["contributions"].values()) + explained["others"]
    assert abs(total - out["probabilities"][0]["1"]) < 1e-6
    with pytest.raises(apiary.ValidationError, match="context"):
        svc.call("by_id", predict_body({"customer_id": 3}, context={"x": "y" * 5000}), api_key=key.key)
    deadline = time.monotonic() + 20
    page = svc.logs(status=200)
    while page.total < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
        page = svc.logs(status=200)
    assert page.items[0].context == {"request_id": "sdk-1"}
