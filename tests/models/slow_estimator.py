"""A scikit-learn-compatible estimator whose predict sleeps: a test-only model for the scoring deadline."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SlowRegressor(RegressorMixin, BaseEstimator):
    """Predicts zero for every row after sleeping `seconds`; importable by the worker so its artifact loads."""

    def __init__(self, seconds: float = 5.0):
        self.seconds = seconds

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
        return self

    def predict(self, X):
        time.sleep(self.seconds)
        return np.zeros(len(X))


class RecordingRegressor(RegressorMixin, BaseEstimator):
    """Appends `<rows>` to the file `marker` each time it predicts, then sleeps `seconds`: the test sees on disk,
    from the worker itself, which scoring calls really ran and with how many rows."""

    def __init__(self, marker: str = "", seconds: float = 0.0):
        self.marker = marker
        self.seconds = seconds

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
        return self

    def predict(self, X):
        with open(self.marker, "a") as marker:
            marker.write(f"{len(X)}\n")
        time.sleep(self.seconds)
        return np.zeros(len(X))


def recorded_calls(marker) -> list[int]:
    """Rows per scoring call, as RecordingRegressor wrote them (empty when it never ran)."""
    try:
        with open(marker) as lines:
            return [int(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []
