"""A compiled scoring path for trained pipelines: the fitted preprocessing as numpy lookups, checked against sklearn.

Scoring one row through scikit-learn's ColumnTransformer costs milliseconds of DataFrame validation for
microseconds of arithmetic. Every pipeline Apiary trains has the same shape (`training.build_pipeline`): per
numeric column an imputer and maybe a scaler, which together are affine for a present value and a constant for a
missing one; per categorical column an imputer and a one-hot encoder, which map each value to a fixed block. So
the fitted preprocessing is read off by feeding probe rows through the fitted transformers themselves (never by
re-implementing them), and a row is then encoded with a few numpy operations and handed to the fitted estimator.

`compile_pipeline` returns None for a pipeline of any other shape, and also when the compiled path disagrees with
scikit-learn on a probe set built from the input schema; callers then score through scikit-learn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline

from app.ml.frames import model_frame, to_category_values, to_day_numbers
from app.ml.input_schema import CATEGORICAL_FEATURE_TYPES
from app.ml.predictions import predictions_body

log = logging.getLogger(__name__)

_UNSEEN = "\x00apiary-unseen-category\x00"  # a value no training data holds: scored as "none of the known ones"
_TOLERANCE = 1e-9


@dataclass
class _NumericBlock:
    names: list[str]
    types: list[str]
    out: slice
    center: np.ndarray  # the value whose output is 0 (0 where the slope is 0)
    slope: np.ndarray  # output change per unit
    constant: np.ndarray  # the output where the slope is 0, else 0
    missing: np.ndarray  # output for a missing value


@dataclass
class _CategoricalBlock:
    names: list[str]
    types: list[str]
    out: slice
    base: np.ndarray  # output when every column holds an unseen value
    deltas: list[dict[Any, tuple[np.ndarray, np.ndarray]]]  # per column: value (NaN key: None) -> (indices, values)


class CompiledPipeline:
    """Scores rows already checked by `input_schema.validate_rows`, like `scoring.score_rows` does."""

    def __init__(
        self, estimator: Any, width: int, numeric: _NumericBlock | None, categorical: _CategoricalBlock | None
    ):
        self.estimator = compile_forest(estimator) or estimator
        self.width = width
        self.numeric = numeric
        self.categorical = categorical

    def encode(self, rows: list[dict]) -> np.ndarray:
        matrix = np.zeros((len(rows), self.width), dtype=np.float64)
        if self.numeric is not None:
            block = self.numeric
            values = np.column_stack(
                [
                    _numbers([row.get(name) for row in rows], ftype)
                    for name, ftype in zip(block.names, block.types, strict=True)
                ]
            )
            missing = np.isnan(values)
            # (x - center) * slope, as a scaler computes (x - mean) / scale: no cancellation for large x.
            encoded = (np.where(missing, 0.0, values) - block.center) * block.slope + block.constant
            matrix[:, block.out] = np.where(missing, block.missing, encoded)
        if self.categorical is not None:
            block = self.categorical
            part = np.tile(block.base, (len(rows), 1))
            for name, ftype, deltas in zip(block.names, block.types, block.deltas, strict=True):
                for i, value in enumerate(to_category_values([row.get(name) for row in rows], ftype)):
                    delta = deltas.get(value if isinstance(value, str) else None)
                    if delta is not None:
                        part[i, delta[0]] += delta[1]
            matrix[:, block.out] = part
        return matrix

    def score(self, rows: list[dict]) -> dict:
        return predictions_body(self.estimator, self.encode(rows))


class _Forest:
    """A fitted random forest's trees as stacked arrays, walked for every tree at once: one numpy step per level.

    scikit-learn scores a forest tree by tree (input validation, a Cython walk and a lock per tree): for one row of a
    100-tree forest that is milliseconds of overhead for microseconds of comparisons. Same answers: the row is cast
    to float32 as scikit-learn casts it, `x <= threshold` goes left, each tree's leaf values are normalised as
    DecisionTreeClassifier.predict_proba normalises them, and the trees are summed in their order (np.cumsum is
    sequential, like scikit-learn's accumulation) before dividing by their number.
    """

    def __init__(self, estimator: Any):
        trees = [tree.tree_ for tree in estimator.estimators_]
        size = max(tree.node_count for tree in trees)
        count = len(trees)
        self.estimator = estimator
        self.depth = max(tree.max_depth for tree in trees)
        self.left = np.zeros((count, size), dtype=np.intp)
        self.right = np.zeros((count, size), dtype=np.intp)
        self.feature = np.zeros((count, size), dtype=np.intp)
        self.threshold = np.zeros((count, size), dtype=np.float64)
        classifier = hasattr(estimator, "classes_")
        width = len(estimator.classes_) if classifier else 1
        self.values = np.zeros((count, size, width), dtype=np.float64)
        for t, tree in enumerate(trees):
            n = tree.node_count
            nodes = np.arange(n)
            leaf = tree.children_left == -1  # a leaf points at itself: extra steps leave it where it is
            self.left[t, :n] = np.where(leaf, nodes, tree.children_left)
            self.right[t, :n] = np.where(leaf, nodes, tree.children_right)
            self.feature[t, :n] = np.where(leaf, 0, tree.feature)
            self.threshold[t, :n] = tree.threshold
            if classifier:
                proba = tree.value[:, 0, :width].copy()
                normalizer = proba.sum(axis=1)[:, np.newaxis]
                normalizer[normalizer == 0.0] = 1.0
                self.values[t, :n] = proba / normalizer
            else:
                self.values[t, :n, 0] = tree.value[:, 0, 0]
        self.trees = np.arange(count)

    def mean_leaf_values(self, x: np.ndarray) -> np.ndarray | None:
        """(rows, outputs) averaged over the trees; None for input scikit-learn would refuse (not finite as float32)."""
        with np.errstate(over="ignore"):  # a value past float32's range becomes inf, refused just below
            x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or not np.isfinite(x).all():
            return None
        x = x.astype(np.float64)
        rows = np.arange(x.shape[0])[:, np.newaxis]
        node = np.zeros((x.shape[0], len(self.trees)), dtype=np.intp)
        for _ in range(self.depth):
            goes_left = x[rows, self.feature[self.trees, node]] <= self.threshold[self.trees, node]
            node = np.where(goes_left, self.left[self.trees, node], self.right[self.trees, node])
        leaves = self.values[self.trees, node]  # (rows, trees, outputs)
        return np.cumsum(leaves, axis=1)[:, -1] / len(self.trees)


class _ForestClassifier:
    """predict_proba (and classes_) of a random forest classifier through `_Forest`, for `predictions_body`."""

    def __init__(self, forest: _Forest):
        self.forest = forest
        self.classes_ = forest.estimator.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        mean = self.forest.mean_leaf_values(x)
        return self.forest.estimator.predict_proba(x) if mean is None else mean


class _ForestRegressor:
    def __init__(self, forest: _Forest):
        self.forest = forest

    def predict(self, x: np.ndarray) -> np.ndarray:
        mean = self.forest.mean_leaf_values(x)
        return self.forest.estimator.predict(x) if mean is None else mean[:, 0]


def compile_forest(estimator: Any) -> _ForestClassifier | _ForestRegressor | None:
    """A fitted single-output random forest walked as arrays (`_Forest`); None for any other estimator."""
    if type(estimator) not in (RandomForestClassifier, RandomForestRegressor):
        return None
    if getattr(estimator, "n_outputs_", 1) != 1 or not estimator.estimators_:
        return None
    forest = _Forest(estimator)
    return _ForestClassifier(forest) if isinstance(estimator, RandomForestClassifier) else _ForestRegressor(forest)


def _numbers(values: list, ftype: str) -> np.ndarray:
    if ftype in ("date", "timestamp"):
        return to_day_numbers(pd.Series(values, dtype=object)).to_numpy(dtype=np.float64)
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        try:
            out[i] = np.nan if value is None else float(value)
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def compile_pipeline(pipeline: Any, input_schema: list[dict]) -> CompiledPipeline | None:
    """The compiled form of a pipeline trained by Apiary, or None when it cannot be compiled faithfully."""
    try:
        compiled = _compile(pipeline, input_schema)
    except Exception as exc:  # any surprise in a fitted object means: use scikit-learn
        log.info("pipeline not compiled (%s: %s); scoring through scikit-learn", type(exc).__name__, exc)
        return None
    if compiled is None:
        return None
    if not _agrees(compiled, pipeline, input_schema):
        log.warning("compiled pipeline disagrees with scikit-learn on the probe set; scoring through scikit-learn")
        return None
    return compiled


def _compile(pipeline: Any, input_schema: list[dict]) -> CompiledPipeline | None:
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    (_, preprocess), (_, estimator) = pipeline.steps
    if not isinstance(preprocess, ColumnTransformer) or preprocess.sparse_output_:
        return None
    types = {f["name"]: f["type"] for f in input_schema}
    width = 0
    numeric = categorical = None
    for name, transformer, columns in preprocess.transformers_:
        if transformer == "drop" or len(columns) == 0:
            continue
        out = preprocess.output_indices_[name]
        width = max(width, out.stop)
        if any(column not in types for column in columns):
            return None
        column_types = [types[c] for c in columns]
        if name == "numeric" and not any(t in CATEGORICAL_FEATURE_TYPES for t in column_types):
            numeric = _numeric_block(transformer, list(columns), column_types, out)
        elif name == "categorical" and all(t in CATEGORICAL_FEATURE_TYPES for t in column_types):
            categorical = _categorical_block(transformer, list(columns), column_types, out)
        else:
            return None
    return CompiledPipeline(estimator, width, numeric, categorical)


def _numeric_block(branch: Any, names: list[str], types: list[str], out: slice) -> _NumericBlock:
    # Two probes far apart (a power of two, exact in binary) give a slope accurate to a few ulps, so the center
    # (e.g. a mean of dates near 20,000 days) is exact enough that scores match scikit-learn to ~1e-13.
    far = 2.0**20
    probe = pd.DataFrame({name: [0.0, far, np.nan] for name in names}, dtype=np.float64)
    result = np.asarray(branch.transform(probe), dtype=np.float64)
    if result.shape != (3, out.stop - out.start):
        raise ValueError("numeric branch output is not one column per feature")
    offset, slope = result[0], (result[1] - result[0]) / far
    flat = slope == 0
    center = np.divide(-offset, slope, out=np.zeros_like(offset), where=~flat)
    constant = np.where(flat, offset, 0.0)
    return _NumericBlock(names, types, out, center=center, slope=slope, constant=constant, missing=result[2])


def _categorical_block(branch: Any, names: list[str], types: list[str], out: slice) -> _CategoricalBlock:
    encoder = branch.steps[-1][1]
    seen = [[c for c in categories if isinstance(c, str)] for categories in encoder.categories_]
    # Row 0: every column unseen. Then, per column, one row per seen value and one with the value missing.
    rows: list[list] = [[_UNSEEN] * len(names)]
    probes: list[tuple[int, Any]] = []
    for j, values in enumerate(seen):
        for value in [*values, None]:
            row = [_UNSEEN] * len(names)
            row[j] = np.nan if value is None else value
            rows.append(row)
            probes.append((j, value))
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    result = np.asarray(branch.transform(frame), dtype=np.float64)
    base = result[0]
    deltas: list[dict] = [{} for _ in names]
    for (j, value), encoded in zip(probes, result[1:], strict=True):
        diff = encoded - base
        indices = np.flatnonzero(diff)
        deltas[j][value] = (indices, diff[indices])
    return _CategoricalBlock(names, types, out, base=base, deltas=deltas)


def _agrees(compiled: CompiledPipeline, pipeline: Any, input_schema: list[dict]) -> bool:
    rows = probe_rows(input_schema)
    expected = predictions_body(pipeline, model_frame(rows, input_schema))  # what scoring.score_rows answers
    actual = compiled.score(rows)
    if expected["predictions"] != actual["predictions"] and not _close(expected["predictions"], actual["predictions"]):
        return False
    if (expected["probabilities"] is None) != (actual["probabilities"] is None):
        return False
    for want, got in zip(expected["probabilities"] or [], actual["probabilities"] or [], strict=True):
        if want.keys() != got.keys() or any(abs(want[k] - got[k]) > _TOLERANCE for k in want):
            return False
    return True


def _close(want: list, got: list) -> bool:
    try:
        return bool(np.allclose(np.asarray(want, dtype=float), np.asarray(got, dtype=float), rtol=1e-9, atol=1e-9))
    except (TypeError, ValueError):
        return False


def probe_rows(input_schema: list[dict], per_feature: int = 6) -> list[dict]:
    """Rows that exercise every feature: known categories, missing and unseen values, numbers of several scales."""
    samples = {
        "integer": [0, 1, -7, 42, 10**6, None],
        "float": [0.0, 1.5, -3.25, 99.9, 1e6, None],
        "date": ["2024-01-31", "1999-12-31", "2030-06-01", None],
        "timestamp": ["2024-01-31T12:30:00", "2001-09-09T01:46:40+02:00", None],
        "boolean": [True, False, None],
    }
    columns = {}
    for feature in input_schema:
        ftype = feature["type"]
        if ftype == "text":
            values = list(feature.get("categories") or [])[:per_feature] + [None, _UNSEEN.strip("\x00")]
        else:
            values = samples[ftype]
        columns[feature["name"]] = values
    n = max(len(v) for v in columns.values())
    return [{name: values[i % len(values)] for name, values in columns.items()} for i in range(n * 2)]
