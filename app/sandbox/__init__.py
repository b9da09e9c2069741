"""Sandboxed user functions: save-time source checks and one jailed process per `handler(payload)` call."""

from app.sandbox.handler_source import MAX_SOURCE_BYTES, check_handler_source
from app.sandbox.runner import run_handler

__all__ = ["MAX_SOURCE_BYTES", "check_handler_source", "run_handler"]
