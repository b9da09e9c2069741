"""Hold-out metrics and per-feature importance of a fitted pipeline, as plain JSON-safe numbers."""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from app.ml.predictions import class_key


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
    classes = pipeline.classes_
    if len(classes) > MAX_QUANTILE_CLASSES or len(x_test) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = pipeline.predict_proba(x_test)
    steps = np.linspace(0, 1, QUANTILE_STEPS + 1)
    return {class_key(c): [round(float(q), 6) for q in np.quantile(proba[:, i], steps)] for i, c in enumerate(classes)}


# Bounds on what a model row stores of its held-out evaluation (a few tens of KB at most).
MAX_ROC_POINTS = 200
MAX_ROC_CLASSES = 10
MAX_CONFUSION_CLASSES = 20
MAX_SCATTER_POINTS = 500
OTHER_CLASSES = "(other)"


def _thin(count: int, limit: int) -> np.ndarray:
    """At most `limit` evenly spread indices of `count`, the first and the last always kept."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def _rounded(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def classification_curves(pipeline: Pipeline, x_test, y_test) -> dict:
    """The held-out test set's ROC curve (one-vs-rest per class for more than two classes, the most frequent
    MAX_ROC_CLASSES, each thinned to MAX_ROC_POINTS) and its confusion matrix (rows actual, columns predicted; past
    MAX_CONFUSION_CLASSES, the rarest classes pooled as "(other)")."""
    classes = list(pipeline.classes_)
    y_test = np.asarray(y_test)
    predicted = pipeline.predict(x_test)
    support = {c: int((y_test == c).sum()) for c in classes}
    out: dict = {"n_test": len(y_test), "roc": [], "confusion": _confusion(classes, support, y_test, predicted)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = pipeline.predict_proba(x_test)
    targets = [1] if len(classes) == 2 else sorted(range(len(classes)), key=lambda i: -support[classes[i]])
    for index in targets[:MAX_ROC_CLASSES]:
        positive = y_test == classes[index]
        if positive.all() or not positive.any():
            continue  # one-class test data: no curve to draw
        fpr, tpr, _ = skm.roc_curve(positive, proba[:, index])
        keep = _thin(len(fpr), MAX_ROC_POINTS)
        out["roc"].append(
            {
                "class": class_key(classes[index]),
                "auc": _num(skm.auc(fpr, tpr)),
                "fpr": _rounded(fpr[keep]),
                "tpr": _rounded(tpr[keep]),
            }
        )
    return out


def _confusion(classes: list, support: dict, y_test: np.ndarray, predicted: np.ndarray) -> dict:
    shown = sorted(classes, key=lambda c: -support[c])[: MAX_CONFUSION_CLASSES - 1]
    if len(classes) <= MAX_CONFUSION_CLASSES:
        shown = classes
    index = {c: i for i, c in enumerate(shown)}
    pooled = len(shown) < len(classes)
    size = len(shown) + (1 if pooled else 0)
    matrix = np.zeros((size, size), dtype=int)
    for actual, guess in zip(y_test, predicted, strict=True):
        matrix[index.get(actual, size - 1), index.get(guess, size - 1)] += 1
    labels = [class_key(c) for c in shown] + ([OTHER_CLASSES] if pooled else [])
    return {"labels": labels, "matrix": matrix.tolist()}


def regression_curves(pipeline: Pipeline, x_test, y_test, random_state: int | None = 42) -> dict:
    """Predicted vs actual on the held-out test set: every pair, or a random MAX_SCATTER_POINTS of them."""
    y_test = np.asarray(y_test, dtype=float)
    predicted = np.asarray(pipeline.predict(x_test), dtype=float)
    keep = np.arange(len(y_test))
    if len(keep) > MAX_SCATTER_POINTS:
        keep = np.sort(np.random.default_rng(random_state).choice(len(keep), MAX_SCATTER_POINTS, replace=False))
    finite = [i for i in keep if math.isfinite(y_test[i]) and math.isfinite(predicted[i])]
    return {
        "n_test": len(y_test),
        "predicted_vs_actual": {
            "actual": [float(f"{y_test[i]:.6g}") for i in finite],
            "predicted": [float(f"{predicted[i]:.6g}") for i in finite],
        },
    }
