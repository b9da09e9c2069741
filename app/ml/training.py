"""Training a scikit-learn pipeline from a validated TrainingConfig and a pandas frame of the input table."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from app.errors import invalid
from app.ml.evaluation import (
    classification_curves,
    classification_metrics,
    feature_importance,
    regression_curves,
    regression_metrics,
    score_quantiles,
)
from app.ml.feature_selection import select_features
from app.ml.frames import json_safe, model_frame
from app.ml.input_schema import CATEGORICAL_FEATURE_TYPES, as_bool, build_input_schema, infer_feature_type
from app.ml.training_config import TrainingConfig

MIN_ROWS = 10
MAX_CLASSES = 100
# Rare categories beyond this many per column are pooled into one "infrequent" column: it bounds the width of
# the encoded matrix (memory on the worker) without refusing high-cardinality categoricals.
MAX_ONEHOT_CATEGORIES = 100
LINEAR_ALGORITHMS = ("logistic_regression", "linear_regression", "ridge")

_ESTIMATORS = {
    ("classification", "logistic_regression"): (LogisticRegression, {"max_iter": 1000}),
    ("classification", "random_forest"): (RandomForestClassifier, {}),
    ("classification", "gradient_boosting"): (GradientBoostingClassifier, {}),
    ("regression", "linear_regression"): (LinearRegression, {}),
    ("regression", "ridge"): (Ridge, {}),
    ("regression", "random_forest"): (RandomForestRegressor, {}),
    ("regression", "gradient_boosting"): (GradientBoostingRegressor, {}),
}


@dataclass
class TrainedModel:
    """A fitted pipeline and everything recorded about it. Feed `pipeline` frames made by `frames.model_frame`."""

    pipeline: Pipeline
    metrics: dict[str, float | None]
    feature_importance: dict[str, float]
    input_schema: list[dict]
    feature_columns: list[str]
    classes: list | None
    n_train: int
    n_test: int
    excluded_columns: dict[str, str] = field(default_factory=dict)  # automatic selection: column -> why left out
    dropped_missing_target: int = 0
    score_quantiles: dict | None = None  # classifiers: {class: 101 quantiles of held-out probabilities}
    evaluation: dict | None = None  # held-out ROC + confusion matrix, or predicted vs actual (bounded in size)


def build_estimator(task_type: str, algorithm: str, hyperparams: dict[str, Any], random_state: int | None):
    cls, defaults = _ESTIMATORS[(task_type, algorithm)]
    params = {**defaults, **hyperparams}
    if "random_state" in cls().get_params():
        params["random_state"] = random_state
    return cls(**params)


def build_pipeline(config: TrainingConfig, input_schema: list[dict], random_state: int | None = 42) -> Pipeline:
    """Impute (+ scale for linear models) numbers, impute + one-hot categories, then the configured estimator."""
    numeric = [f["name"] for f in input_schema if f["type"] not in CATEGORICAL_FEATURE_TYPES]
    categorical = [f["name"] for f in input_schema if f["type"] in CATEGORICAL_FEATURE_TYPES]
    numeric_steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if config.algorithm in LINEAR_ALGORITHMS:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
        (
            "onehot",
            OneHotEncoder(handle_unknown="ignore", max_categories=MAX_ONEHOT_CATEGORIES, sparse_output=False),
        ),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    estimator = build_estimator(config.task_type, config.algorithm, config.hyperparams, random_state)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def train_model(df: pd.DataFrame, config: TrainingConfig, random_state: int | None = 42) -> TrainedModel:
    """Fit the configured pipeline on `df` (the input table), hold out `test_size` for metrics.

    Rows without a target are dropped (counted in `dropped_missing_target`); data that cannot train a model is a
    422 naming the config field it concerns.
    """
    # Plain str labels: read_sql can label columns with a str subclass, which scikit-learn refuses as names.
    df = df.rename(columns=str)
    target = config.target_column
    if target not in df.columns:
        raise invalid("config.target_column", f"column {target!r} is not in the training data")
    excluded: dict[str, str] = {}
    if config.feature_columns is not None:
        features = list(config.feature_columns)
        for i, name in enumerate(features):
            if name not in df.columns:
                raise invalid(f"config.feature_columns[{i}]", f"column {name!r} is not in the training data")
    else:
        features, excluded = select_features(df, target, config.column_types)
        if not features:
            raise invalid(
                "config.feature_columns",
                "no usable feature columns found (ids, free text and empty columns are left out); name them",
            )

    if len(df) > config.max_rows:
        df = df.sample(n=config.max_rows, random_state=random_state)
    present = df[target].notna()
    dropped = int((~present).sum())
    df = df.loc[present]
    if len(df) < MIN_ROWS:
        raise invalid(
            "config.input_table", f"only {len(df)} rows have a target value; at least {MIN_ROWS} are needed to train"
        )
    target_type = config.column_types.get(target) or infer_feature_type(df[target])
    if config.task_type == "classification":
        y = _classification_target(df[target], target_type)
    else:
        y = _regression_target(df[target], target_type)

    schema = build_input_schema(df, features, config.column_types)
    x = model_frame(df, schema)
    x_train, x_test, y_train, y_test = _split(x, y, config, random_state)
    if config.task_type == "classification" and pd.Series(y_train).nunique() < 2:
        raise invalid("config.target_column", "the training split holds a single class; add rows of other classes")

    pipeline = build_pipeline(config, schema, random_state)
    with warnings.catch_warnings():
        # An iteration cap reached is not a failure the user can act on here; the metrics say how good it is.
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x_train, y_train)

    if config.task_type == "classification":
        metrics = classification_metrics(pipeline, x_test, y_test)
        classes = [json_safe(c) for c in pipeline.classes_]
        quantiles = score_quantiles(pipeline, x_test)
        evaluation = classification_curves(pipeline, x_test, y_test)
    else:
        metrics = regression_metrics(pipeline, x_test, y_test)
        classes = quantiles = None
        evaluation = regression_curves(pipeline, x_test, y_test, random_state)
    numeric = [f["name"] for f in schema if f["type"] not in CATEGORICAL_FEATURE_TYPES]
    categorical = [f["name"] for f in schema if f["type"] in CATEGORICAL_FEATURE_TYPES]
    return TrainedModel(
        pipeline=pipeline,
        metrics=metrics,
        feature_importance=feature_importance(pipeline, numeric, categorical),
        input_schema=schema,
        feature_columns=features,
        classes=classes,
        n_train=len(x_train),
        n_test=len(x_test),
        excluded_columns=excluded,
        dropped_missing_target=dropped,
        score_quantiles=quantiles,
        evaluation=evaluation,
    )


def _classification_target(series: pd.Series, target_type: str) -> np.ndarray:
    if target_type == "boolean":
        values = [as_bool(v) for v in series]
        if any(v is None for v in values):
            raise invalid("config.target_column", "the boolean target holds values that are not true/false")
        y = np.asarray(values, dtype=bool)
    elif target_type in ("integer", "float"):
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.isna().any():
            raise invalid("config.target_column", "the numeric target holds values that are not numbers")
        # 0.0/1.0 labels are classes 0 and 1, not floats the client has to match exactly
        y = numbers.astype("int64").to_numpy() if (numbers % 1 == 0).all() else numbers.to_numpy(dtype=float)
    else:
        y = np.asarray([str(v) for v in series], dtype=object)
    n_classes = len(pd.unique(y))
    if n_classes < 2:
        raise invalid("config.target_column", "the target has a single class; a classifier needs at least two")
    if n_classes > MAX_CLASSES:
        raise invalid(
            "config.target_column",
            f"the target has {n_classes} distinct values (at most {MAX_CLASSES} classes); "
            "for a numeric target use task_type regression",
        )
    return y


def _regression_target(series: pd.Series, target_type: str) -> np.ndarray:
    if target_type not in ("integer", "float") or pd.api.types.is_bool_dtype(series):
        raise invalid(
            "config.target_column", f"regression needs a numeric target; it is {target_type} (use classification)"
        )
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.isna().any():
        raise invalid("config.target_column", "regression needs a numeric target; some values are not numbers")
    return numbers.to_numpy(dtype=float)


def _split(x: pd.DataFrame, y: np.ndarray, config: TrainingConfig, random_state: int | None):
    n = len(x)
    n_test = max(1, math.ceil(n * config.test_size))
    if n - n_test < 2:
        raise invalid("config.test_size", f"leaves fewer than 2 of {n} rows for training")
    stratify = None
    if config.task_type == "classification":
        counts = pd.Series(y).value_counts()
        # Stratify when every class can appear on both sides; otherwise a plain random split still trains.
        if counts.min() >= 2 and n_test >= len(counts) and n - n_test >= len(counts):
            stratify = y
    return train_test_split(x, y, test_size=n_test, random_state=random_state, stratify=stratify)
