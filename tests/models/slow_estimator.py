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
