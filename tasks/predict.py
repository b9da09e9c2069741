"""The predict queue: score rows with a model that each worker process loads once and keeps."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.signals import worker_process_init

from app.errors import APIError
from app.ml.explanations import explain_rows
from app.ml.input_schema import parse_predict_body, validate_rows
from app.ml.scoring import ModelCache, load_scorer
from app.ml.store import ArtifactRejected
from app.ops.timing import worker_parts
from app.serving.audit_outbox import schedule_flush
from app.serving.shadow_runs import note_warmed, record_shadow_run, summarize

log = logging.getLogger(__name__)

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
def score(model: dict, rows: list[dict], sent_at: float | None = None) -> dict:
    """Score already-validated rows; `model` carries id, artifact path, sha256, scikit-learn version, input schema.
    The answer's `timing` is the queue wait (since `sent_at`, the web process's clock) and the scoring time."""
    started, started_perf = time.time(), time.perf_counter()
    answer = _score(model, rows)
    if "error" not in answer:
        answer["timing"] = worker_parts(sent_at, started, "score", started_perf)
    return answer


def _score(model: dict, rows: list[dict]) -> dict:
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
def explain(model: dict, rows: list[dict], top_n: int, sent_at: float | None = None) -> dict:
    """Exact Shapley explanations of already-validated rows (see app/ml/explanations.py); timed as `score`."""
    started, started_perf = time.time(), time.perf_counter()
    answer = _explain(model, rows, top_n)
    if "error" not in answer:
        answer["timing"] = worker_parts(sent_at, started, "score", started_perf)
    return answer


def _explain(model: dict, rows: list[dict], top_n: int) -> dict:
    try:
        scorer = model_cache().get(
            model["id"], model["artifact_path"], model["artifact_sha256"], model["sklearn_version"]
        )
    except ArtifactRejected as exc:
        return {"error": APIError(500, "model_artifact_rejected", exc.reason).to_dict()}
    pipeline = getattr(scorer, "pipeline", scorer)
    return {"explanations": explain_rows(pipeline, rows, model["input_schema"], top_n)}


@shared_task(name="tasks.predict.shadow_score", time_limit=60, soft_time_limit=55, acks_late=False)
def shadow_score(model: dict, body: object, record: dict) -> None:
    """A shadow run: score the call's body with the shadow version's model and audit the answer in brief; the
    caller was answered already, nobody waits for this."""
    started = time.perf_counter()
    status, code, summary = 200, None, None
    try:
        rows, single = parse_predict_body(body, ("context", "explanations", "dispatch_key"))
        rows = validate_rows(model["input_schema"], rows, len(rows) or 1, single=single)
        scorer = model_cache().get(
            model["id"], model["artifact_path"], model["artifact_sha256"], model["sklearn_version"]
        )
        scored = scorer.score(rows, model["input_schema"])
        summary = summarize("model", scored)
    except APIError as err:
        status, code = err.status, err.code
    except ArtifactRejected:
        status, code = 500, "model_artifact_rejected"
    if record_shadow_run(record, status, (time.perf_counter() - started) * 1000, summary, code):
        schedule_flush()


@shared_task(name="tasks.predict.preload", time_limit=60, soft_time_limit=55, acks_late=False)
def preload(models: list[dict], hold_ms: int = 150) -> list[int]:
    """Load these models into this worker process's cache (a warm switch). A process that had to load one holds a
    moment, so the next copy of this task goes to another idle process of the pool; a process that already held
    them all answers at once (never delaying real calls behind it)."""
    cache = model_cache()
    loaded, fresh = [], False
    for model in models:
        fresh = fresh or model["id"] not in cache
        try:
            cache.get(model["id"], model["artifact_path"], model["artifact_sha256"], model["sklearn_version"])
            loaded.append(model["id"])
        except ArtifactRejected as exc:
            log.warning("preload of model %s refused: %s", model["id"], exc.reason)
    note_warmed(loaded)
    if fresh:
        time.sleep(max(0, min(hold_ms, 2000)) / 1000)
    return loaded
