"""The model store writes artifacts atomically and refuses to load one that is missing, altered or too old."""

from __future__ import annotations

import os

import pytest
import sklearn
from sklearn.dummy import DummyRegressor

from app.ml import store
from app.ml.store import ArtifactRejected, delete_artifact, load_artifact, save_artifact


@pytest.fixture()
def estimator():
    return DummyRegressor(strategy="constant", constant=4.2).fit([[0], [1]], [0, 1])


def test_round_trip(tmp_path, estimator):
    info = save_artifact(str(tmp_path), "p1-r2-abc", estimator, {"model_name": "churn"})
    assert info.path == str(tmp_path / "p1-r2-abc.joblib")
    assert info.sklearn_version == sklearn.__version__
    assert info.size_bytes == os.path.getsize(info.path)
    assert len(info.sha256) == 64
    loaded = load_artifact(info.path, info.sha256, info.sklearn_version)
    assert loaded.predict([[5]]).tolist() == [4.2]
    assert os.listdir(tmp_path) == ["p1-r2-abc.joblib"]  # no temp file left behind


def test_store_dir_is_created(tmp_path, estimator):
    info = save_artifact(str(tmp_path / "models" / "nested"), "m", estimator)
    assert os.path.exists(info.path)


def test_saving_again_replaces_the_file_and_changes_the_hash(tmp_path, estimator):
    first = save_artifact(str(tmp_path), "m", estimator)
    second = save_artifact(str(tmp_path), "m", DummyRegressor(constant=1.0, strategy="constant").fit([[0]], [0]))
    assert first.path == second.path
    assert first.sha256 != second.sha256
    with pytest.raises(ArtifactRejected):
        load_artifact(first.path, first.sha256, first.sklearn_version)


def test_tampered_artifact_is_refused(tmp_path, estimator):
    info = save_artifact(str(tmp_path), "m", estimator)
    with open(info.path, "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    with open(info.path, "wb") as handle:
        handle.write(bytes(data))
    with pytest.raises(ArtifactRejected) as exc:
        load_artifact(info.path, info.sha256, info.sklearn_version)
    assert "sha256" in exc.value.reason


def test_other_sklearn_version_is_refused(tmp_path, estimator):
    info = save_artifact(str(tmp_path), "m", estimator)
    with pytest.raises(ArtifactRejected) as exc:
        load_artifact(info.path, info.sha256, "0.24.2")
    assert "0.24.2" in exc.value.reason and sklearn.__version__ in exc.value.reason
    assert "retrain" in exc.value.reason


def test_file_recording_another_version_is_refused(tmp_path, estimator, monkeypatch):
    monkeypatch.setattr(store, "running_sklearn_version", lambda: "1.0.0")
    info = save_artifact(str(tmp_path), "m", estimator)
    monkeypatch.undo()
    with pytest.raises(ArtifactRejected) as exc:
        load_artifact(info.path, info.sha256, sklearn.__version__)
    assert "1.0.0" in exc.value.reason


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ArtifactRejected) as exc:
        load_artifact(str(tmp_path / "gone.joblib"), "0" * 64, sklearn.__version__)
    assert "missing" in exc.value.reason


@pytest.mark.parametrize("key", ["../escape", "a/b", "", ".hidden", "a" * 200])
def test_model_keys_cannot_leave_the_store(tmp_path, estimator, key):
    with pytest.raises(ValueError):
        save_artifact(str(tmp_path), key, estimator)


def test_delete(tmp_path, estimator):
    info = save_artifact(str(tmp_path), "m", estimator)
    assert delete_artifact(info.path) is True
    assert not os.path.exists(info.path)
    assert delete_artifact(info.path) is False
