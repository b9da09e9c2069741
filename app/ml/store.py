"""The model store on disk: atomic joblib artifacts, checked by hash and scikit-learn version before loading."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

import joblib

MODEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ARTIFACT_SUFFIX = ".joblib"
BUNDLE_FORMAT = 1


class ArtifactRejected(Exception):
    """A stored model that must not be loaded: missing, changed since it was saved, or from another scikit-learn."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"model artifact {path} refused: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ArtifactInfo:
    path: str
    sha256: str
    sklearn_version: str
    size_bytes: int


def running_sklearn_version() -> str:
    import sklearn  # lazy: keeps scikit-learn out of the web process

    return sklearn.__version__


def artifact_path(store_dir: str, model_key: str) -> str:
    if not isinstance(model_key, str) or not MODEL_KEY.fullmatch(model_key) or ".." in model_key:
        raise ValueError(f"{model_key!r} is not a valid model key (letters, digits, _ . -; no path separators)")
    return os.path.join(store_dir, model_key + ARTIFACT_SUFFIX)


def save_artifact(store_dir: str, model_key: str, pipeline: Any, metadata: dict | None = None) -> ArtifactInfo:
    """Write `pipeline` (any picklable estimator) with its metadata to `<store_dir>/<model_key>.joblib`.

    The bytes go to a temp file in the same directory and are moved into place with os.replace, so a reader sees
    the old file or the new one, never half of one. Record the returned sha256 and version with the model.
    """
    path = artifact_path(store_dir, model_key)
    os.makedirs(store_dir, exist_ok=True)
    version = running_sklearn_version()
    bundle = {"format": BUNDLE_FORMAT, "sklearn_version": version, "metadata": metadata or {}, "estimator": pipeline}
    buffer = io.BytesIO()
    joblib.dump(bundle, buffer)
    data = buffer.getvalue()
    fd, tmp = tempfile.mkstemp(prefix=f".{model_key}.", suffix=".tmp", dir=store_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return ArtifactInfo(
        path=path, sha256=hashlib.sha256(data).hexdigest(), sklearn_version=version, size_bytes=len(data)
    )


def load_artifact(path: str, expected_sha256: str, expected_sklearn_version: str) -> Any:
    """The estimator stored at `path`; ArtifactRejected if it is missing, its bytes changed or sklearn differs.

    Both checks run before unpickling: a pickle from an altered file can run code, and one from another
    scikit-learn version can load and then predict wrongly.
    """
    running = running_sklearn_version()
    if expected_sklearn_version != running:
        raise ArtifactRejected(
            path,
            f"trained with scikit-learn {expected_sklearn_version} but this worker runs {running}; retrain the model",
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ArtifactRejected(path, "the file is missing from the model store") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactRejected(path, f"sha256 {actual} does not match the recorded {expected_sha256}")
    bundle = joblib.load(io.BytesIO(data))
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT or "estimator" not in bundle:
        raise ArtifactRejected(path, "the file is not an Apiary model artifact")
    if bundle.get("sklearn_version") != expected_sklearn_version:
        raise ArtifactRejected(path, f"the file records scikit-learn {bundle.get('sklearn_version')}")
    return bundle["estimator"]


def delete_artifact(path: str) -> bool:
    """Remove a stored model; True if a file was removed, False if there was none."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
