"""The held-out evaluation stored with a model: ROC curves, confusion matrix, predicted vs actual, bounded in size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from app.ml.evaluation import MAX_CONFUSION_CLASSES, MAX_ROC_CLASSES, MAX_ROC_POINTS, MAX_SCATTER_POINTS
from app.ml.training import train_model
from app.ml.training_config import validate_training_config
from app.warehouse.engine import ColumnInfo

COLUMNS = [
    ColumnInfo("x1", "float"),
    ColumnInfo("x2", "float"),
    ColumnInfo("label", "boolean"),
    ColumnInfo("amount", "float"),
    ColumnInfo("grade", "text"),
]


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    """4,000 rows with a weak signal: held-out ROC curves with far more than MAX_ROC_POINTS corners."""
    rng = np.random.default_rng(1)
    n = 4000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "label": (x1 + rng.normal(scale=2, size=n)) > 0,
            "amount": x1 * 3 + rng.normal(size=n),
            "grade": rng.choice(list("abcdefghijklmnopqrstuvwxyz"), n),
        }
    )


def _train(df, target: str, task_type: str, algorithm: str = "logistic_regression"):
    config = {
        "target_column": target,
        "task_type": task_type,
        "algorithm": algorithm,
        "feature_columns": ["x1", "x2"],
        "test_size": 0.5,
    }
    return train_model(df, validate_training_config(config, COLUMNS))


def test_binary_roc_is_thinned_and_matches_the_metrics(noisy):
    model = _train(noisy, "label", "classification")
    evaluation = model.evaluation
    assert evaluation["n_test"] == model.n_test == 2000
    (curve,) = evaluation["roc"]
    assert curve["class"] == "true"
    # Without the bound the curve has more corners than we store.
    x_test = noisy.iloc[: model.n_test][["x1", "x2"]]
    raw, _, _ = skm.roc_curve(noisy.iloc[: model.n_test]["label"], model.pipeline.predict_proba(x_test)[:, 1])
    assert len(raw) > MAX_ROC_POINTS
    assert len(curve["fpr"]) == len(curve["tpr"]) <= MAX_ROC_POINTS
    assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0) and (curve["fpr"][-1], curve["tpr"][-1]) == (1.0, 1.0)
    assert curve["fpr"] == sorted(curve["fpr"]) and curve["tpr"] == sorted(curve["tpr"])
    assert curve["auc"] == pytest.approx(model.metrics["roc_auc"], abs=1e-9)
    confusion = evaluation["confusion"]
    assert confusion["labels"] == ["false", "true"]
    assert sum(map(sum, confusion["matrix"])) == 2000
    accuracy = (confusion["matrix"][0][0] + confusion["matrix"][1][1]) / 2000
    assert accuracy == pytest.approx(model.metrics["accuracy"])
    assert len(json.dumps(evaluation)) < 10_000


def test_many_classes_are_bounded_and_pooled(noisy):
    model = _train(noisy, "grade", "classification")
    evaluation = model.evaluation
    assert len(model.classes) == 26
    assert len(evaluation["roc"]) == MAX_ROC_CLASSES
    assert all(len(c["fpr"]) <= MAX_ROC_POINTS for c in evaluation["roc"])
    confusion = evaluation["confusion"]
    assert len(confusion["labels"]) == MAX_CONFUSION_CLASSES and confusion["labels"][-1] == "(other)"
    assert all(len(row) == MAX_CONFUSION_CLASSES for row in confusion["matrix"])
    assert sum(map(sum, confusion["matrix"])) == evaluation["n_test"]  # pooled, nothing lost
    assert len(json.dumps(evaluation)) < 60_000


def test_regression_stores_a_bounded_sample_of_predicted_vs_actual(noisy):
    model = _train(noisy, "amount", "regression", "ridge")
    pairs = model.evaluation["predicted_vs_actual"]
    assert model.evaluation["n_test"] == 2000
    assert len(pairs["actual"]) == len(pairs["predicted"]) == MAX_SCATTER_POINTS
    actual = set(np.round(noisy["amount"].to_numpy(), 3))
    assert all(round(a, 3) in actual or any(abs(a - b) < 1e-3 for b in actual) for a in pairs["actual"][:20])
    # A good fit: the sample's errors agree with the stored RMSE.
    errors = np.asarray(pairs["predicted"]) - np.asarray(pairs["actual"])
    assert float(np.sqrt((errors**2).mean())) == pytest.approx(model.metrics["rmse"], rel=0.15)
    assert "roc" not in model.evaluation


def test_small_test_sets_keep_every_point(noisy):
    small = noisy.iloc[:40]
    model = _train(small, "amount", "regression", "ridge")
    assert len(model.evaluation["predicted_vs_actual"]["actual"]) == model.n_test == 20
