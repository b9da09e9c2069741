"""Exact Shapley explanations of one prediction, in the model's input features (computed on a worker).

The game: v(S) is the model's output (probability of the positive class, of the predicted class for more than
two classes, or the regression value) for the row with the features in S as sent and every other feature
missing, i.e. imputed as the pipeline does (training median or most frequent value). So:

- the base value is v(empty set), the output for a row where nothing is known;
- every coalition is evaluated, so the Shapley values are exact (not sampled) for any model (tree ensembles,
  linear models), and base + sum of contributions = the output, to float precision;
- a feature is the caller's feature, not a one-hot column: categories are explained as the one value they are.

The cost is 2^M model evaluations per row for M features, batched into one predict call; models with more than
`MAX_EXACT_FEATURES` features are refused (422 naming `explanations.method`).
"""

from __future__ import annotations

from math import factorial

import numpy as np

from app.ml.frames import model_frame
from app.ml.input_schema import MAX_EXACT_FEATURES  # noqa: F401 - the limit the web process checks first


def explain_rows(pipeline, rows: list[dict], input_schema: list[dict], top_n: int) -> list[dict]:
    """Per row `{"base": v0, "output": f(x), "contributions": {feature: phi} (top_n by size), "others": rest}`."""
    names = [f["name"] for f in input_schema]
    m = len(names)
    masks = np.array([[(s >> j) & 1 for j in range(m)] for s in range(2**m)], dtype=bool)
    coalition_rows = []
    for row in rows:
        for mask in masks:
            coalition_rows.append({name: (row.get(name) if mask[j] else None) for j, name in enumerate(names)})
    values = _outputs(pipeline, model_frame(coalition_rows, input_schema), len(rows), 2**m)
    weights = np.array([factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)])
    sizes = masks.sum(axis=1)
    # For feature j: the coalitions without it, their Shapley weights, and the same coalitions with j added.
    plans = []
    for j in range(m):
        without = np.nonzero(~masks[:, j])[0]
        plans.append((without, without | (1 << j), weights[sizes[without]]))
    out = []
    for r in range(len(rows)):
        v = values[r]
        phi = np.array([float(np.dot(w, v[with_j] - v[without])) for without, with_j, w in plans])
        order = sorted(range(m), key=lambda j: -abs(phi[j]))
        top = order[:top_n]
        out.append(
            {
                "base": float(v[0]),
                "output": float(v[-1]),
                "contributions": {names[j]: float(phi[j]) for j in top},
                "others": float(sum(phi[j] for j in order[top_n:])),
            }
        )
    return out


def _outputs(pipeline, frame, n_rows: int, n_coalitions: int) -> np.ndarray:
    """The explained output of every coalition row, shaped (rows, coalitions)."""
    if hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(frame).reshape(n_rows, n_coalitions, -1)
        if proba.shape[2] == 2:
            return proba[:, :, 1]
        # More than two classes: the class predicted for the full row (the last coalition).
        picked = proba[:, -1, :].argmax(axis=1)
        return proba[np.arange(n_rows), :, picked]
    return np.asarray(pipeline.predict(frame), dtype=float).reshape(n_rows, n_coalitions)
