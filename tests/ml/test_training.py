"""Training every algorithm on a small mixed-type table: metrics, importance, feature choice and data errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from app.errors import APIError
from app.ml.training import train_model
from app.ml.training_config import ALGORITHMS, validate_training_config
from app.warehouse.engine import ColumnInfo
from tests.ml.conftest import customer_frame

FEATURES = {"tenure", "monthly", "plan", "autopay"}


def _config(columns, **config):
    return validate_training_config(config, columns)


@pytest.mark.parametrize("algorithm", ALGORITHMS["classification"])
def test_binary_classifiers_learn_and_report(customers, customer_columns, algorithm):
    cfg = _config(
        customer_columns,
        target_column="churned",
        task_type="classification",
        algorithm=algorithm,
        feature_columns=sorted(FEATURES),
    )
    trained = train_model(customers, cfg)

    assert set(trained.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert all(0 <= v <= 1 for v in trained.metrics.values())
    assert trained.metrics["accuracy"] > 0.7  # the churn rule is learnable
    assert trained.classes == [False, True]
    assert trained.n_train + trained.n_test == len(customers)
    assert trained.n_test == 48
    assert set(trained.feature_importance) == FEATURES
    assert sum(trained.feature_importance.values()) == pytest.approx(1.0)
    json.dumps({"metrics": trained.metrics, "classes": trained.classes, "fi": trained.feature_importance})


@pytest.mark.parametrize("algorithm", ALGORITHMS["classification"])
def test_multiclass_classifiers_use_weighted_metrics(customers, customer_columns, algorithm):
    cfg = _config(
        customer_columns,
        target_column="segment",
        task_type="classification",
        algorithm=algorithm,
        feature_columns=["tenure", "monthly", "plan"],
    )
    trained = train_model(customers, cfg)
    assert trained.classes == ["bronze", "gold", "silver"]
    assert trained.metrics["roc_auc"] is not None and 0.5 < trained.metrics["roc_auc"] <= 1
    assert trained.metrics["accuracy"] > 0.6
    assert set(trained.feature_importance) == {"tenure", "monthly", "plan"}
    assert sum(trained.feature_importance.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS["regression"])
def test_regressors_learn_and_report(customers, customer_columns, algorithm):
    cfg = _config(
        customer_columns,
        target_column="spend",
        task_type="regression",
        algorithm=algorithm,
        feature_columns=sorted(FEATURES),
    )
    trained = train_model(customers, cfg)
    assert set(trained.metrics) == {"rmse", "mae", "r2"}
    assert trained.metrics["rmse"] >= trained.metrics["mae"] > 0
    assert trained.metrics["r2"] > 0.5  # spend follows tenure and the monthly fee
    assert trained.classes is None
    assert sum(trained.feature_importance.values()) == pytest.approx(1.0)
    # tenure drives spend; the plan (one-hot, three columns) is noise and is reported as one feature
    assert max(trained.feature_importance, key=trained.feature_importance.get) in ("tenure", "monthly")
    assert "plan" in trained.feature_importance


def test_hyperparams_reach_the_estimator(customers, customer_columns):
    cfg = _config(
        customer_columns,
        target_column="churned",
        task_type="classification",
        algorithm="random_forest",
        feature_columns=["tenure", "plan"],
        hyperparams={"n_estimators": 7, "max_depth": 3},
    )
    model = train_model(customers, cfg).pipeline.named_steps["model"]
    assert (model.n_estimators, model.max_depth, len(model.estimators_)) == (7, 3, 7)


def test_same_seed_same_model(customers, customer_columns):
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    assert train_model(customers, cfg).metrics == train_model(customers, cfg).metrics


def test_automatic_features_leave_out_ids_free_text_and_dates(customers, customer_columns):
    customers["order_key"] = [f"K{i}" for i in range(len(customers))]
    customers["row_number"] = range(len(customers))  # unique integers: an id whatever its name
    customers["empty"] = None
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    trained = train_model(customers, cfg)

    assert set(trained.feature_columns) == FEATURES | {"spend", "segment"}
    assert set(trained.excluded_columns) == {"customer_id", "comment", "signup", "order_key", "row_number", "empty"}
    assert set(trained.feature_importance) == set(trained.feature_columns)
    assert [f["name"] for f in trained.input_schema] == trained.feature_columns


def test_free_text_with_repeats_is_still_left_out(customer_columns):
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "review": [f"review text {i % 200}" for i in range(n)],  # 200 distinct of 300: free text, not unique
            "city": rng.choice(["a", "b", "c", "d"], n),  # low cardinality text: a category
            "y": rng.choice(["yes", "no"], n),
        }
    )
    columns = [
        ColumnInfo("x", "float"),
        ColumnInfo("review", "text"),
        ColumnInfo("city", "text"),
        ColumnInfo("y", "text"),
    ]
    cfg = validate_training_config(
        {"target_column": "y", "task_type": "classification", "algorithm": "logistic_regression"}, columns
    )
    trained = train_model(df, cfg)
    assert trained.feature_columns == ["x", "city"]
    assert "free text" in trained.excluded_columns["review"]


def test_explicit_date_feature_is_used_as_a_number(customers, customer_columns):
    cfg = _config(
        customer_columns,
        target_column="spend",
        task_type="regression",
        algorithm="ridge",
        feature_columns=["tenure", "signup"],
    )
    trained = train_model(customers, cfg)
    assert [f["type"] for f in trained.input_schema] == ["integer", "date"]
    assert set(trained.feature_importance) == {"tenure", "signup"}


def test_input_schema_describes_the_features(customers, customer_columns):
    cfg = _config(
        customer_columns,
        target_column="churned",
        task_type="classification",
        algorithm="logistic_regression",
        feature_columns=["tenure", "monthly", "plan", "autopay"],
    )
    schema = train_model(customers, cfg).input_schema
    assert schema == [
        {"name": "tenure", "type": "integer", "categories": None, "nullable": True},
        {"name": "monthly", "type": "float", "categories": None, "nullable": True},
        {"name": "plan", "type": "text", "categories": ["basic", "premium", "standard"], "nullable": True},
        {"name": "autopay", "type": "boolean", "categories": [False, True], "nullable": True},
    ]
    json.dumps(schema)


def test_rows_without_a_target_are_dropped_not_fatal(customers, customer_columns):
    customers["churned"] = customers["churned"].astype(object)
    customers.loc[:19, "churned"] = None
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    trained = train_model(customers, cfg)
    assert trained.dropped_missing_target == 20
    assert trained.n_train + trained.n_test == len(customers) - 20


def test_max_rows_caps_the_training_rows(customers, customer_columns):
    cfg = _config(
        customer_columns, target_column="churned", task_type="classification", algorithm="random_forest", max_rows=100
    )
    trained = train_model(customers, cfg)
    assert trained.n_train + trained.n_test == 100


def test_works_on_warehouse_shaped_frames(customer_columns):
    """SQLite hands back booleans as 0/1 and dates as text; the logical types still rule."""
    df = customer_frame()
    df["autopay"] = df["autopay"].map({True: 1, False: 0})
    df["churned"] = df["churned"].astype(int)
    cfg = _config(
        customer_columns,
        target_column="churned",
        task_type="classification",
        algorithm="gradient_boosting",
        feature_columns=["tenure", "plan", "autopay"],
    )
    trained = train_model(df, cfg)
    assert trained.classes == [False, True]
    assert trained.input_schema[2]["categories"] == [False, True]


# --- data that cannot train a model -----------------------------------------------------------------------------


def _refusal(df, cfg) -> APIError:
    with pytest.raises(APIError) as exc:
        train_model(df, cfg)
    assert exc.value.status == 422
    return exc.value


def test_single_class_target_is_refused(customers, customer_columns):
    customers["churned"] = True
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    err = _refusal(customers, cfg)
    assert "config.target_column" in err.details["fields"]
    assert "single class" in err.message


def test_too_few_rows_is_refused(customers, customer_columns):
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    err = _refusal(customers.head(9), cfg)
    assert "config.input_table" in err.details["fields"]
    assert "at least 10" in err.message


def test_too_few_rows_after_dropping_missing_targets_is_refused(customers, customer_columns):
    customers.loc[9:, "spend"] = np.nan
    cfg = _config(customer_columns, target_column="spend", task_type="regression", algorithm="ridge")
    err = _refusal(customers, cfg)
    assert "only 9 rows" in err.message


def test_too_many_classes_suggests_regression(customers, customer_columns):
    cfg = _config(customer_columns, target_column="monthly", task_type="classification", algorithm="random_forest")
    err = _refusal(customers, cfg)
    assert "config.target_column" in err.details["fields"]
    assert "regression" in err.message


def test_non_numeric_regression_target_is_refused(customers):
    # The warehouse says float but the values are words: caught on the data, not only on the declared type.
    customers["spend"] = customers["segment"]
    columns = [ColumnInfo("tenure", "integer"), ColumnInfo("spend", "float")]
    cfg = validate_training_config(
        {"target_column": "spend", "task_type": "regression", "algorithm": "linear_regression"}, columns
    )
    err = _refusal(customers[["tenure", "spend"]], cfg)
    assert "numeric" in err.message


def test_feature_missing_from_the_data_is_named(customers, customer_columns):
    cfg = _config(
        customer_columns,
        target_column="churned",
        task_type="classification",
        algorithm="random_forest",
        feature_columns=["tenure", "plan"],
    )
    err = _refusal(customers.drop(columns=["plan"]), cfg)
    assert "config.feature_columns[1]" in err.details["fields"]


def test_no_usable_features_is_refused(customer_columns):
    df = pd.DataFrame({"customer_id": range(30), "churned": [True, False] * 15})
    cfg = _config(customer_columns, target_column="churned", task_type="classification", algorithm="random_forest")
    err = _refusal(df, cfg)
    assert "config.feature_columns" in err.details["fields"]
