"""Scoring validated rows with a fitted pipeline, and the per-process cache of loaded pipelines."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.ml.fast_scoring import compile_pipeline
from app.ml.frames import model_frame
from app.ml.predictions import predictions_body
from app.ml.store import load_artifact


def score_rows(pipeline: Any, rows: list[dict], input_schema: list[dict]) -> dict:
    """Scores of rows already checked by validate_rows, through scikit-learn (see `predictions_body`)."""
    return predictions_body(pipeline, model_frame(rows, input_schema))


class Scorer:
    """A loaded pipeline as a scoring process keeps it: scored through its compiled form (`fast_scoring`) when
    that agrees with scikit-learn, else through scikit-learn. Same answers as `score_rows` either way.

    Compiled on the first call: a model's input schema is recorded with its artifact and never changes after.
    """

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        self._prepared = False
        self._compiled: Any = None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def score(self, rows: list[dict], input_schema: list[dict]) -> dict:
        if not self._prepared:
            self._compiled = compile_pipeline(self.pipeline, input_schema)
            self._prepared = True
        if self._compiled is None:
            return score_rows(self.pipeline, rows, input_schema)
        return self._compiled.score(rows)


def load_scorer(path: str, sha256: str, sklearn_version: str) -> Scorer:
    """A ModelCache loader: the checked artifact, ready to score."""
    return Scorer(load_artifact(path, sha256, sklearn_version))


class ModelCache:
    """A bounded LRU of loaded models (what `loader` returns: a pipeline, or a Scorer) keyed by model id, reloaded only when the recorded sha256 changes.

    One per worker process, built after fork. Thread-safe: loads happen outside the lock, so a slow load of one
    model does not hold up hits on others (two threads missing the same model may both load it; the last wins).
    """

    def __init__(self, maxsize: int = 8, loader: Callable[[str, str, str], Any] = load_artifact):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._loader = loader
        self._entries: OrderedDict[Any, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_id: Any, path: str, sha256: str, sklearn_version: str) -> Any:
        """The pipeline of `model_id`, loaded from `path` unless the cached copy has the same sha256.

        Raises ArtifactRejected (from the loader) when the stored file fails its checks.
        """
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None and entry[0] == sha256:
                self._entries.move_to_end(model_id)
                return entry[1]
        pipeline = self._loader(path, sha256, sklearn_version)
        with self._lock:
            self._entries[model_id] = (sha256, pipeline)
            self._entries.move_to_end(model_id)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return pipeline

    def invalidate(self, model_id: Any) -> None:
        """Forget a model (deleted, or its file replaced)."""
        with self._lock:
            self._entries.pop(model_id, None)

    def __contains__(self, model_id: Any) -> bool:
        with self._lock:
            return model_id in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
