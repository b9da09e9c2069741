"""A train_model config is checked against the table's columns, and every refusal names the field."""

from __future__ import annotations

import pytest

from app.errors import APIError
from app.ml.training_config import DEFAULT_MAX_ROWS, validate_training_config


def _base(**overrides) -> dict:
    config = {"target_column": "churned", "task_type": "classification", "algorithm": "random_forest"}
    config.update(overrides)
    return config


def _field(exc: pytest.ExceptionInfo) -> str:
    assert exc.value.status == 422
    (field,) = exc.value.details["fields"]
    assert exc.value.message.startswith(field + ":")
    return field


def test_defaults_are_filled_in(customer_columns):
    cfg = validate_training_config(_base(input_table="marts.customers", model_name="churn"), customer_columns)
    assert cfg.test_size == 0.2
    assert cfg.max_rows == DEFAULT_MAX_ROWS
    assert cfg.feature_columns is None
    assert cfg.hyperparams == {}
    assert cfg.column_types["plan"] == "text"
    assert cfg.to_json()["input_table"] == "marts.customers"


def test_explicit_values_are_kept(customer_columns):
    cfg = validate_training_config(
        _base(
            feature_columns=["tenure", "plan"],
            hyperparams={"n_estimators": 50, "max_depth": None, "max_features": 0.5},
            test_size=0.3,
            max_rows=5000,
        ),
        customer_columns,
    )
    assert cfg.feature_columns == ("tenure", "plan")
    assert cfg.hyperparams == {"n_estimators": 50, "max_depth": None, "max_features": 0.5}
    assert (cfg.test_size, cfg.max_rows) == (0.3, 5000)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"target_column": None}, "config.target_column"),
        ({"target_column": "nope"}, "config.target_column"),
        ({"task_type": "clustering"}, "config.task_type"),
        ({"algorithm": "svm"}, "config.algorithm"),
        ({"task_type": "regression", "algorithm": "logistic_regression", "target_column": "spend"}, "config.algorithm"),
        ({"algorithm": "ridge"}, "config.algorithm"),
        ({"task_type": "regression", "algorithm": "ridge", "target_column": "plan"}, "config.target_column"),
        ({"feature_columns": "tenure"}, "config.feature_columns"),
        ({"feature_columns": []}, "config.feature_columns"),
        ({"feature_columns": ["tenure", "plan", "missing_col"]}, "config.feature_columns[2]"),
        ({"feature_columns": ["tenure", "churned"]}, "config.feature_columns[1]"),
        ({"feature_columns": ["tenure", "tenure"]}, "config.feature_columns[1]"),
        ({"feature_columns": [3]}, "config.feature_columns[0]"),
        ({"test_size": 0}, "config.test_size"),
        ({"test_size": 0.9}, "config.test_size"),
        ({"test_size": "0.2"}, "config.test_size"),
        ({"max_rows": 5}, "config.max_rows"),
        ({"max_rows": DEFAULT_MAX_ROWS + 1}, "config.max_rows"),
        ({"max_rows": True}, "config.max_rows"),
        ({"hyperparams": []}, "config.hyperparams"),
        ({"hyperparams": {"n_estimators": 0}}, "config.hyperparams.n_estimators"),
        ({"hyperparams": {"n_estimators": 5000}}, "config.hyperparams.n_estimators"),
        ({"hyperparams": {"n_estimators": "100"}}, "config.hyperparams.n_estimators"),
        ({"hyperparams": {"n_estimators": 10.5}}, "config.hyperparams.n_estimators"),
        ({"hyperparams": {"n_jobs": -1}}, "config.hyperparams.n_jobs"),
        ({"hyperparams": {"max_features": "all"}}, "config.hyperparams.max_features"),
        ({"hyperparams": {"bootstrap": 1}}, "config.hyperparams.bootstrap"),
        ({"algorithm": "logistic_regression", "hyperparams": {"C": 0}}, "config.hyperparams.C"),
        ({"algorithm": "logistic_regression", "hyperparams": {"n_estimators": 10}}, "config.hyperparams.n_estimators"),
        (
            {"algorithm": "gradient_boosting", "hyperparams": {"learning_rate": -0.1}},
            "config.hyperparams.learning_rate",
        ),
        ({"model_name": ""}, "config.model_name"),
        ({"surprise": 1}, "config.surprise"),
    ],
)
def test_bad_fields_are_named(customer_columns, overrides, field):
    with pytest.raises(APIError) as exc:
        validate_training_config(_base(**overrides), customer_columns)
    assert _field(exc) == field


def test_config_must_be_an_object(customer_columns):
    with pytest.raises(APIError) as exc:
        validate_training_config(["target"], customer_columns)
    assert _field(exc) == "config"


def test_unknown_hyperparam_lists_the_allowed_ones(customer_columns):
    with pytest.raises(APIError) as exc:
        validate_training_config(_base(algorithm="logistic_regression", hyperparams={"alpha": 1}), customer_columns)
    assert "C" in exc.value.message and "max_iter" in exc.value.message


def test_hyperparams_per_algorithm_are_accepted(customer_columns):
    ridge = validate_training_config(
        {"target_column": "spend", "task_type": "regression", "algorithm": "ridge", "hyperparams": {"alpha": 2}},
        customer_columns,
    )
    assert ridge.hyperparams == {"alpha": 2.0}
    logistic = validate_training_config(
        _base(algorithm="logistic_regression", hyperparams={"C": 0.5, "class_weight": "balanced", "max_iter": 200}),
        customer_columns,
    )
    assert logistic.hyperparams["class_weight"] == "balanced"
