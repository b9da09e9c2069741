"""Scoring rows with trained pipelines, and the per-process cache that loads each model once per file version."""

from __future__ import annotations

import json
import threading

import pytest
from sklearn.dummy import DummyRegressor

from app.ml.input_schema import parse_predict_body, validate_rows
from app.ml.scoring import ModelCache, score_rows
from app.ml.store import ArtifactRejected, load_artifact, save_artifact
from app.ml.training import train_model
from app.ml.training_config import validate_training_config
from app.warehouse.engine import ColumnInfo
from tests.ml.conftest import CUSTOMER_TYPES, customer_frame

COLUMNS = [ColumnInfo(name, kind) for name, kind in CUSTOMER_TYPES.items()]
FEATURES = ["tenure", "monthly", "plan", "autopay"]


def _train(target: str, task_type: str, algorithm: str):
    config = {"target_column": target, "task_type": task_type, "algorithm": algorithm, "feature_columns": FEATURES}
    return train_model(customer_frame(), validate_training_config(config, COLUMNS))


@pytest.fixture(scope="module")
def churn_model():
    return _train("churned", "classification", "random_forest")


@pytest.fixture(scope="module")
def segment_model():
    return _train("segment", "classification", "logistic_regression")


@pytest.fixture(scope="module")
def spend_model():
    return _train("spend", "regression", "gradient_boosting")


def _score(model, body):
    rows, single = parse_predict_body(body)
    rows = validate_rows(model.input_schema, rows, max_rows=100, single=single)
    return score_rows(model.pipeline, rows, model.input_schema)


def test_single_row_gets_a_class_and_probabilities(churn_model):
    body = {"features": {"tenure": 2, "monthly": 30.5, "plan": "basic", "autopay": False}}
    out = _score(churn_model, body)
    assert out["predictions"] == [True]  # a two-month basic customer without autopay churns
    (probs,) = out["probabilities"]
    assert set(probs) == {"false", "true"}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["true"] > 0.5
    json.dumps(out)


def test_batch_scores_every_row_in_order(churn_model):
    rows = [
        {"tenure": 2, "monthly": 30.0, "plan": "basic", "autopay": False},
        {"tenure": 50, "monthly": 70.0, "plan": "premium", "autopay": True},
    ]
    out = _score(churn_model, {"rows": rows})
    assert out["predictions"] == [True, False]
    assert len(out["probabilities"]) == 2
    assert out["probabilities"][1]["false"] > 0.5


def test_nulls_and_unseen_categories_are_scored(churn_model):
    row = {"tenure": None, "monthly": None, "plan": "enterprise", "autopay": None}
    out = _score(churn_model, {"features": row})
    assert out["predictions"][0] in (True, False)


def test_multiclass_probabilities_are_keyed_by_class(segment_model):
    out = _score(segment_model, {"features": {"tenure": 40, "monthly": 50.0, "plan": "premium", "autopay": True}})
    assert out["predictions"] == ["gold"]
    assert set(out["probabilities"][0]) == {"bronze", "gold", "silver"}
    json.dumps(out)


def test_regression_has_numbers_and_no_probabilities(spend_model):
    out = _score(spend_model, {"rows": [{"tenure": 10, "monthly": 50.0, "plan": "basic", "autopay": True}] * 3})
    assert out["probabilities"] is None
    assert len(out["predictions"]) == 3
    assert all(type(p) is float for p in out["predictions"])
    assert out["predictions"][0] == pytest.approx(50, abs=25)  # spend ~ tenure * monthly / 10


def test_integer_class_labels_become_string_keys(tmp_path):
    df = customer_frame()
    df["churned"] = df["churned"].astype(int)
    columns = [ColumnInfo(n, "integer" if n == "churned" else t) for n, t in CUSTOMER_TYPES.items()]
    config = {"target_column": "churned", "task_type": "classification", "algorithm": "gradient_boosting"}
    model = train_model(df, validate_training_config({**config, "feature_columns": FEATURES}, columns))
    out = _score(model, {"features": {"tenure": 3, "monthly": 20.0, "plan": "basic", "autopay": False}})
    assert model.classes == [0, 1]
    assert out["predictions"] == [1] and type(out["predictions"][0]) is int
    assert set(out["probabilities"][0]) == {"0", "1"}


def test_stored_model_scores_the_same_after_loading(tmp_path, churn_model):
    info = save_artifact(str(tmp_path), "churn", churn_model.pipeline)
    loaded = load_artifact(info.path, info.sha256, info.sklearn_version)
    rows = [{"tenure": 5, "monthly": 40.0, "plan": "standard", "autopay": True}]
    assert score_rows(loaded, rows, churn_model.input_schema) == score_rows(
        churn_model.pipeline, rows, churn_model.input_schema
    )


# --- ModelCache --------------------------------------------------------------------------------------------------


class CountingLoader:
    def __init__(self):
        self.calls: list[str] = []

    def __call__(self, path, sha256, sklearn_version):
        self.calls.append(path)
        return load_artifact(path, sha256, sklearn_version)


def _constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit([[0]], [0])


def test_cache_loads_once_and_reloads_when_the_hash_changes(tmp_path):
    loader = CountingLoader()
    cache = ModelCache(maxsize=2, loader=loader)
    v1 = save_artifact(str(tmp_path), "m1-a", _constant(1.0))
    first = cache.get(1, v1.path, v1.sha256, v1.sklearn_version)
    assert cache.get(1, v1.path, v1.sha256, v1.sklearn_version) is first
    assert len(loader.calls) == 1

    v2 = save_artifact(str(tmp_path), "m1-b", _constant(2.0))  # model 1 retrained: a new file and hash
    second = cache.get(1, v2.path, v2.sha256, v2.sklearn_version)
    assert second.predict([[0]]).tolist() == [2.0]
    assert len(loader.calls) == 2


def test_cache_evicts_the_least_recently_used(tmp_path):
    loader = CountingLoader()
    cache = ModelCache(maxsize=2, loader=loader)
    infos = {i: save_artifact(str(tmp_path), f"m{i}", _constant(float(i))) for i in (1, 2, 3)}

    def get(i):
        return cache.get(i, infos[i].path, infos[i].sha256, infos[i].sklearn_version)

    get(1)
    get(2)
    get(1)  # 1 is now more recent than 2
    get(3)  # evicts 2
    assert len(cache) == 2
    assert 1 in cache and 3 in cache and 2 not in cache
    get(2)
    assert loader.calls.count(infos[2].path) == 2
    assert loader.calls.count(infos[1].path) == 1


def test_cache_does_not_keep_a_rejected_artifact(tmp_path):
    cache = ModelCache()
    info = save_artifact(str(tmp_path), "m", _constant(1.0))
    with pytest.raises(ArtifactRejected):
        cache.get(7, info.path, "f" * 64, info.sklearn_version)
    assert 7 not in cache
    assert cache.get(7, info.path, info.sha256, info.sklearn_version).predict([[0]]).tolist() == [1.0]


def test_cache_is_safe_across_threads(tmp_path):
    cache = ModelCache(maxsize=3)
    infos = [save_artifact(str(tmp_path), f"m{i}", _constant(float(i))) for i in range(6)]
    errors: list[BaseException] = []

    def worker(offset: int):
        try:
            for n in range(60):
                i = (n + offset) % 6
                model = cache.get(i, infos[i].path, infos[i].sha256, infos[i].sklearn_version)
                assert model.predict([[0]]).tolist() == [float(i)]
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) <= 3
