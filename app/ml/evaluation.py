"""Hold-out metrics and per-feature importance of a fitted pipeline, as plain JSON-safe numbers."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline


def _num(value) -> float | None:
    """A JSON-safe float; None where the metric is undefined (NaN), e.g. R² on a single test row."""
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def classification_metrics(pipeline: Pipeline, x_test, y_test) -> dict:
    """accuracy, precision, recall, f1, roc_auc: binary for two classes, weighted (roc_auc one-vs-rest) for more."""
    classes = pipeline.classes_
    predicted = pipeline.predict(x_test)
    binary = len(classes) == 2
    averaging = {"average": "binary", "pos_label": classes[1]} if binary else {"average": "weighted"}
    out = {
        "accuracy": _num(skm.accuracy_score(y_test, predicted)),
        "precision": _num(skm.precision_score(y_test, predicted, zero_division=0, **averaging)),
        "recall": _num(skm.recall_score(y_test, predicted, zero_division=0, **averaging)),
        "f1": _num(skm.f1_score(y_test, predicted, zero_division=0, **averaging)),
        "roc_auc": None,
    }
    # ROC AUC is undefined when the test split holds one class only (tiny or very skewed data): it stays None.
    with contextlib.suppress(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = pipeline.predict_proba(x_test)
        if binary:
            out["roc_auc"] = _num(skm.roc_auc_score(y_test == classes[1], proba[:, 1]))
        else:
            out["roc_auc"] = _num(
                skm.roc_auc_score(y_test, proba, multi_class="ovr", average="weighted", labels=classes)
            )
    return out


def regression_metrics(pipeline: Pipeline, x_test, y_test) -> dict:
    predicted = pipeline.predict(x_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R² on one row warns and returns NaN; _num turns that into None
        r2 = skm.r2_score(y_test, predicted) if len(y_test) >= 2 else float("nan")
    return {
        "rmse": _num(math.sqrt(skm.mean_squared_error(y_test, predicted))),
        "mae": _num(skm.mean_absolute_error(y_test, predicted)),
        "r2": _num(r2),
    }


def feature_importance(pipeline: Pipeline, numeric: list[str], categorical: list[str]) -> dict[str, float]:
    """{original feature: weight} summing to 1, one-hot columns added back onto the column they came from.

    Trees give `feature_importances_`; linear models give |coef_| (on scaled numbers, so comparable), summed over
    classes for multiclass.
    """
    model = pipeline.named_steps["model"]
    if hasattr(model, "feature_importances_"):
        weights = np.asarray(model.feature_importances_, dtype=float)
    else:
        coef = np.abs(np.asarray(model.coef_, dtype=float))
        weights = coef.sum(axis=0) if coef.ndim == 2 else coef
    owners = _output_owners(pipeline, numeric, categorical)
    totals = dict.fromkeys([*numeric, *categorical], 0.0)
    for owner, weight in zip(owners, weights, strict=True):
        totals[owner] += float(weight)
    grand = sum(totals.values())
    if grand <= 0 or math.isnan(grand):
        # A model that learned nothing (e.g. all-constant features) has no ranking to give: spread it evenly.
        return {name: 1.0 / len(totals) for name in totals}
    return {name: value / grand for name, value in sorted(totals.items(), key=lambda kv: -kv[1])}


def _output_owners(pipeline: Pipeline, numeric: list[str], categorical: list[str]) -> list[str]:
    """For every column the preprocessing step outputs, the original feature it came from."""
    preprocess = pipeline.named_steps["preprocess"]
    owners: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "numeric":
            owners.extend(columns)
        elif name == "categorical":
            encoder = transformer.named_steps["onehot"]
            for column, count in zip(columns, _encoded_widths(encoder), strict=True):
                owners.extend([column] * count)
    return owners


def _encoded_widths(encoder) -> list[int]:
    """How many output columns each input column of a fitted OneHotEncoder produces (infrequent groups merged)."""
    names = encoder.get_feature_names_out([f"c{i}" for i in range(len(encoder.categories_))])
    widths = [0] * len(encoder.categories_)
    for out_name in names:
        widths[int(out_name.split("_", 1)[0][1:])] += 1
    return widths


QUANTILE_STEPS = 100  # score_quantiles holds the 0th, 1st, ..., 100th percentile of each class's held-out scores
MAX_QUANTILE_CLASSES = 50


def score_quantiles(pipeline: Pipeline, x_test) -> dict[str, list[float]] | None:
    """{class key: 101 quantiles of the held-out test probabilities of that class}: a compact record of the
    score distribution, so serving can say where a new probability falls (`probability_percentiles`)."""
    from app.ml.predictions import class_key

    classes = pipeline.classes_
    if len(classes) > MAX_QUANTILE_CLASSES or len(x_test) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = pipeline.predict_proba(x_test)
    steps = np.linspace(0, 1, QUANTILE_STEPS + 1)
    return {class_key(c): [round(float(q), 6) for q in np.quantile(proba[:, i], steps)] for i, c in enumerate(classes)}
