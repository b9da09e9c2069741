"""The scoring answer: predictions, and per-class probabilities for classifiers, as JSON-ready values."""

from __future__ import annotations

from typing import Any

from app.ml.frames import json_safe


def predictions_body(model: Any, x: Any) -> dict:
    """`{"predictions": [...], "probabilities": [{class: p}, ...] | None}` from a fitted pipeline (and a frame)
    or a fitted estimator (and its matrix). Probabilities for classifiers, keyed by the class labels as strings;
    a classifier's prediction is its most probable class (what predict does), from one predict_proba pass."""
    if not hasattr(model, "predict_proba"):
        return {"predictions": [json_safe(p) for p in model.predict(x)], "probabilities": None}
    matrix = model.predict_proba(x)
    classes = model.classes_
    keys = [class_key(c) for c in classes]
    predictions = [json_safe(classes[i]) for i in matrix.argmax(axis=1)]
    probabilities = [{key: float(p) for key, p in zip(keys, row, strict=True)} for row in matrix]
    return {"predictions": predictions, "probabilities": probabilities}


def class_key(value: Any) -> str:
    """A class label as a JSON object key: booleans as JSON spells them, everything else as str()."""
    value = json_safe(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
