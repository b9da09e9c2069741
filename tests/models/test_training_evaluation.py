"""A training run on a real worker stores the held-out evaluation with the model version, bounded, and the model
detail answers it (null for nothing else)."""

from __future__ import annotations

import json

from app.ml.evaluation import MAX_ROC_POINTS, MAX_SCATTER_POINTS
from tests.models.conftest import churn_rows, classification_config, put_dataset, regression_config, train


def test_runs_store_roc_confusion_and_predicted_vs_actual(app, client, admin, project, live_worker):
    pid = project["project_id"]
    put_dataset(app, pid, "marts.churn", churn_rows(n=3000))
    run = train(client, admin, pid, classification_config(test_size=0.3))
    assert run["status"] == "success", run
    detail = client.get(f"/api/models/{run['model_id']}", headers=admin.project_headers(pid)).get_json()
    evaluation = detail["evaluation"]
    assert evaluation["n_test"] == 900
    (curve,) = evaluation["roc"]
    assert 2 <= len(curve["fpr"]) == len(curve["tpr"]) <= MAX_ROC_POINTS
    assert curve["auc"] == detail["metrics"]["roc_auc"]
    assert sum(map(sum, evaluation["confusion"]["matrix"])) == 900
    assert len(evaluation["confusion"]["labels"]) == len(detail["classes"]) == 2
    assert "evaluation" not in run["metrics"]  # metrics stay numbers

    run = train(client, admin, pid, regression_config(test_size=0.3), name="spend")
    assert run["status"] == "success", run
    detail = client.get(f"/api/models/{run['model_id']}", headers=admin.project_headers(pid)).get_json()
    pairs = detail["evaluation"]["predicted_vs_actual"]
    assert len(pairs["actual"]) == len(pairs["predicted"]) == MAX_SCATTER_POINTS
    assert detail["evaluation"]["n_test"] == 900
    assert len(json.dumps(detail["evaluation"])) < 20_000
