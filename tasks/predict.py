"""The predict queue: score rows with a model that each worker process loads once and keeps."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init

from app.errors import APIError
from app.ml.explanations import explain_rows
from app.ml.scoring import ModelCache, load_scorer
from app.ml.store import ArtifactRejected

_models: ModelCache | None = None


@worker_process_init.connect
def _fresh_cache(**_kwargs) -> None:
    # Loaded models are per process, built after the fork, never shared.
    global _models
    _models = ModelCache(maxsize=8, loader=load_scorer)


def model_cache() -> ModelCache:
    global _models
    if _models is None:
        _models = ModelCache(maxsize=8, loader=load_scorer)
    return _models


@shared_task(name="tasks.predict.score", time_limit=60, soft_time_limit=55, acks_late=False)
def score(model: dict, rows: list[dict]) -> dict:
    """Score already-validated rows; `model` carries id, artifact path, sha256, scikit-learn version, input schema."""
    try:
        scorer = model_cache().get(
            model["id"], model["artifact_path"], model["artifact_sha256"], model["sklearn_version"]
        )
    except ArtifactRejected as exc:
        return {"error": APIError(500, "model_artifact_rejected", exc.reason).to_dict()}
    try:
        return scorer.score(rows, model["input_schema"])
    except APIError as err:
        return {"error": err.to_dict()}


@shared_task(name="tasks.predict.explain", time_limit=60, soft_time_limit=55, acks_late=False)
def explain(model: dict, rows: list[dict], top_n: int) -> dict:
    """Exact Shapley explanations of already-validated rows (see app/ml/explanations.py)."""
    try:
        scorer = model_cache().get(
            model["id"], model["artifact_path"], model["artifact_sha256"], model["sklearn_version"]
        )
    except ArtifactRejected as exc:
        return {"error": APIError(500, "model_artifact_rejected", exc.reason).to_dict()}
    pipeline = getattr(scorer, "pipeline", scorer)
    return {"explanations": explain_rows(pipeline, rows, model["input_schema"], top_n)}
