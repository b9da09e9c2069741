"""The functions queue: each call runs a user handler in a sandbox, a warm jail of its endpoint version when it has
one in this worker process, else a fresh one."""

from __future__ import annotations

import time

from celery import shared_task
from flask import current_app

from app.errors import APIError
from app.ops.timing import worker_parts
from app.sandbox import WarmKey, process_pool, run_handler
from app.serving.audit_outbox import schedule_flush
from app.serving.shadow_runs import record_shadow_run, summarize

# Longer than any handler deadline plus the sandbox's kill grace; the web side waits less than this.
TIME_LIMIT_SECONDS = 120


@shared_task(name="tasks.functions.run_function", time_limit=TIME_LIMIT_SECONDS, acks_late=False)
def run_function(source: str, payload, endpoint: dict | None = None, sent_at: float | None = None) -> dict:
    """{"result": value} or {"error": {status, code, message, details}}; never raises for a handler's fault.

    `endpoint` is the published endpoint version called ({"org_id", "asset_id", "version", "endpoint_id"}): its
    warm jail may serve the call. None (the Test pane's dry run of a draft) always runs in a fresh jail. The answer's
    `timing` is the queue wait (since `sent_at`, the web process's clock) and the handler's time in its jail.
    """
    started, started_perf = time.time(), time.perf_counter()
    config = current_app.config
    pool = process_pool(
        int(config["FUNCTION_JAIL_POOL_SIZE"]),
        int(config["FUNCTION_JAIL_MAX_CALLS"]),
        float(config["FUNCTION_JAIL_MAX_AGE_SECONDS"]),
    )
    try:
        value = run_handler(
            source,
            payload,
            timeout_s=float(config["FUNCTION_TIMEOUT_SECONDS"]),
            warm=WarmKey.for_endpoint(endpoint, source),
            pool=pool,
        )
    except APIError as err:
        return {"error": err.to_dict()}
    return {"result": value, "timing": worker_parts(sent_at, started, "function", started_perf)}


@shared_task(name="tasks.functions.shadow_function", time_limit=TIME_LIMIT_SECONDS, acks_late=False)
def shadow_function(source: str, payload, endpoint: dict, record: dict) -> None:
    """A shadow run of a function call on the shadow version's handler: audited in brief, answered to nobody."""
    started = time.perf_counter()
    answer = run_function.run(source, payload, endpoint)
    error = answer.get("error")
    status, code = (error["status"], error["code"]) if error else (200, None)
    summary = None if error else summarize("function", answer)
    if record_shadow_run(record, status, (time.perf_counter() - started) * 1000, summary, code):
        schedule_flush()
