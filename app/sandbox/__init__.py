"""Sandboxed user functions: save-time source checks, and `handler(payload)` calls in jails, fresh or warm."""

from app.sandbox.handler_source import MAX_SOURCE_BYTES, check_handler_source
from app.sandbox.runner import run_handler
from app.sandbox.warm_pool import WarmKey, WarmPool, process_pool

__all__ = ["MAX_SOURCE_BYTES", "WarmKey", "WarmPool", "check_handler_source", "process_pool", "run_handler"]
