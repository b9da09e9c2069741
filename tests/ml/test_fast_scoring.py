"""The compiled scoring path gives scikit-learn's answers, and steps aside for pipelines it cannot reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import QuantileTransformer

from app.ml.fast_scoring import compile_pipeline, probe_rows
from app.ml.frames import model_frame
from app.ml.scoring import Scorer, score_rows
from app.ml.training import train_model
from app.ml.training_config import ALGORITHMS, validate_training_config
from app.warehouse.engine import ColumnInfo
from tests.ml.conftest import CUSTOMER_TYPES, customer_frame

COLUMNS = [ColumnInfo(name, kind) for name, kind in CUSTOMER_TYPES.items()]
FEATURES = ["tenure", "monthly", "plan", "autopay", "signup"]
TARGETS = {"classification": "segment", "regression": "spend"}
CASES = [(task, algorithm) for task, algorithms in ALGORITHMS.items() for algorithm in algorithms]


def _train(task_type: str, algorithm: str, features=FEATURES):
    config = {
        "target_column": TARGETS[task_type],
        "task_type": task_type,
        "algorithm": algorithm,
        "feature_columns": features,
        "hyperparams": {"n_estimators": 20} if "forest" in algorithm else {},
    }
    return train_model(customer_frame(), validate_training_config(config, COLUMNS))


def _rows(n: int = 120) -> list[dict]:
    """Rows as validate_rows leaves them: training rows plus missing values, unseen categories and odd numbers."""
    frame = customer_frame(n, seed=11)
    rows = []
    for record in frame[FEATURES].to_dict("records"):
        rows.append({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()})
    rows += [
        {"tenure": None, "monthly": None, "plan": None, "autopay": None, "signup": None},
        {"tenure": 10**7, "monthly": -1e9, "plan": "platinum", "autopay": True, "signup": "1970-01-01"},
        {"tenure": 0, "monthly": 0.0, "plan": "", "autopay": False, "signup": "2099-12-31"},
    ]
    return rows


def _assert_same(want: dict, got: dict) -> None:
    if want["probabilities"] is None:
        assert got["probabilities"] is None
        np.testing.assert_allclose(got["predictions"], want["predictions"], rtol=1e-9, atol=1e-9)
        return
    assert got["predictions"] == want["predictions"]
    for w, g in zip(want["probabilities"], got["probabilities"], strict=True):
        assert w.keys() == g.keys()
        for key in w:
            assert g[key] == pytest.approx(w[key], abs=1e-9)


@pytest.mark.parametrize(("task_type", "algorithm"), CASES)
def test_every_algorithm_compiles_and_matches_scikit_learn(task_type, algorithm):
    trained = _train(task_type, algorithm)
    compiled = compile_pipeline(trained.pipeline, trained.input_schema)
    assert compiled is not None
    rows = _rows()
    _assert_same(score_rows(trained.pipeline, rows, trained.input_schema), compiled.score(rows))
    # One row at a time too: what a single-row request sends.
    for row in rows[-3:]:
        _assert_same(score_rows(trained.pipeline, [row], trained.input_schema), compiled.score([row]))


def test_the_encoded_matrix_is_what_the_fitted_preprocessing_outputs():
    trained = _train("classification", "logistic_regression")
    compiled = compile_pipeline(trained.pipeline, trained.input_schema)
    rows = _rows(30)
    want = trained.pipeline.named_steps["preprocess"].transform(model_frame(rows, trained.input_schema))
    np.testing.assert_allclose(compiled.encode(rows), want, rtol=1e-12, atol=1e-12)


def test_numeric_only_and_categorical_only_models_compile():
    for features in (["tenure", "monthly"], ["plan", "autopay"]):
        trained = _train("regression", "ridge", features)
        compiled = compile_pipeline(trained.pipeline, trained.input_schema)
        assert compiled is not None
        rows = [{k: row[k] for k in features} for row in _rows(20)]
        _assert_same(score_rows(trained.pipeline, rows, trained.input_schema), compiled.score(rows))


def test_a_pipeline_of_another_shape_is_left_to_scikit_learn():
    trained = _train("classification", "logistic_regression", ["tenure", "monthly"])
    bare = trained.pipeline.named_steps["model"]
    assert compile_pipeline(bare, trained.input_schema) is None
    # A pipeline without the preprocessing step Apiary builds: scored by scikit-learn itself, with its answers.
    schema = trained.input_schema
    frame = customer_frame()
    other = Pipeline([("impute", SimpleImputer(strategy="median")), ("model", LogisticRegression(max_iter=500))])
    other.fit(model_frame(frame, schema), frame["segment"].to_numpy())
    assert compile_pipeline(other, schema) is None
    scorer = Scorer(other)
    rows = [{"tenure": row["tenure"], "monthly": row["monthly"]} for row in _rows(20)]
    assert scorer.score(rows, schema) == score_rows(other, rows, schema)
    assert not scorer.compiled


def test_a_preprocessing_the_probes_cannot_reproduce_is_refused():
    """A quantile transform is not affine: reading it off two probe points would score wrongly, and the check
    against scikit-learn on the probe set catches it, so the Scorer answers through scikit-learn instead."""
    schema = [
        {"name": "tenure", "type": "integer", "categories": None, "nullable": True},
        {"name": "monthly", "type": "float", "categories": None, "nullable": True},
    ]
    frame = customer_frame()
    x = model_frame(frame, schema)
    y = frame["segment"].to_numpy()
    numeric = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("quantile", QuantileTransformer(n_quantiles=50))]
    )
    pipeline = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", numeric, ["tenure", "monthly"])])),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    pipeline.fit(x, y)
    assert compile_pipeline(pipeline, schema) is None
    scorer = Scorer(pipeline)
    rows = probe_rows(schema)
    assert scorer.score(rows, schema) == score_rows(pipeline, rows, schema)
    assert not scorer.compiled


def test_probe_rows_cover_every_feature_with_missing_values():
    trained = _train("classification", "gradient_boosting")
    rows = probe_rows(trained.input_schema)
    for feature in trained.input_schema:
        values = [row[feature["name"]] for row in rows]
        assert None in values
        assert any(v is not None for v in values)


@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_a_random_forest_is_walked_as_arrays_with_scikit_learns_exact_answers(task_type):
    from app.ml.fast_scoring import compile_forest

    trained = _train(task_type, "random_forest")
    schema = trained.input_schema
    compiled = compile_pipeline(trained.pipeline, schema)
    assert compiled is not None and compiled.estimator is not trained.pipeline.steps[-1][1]
    assert compile_forest(trained.pipeline.steps[-1][1]) is not None
    rows = _rows(300)
    want = score_rows(trained.pipeline, rows, schema)
    got = compiled.score(rows)
    # Same leaves, same normalisation, same order of summation: equal, not just close.
    assert got == want
    one = compiled.score(rows[:1])
    assert one == score_rows(trained.pipeline, rows[:1], schema)


def test_a_value_scikit_learn_refuses_is_still_refused_by_the_compiled_forest():
    trained = _train("classification", "random_forest", features=["tenure", "monthly"])
    compiled = compile_pipeline(trained.pipeline, trained.input_schema)
    assert compiled is not None
    huge = [{"tenure": 1, "monthly": 1e39}]  # finite as float64, infinite as the float32 scikit-learn scores in
    with pytest.raises(ValueError) as sklearn_error:
        score_rows(trained.pipeline, huge, trained.input_schema)
    with pytest.raises(ValueError) as compiled_error:
        compiled.score(huge)
    assert str(compiled_error.value) == str(sklearn_error.value)


def test_other_estimators_are_not_walked_as_forests():
    from sklearn.ensemble import ExtraTreesClassifier

    from app.ml.fast_scoring import compile_forest

    x, y = np.random.default_rng(1).normal(size=(50, 3)), np.arange(50) % 2
    assert compile_forest(LogisticRegression().fit(x, y)) is None
    assert compile_forest(ExtraTreesClassifier(n_estimators=3).fit(x, y)) is None
