"""The functions queue: each call runs a user handler in a fresh sandboxed process."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from app.errors import APIError
from app.sandbox import run_handler

# Longer than any handler deadline plus the sandbox's kill grace; the web side waits less than this.
TIME_LIMIT_SECONDS = 120


@shared_task(name="tasks.functions.run_function", time_limit=TIME_LIMIT_SECONDS, acks_late=False)
def run_function(source: str, payload) -> dict:
    """{"result": value} or {"error": {status, code, message, details}}; never raises for a handler's fault."""
    try:
        value = run_handler(source, payload, timeout_s=float(current_app.config["FUNCTION_TIMEOUT_SECONDS"]))
    except APIError as err:
        return {"error": {"status": err.status, "code": err.code, "message": err.message, "details": err.details}}
    return {"result": value}
