"""run_handler: `handler(payload)` in a jail, fresh or warm, its reply read under a size cap and a deadline."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from typing import Any

from app.errors import APIError, invalid, unavailable
from app.sandbox.jail import JailLimits
from app.sandbox.jail_process import CallOutcome, JailProcess
from app.sandbox.warm_pool import Slot, WarmKey, WarmPool

log = logging.getLogger(__name__)


def run_handler(
    source: str,
    payload: Any,
    *,
    timeout_s: float = 5.0,
    cpu_seconds: int = 5,
    memory_mb: int = 256,
    max_processes: int = 16,
    max_output_bytes: int = 1_000_000,
    tmp_mb: int = 16,
    python: str = sys.executable,
    warm: WarmKey | None = None,
    pool: WarmPool | None = None,
) -> Any:
    """Run `handler(payload)` and return its JSON value or raise the APIError a client should see.

    Without `warm` (or with a disabled `pool`) the call gets a fresh jail, killed once it answers. With both, it
    reuses the pool's idle jail of exactly that key when there is one, and leaves the jail there for the next call
    only when this call succeeded; any failure kills it.
    """
    reuse = warm is not None and pool is not None and pool.enabled
    limits = JailLimits(
        cpu_seconds=max(1, int(cpu_seconds)),
        memory_mb=memory_mb,
        max_processes=max_processes,
        max_output_bytes=max_output_bytes,
        tmp_bytes=tmp_mb * 1024 * 1024,
        max_calls=pool.max_calls if reuse else 1,
    )
    try:
        payload_json = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise invalid("payload", f"must be JSON: {exc}") from None
    deadline = time.monotonic() + timeout_s
    slot = Slot(warm, limits, python) if reuse else None
    jail = pool.checkout(slot) if reuse else None
    if jail is None:
        jail = JailProcess(limits, python)
    # The source travels with a jail's first call only: a warm jail has loaded it already.
    loading = f'"source":{json.dumps(source)},' if jail.calls == 0 else ""
    body = f'{{{loading}"payload":{payload_json}}}'.encode()
    outcome = None
    try:
        outcome = jail.call(body, deadline)
    finally:
        if reuse and outcome is not None and outcome.succeeded:
            pool.checkin(slot, jail)
        else:
            jail.kill()
    return _interpret(outcome, jail, limits, timeout_s)


def _interpret(outcome: CallOutcome, jail: JailProcess, limits: JailLimits, timeout_s: float) -> Any:
    if outcome.memory_exceeded:
        raise APIError(
            422,
            "function_resource_limit",
            f"the function's processes together used more than its {limits.memory_mb} MB of memory",
            {"memory_mb": limits.memory_mb},
        )
    if outcome.cpu_exceeded:
        raise _cpu_time(limits)
    reply = outcome.reply
    if reply is not None and not outcome.overflowed:
        if reply.get("ok") is True and "result" in reply:
            return reply["result"]
        if reply.get("ok") is False:
            raise _failure(reply, limits)
    if outcome.overflowed:
        raise _too_large(limits)
    if outcome.timed_out:
        raise _timeout(timeout_s)
    code = outcome.returncode
    if not outcome.started:
        # bwrap itself failed (no namespaces allowed here, a missing interpreter path ...): an operator problem.
        log.error("function sandbox failed to start: exit %s, stderr: %r", code, bytes(jail.stderr[-2000:]))
        raise unavailable("function_sandbox_unavailable", "the function sandbox could not start on this worker")
    if code == 128 + signal.SIGXCPU:
        raise _cpu_time(limits)
    if code == 128 + signal.SIGKILL:
        raise _resource_limit(limits)
    log.warning("sandboxed function crashed: exit %s, stderr tail: %r", code, bytes(jail.stderr[-2000:]))
    raise APIError(502, "function_crashed", "the function's process ended without a result")


def _failure(reply: dict, limits: JailLimits) -> APIError:
    kind = reply.get("kind")
    if kind == "too_large":
        return _too_large(limits)
    if kind == "resource_limit":
        return _resource_limit(limits)
    if kind == "bad_result":
        message = f"the handler's return value is not JSON: {reply.get('message', '')}".rstrip(": ")
        return APIError(422, "function_bad_result", message)
    error_type = str(reply.get("type") or "Error")
    text = str(reply.get("message") or "")
    line = reply.get("line")
    message = f"handler raised {error_type}" + (f": {text}" if text else "") + (f" (line {line})" if line else "")
    return APIError(422, "function_error", message, {"type": error_type, "line": line})


def _too_large(limits: JailLimits) -> APIError:
    return APIError(
        422,
        "function_result_too_large",
        f"the handler's result is larger than {limits.max_output_bytes} bytes",
        {"limit_bytes": limits.max_output_bytes},
    )


def _resource_limit(limits: JailLimits) -> APIError:
    return APIError(
        422,
        "function_resource_limit",
        f"the function ran out of resources (memory limit {limits.memory_mb} MB)",
        {"memory_mb": limits.memory_mb},
    )


def _cpu_time(limits: JailLimits) -> APIError:
    return APIError(504, "function_timeout", f"the function used more than its {limits.cpu_seconds} s of CPU time")


def _timeout(timeout_s: float) -> APIError:
    return APIError(
        504, "function_timeout", f"the function did not finish within {timeout_s:g} s", {"timeout_s": timeout_s}
    )
