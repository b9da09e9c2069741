"""run_handler: one jailed process per call, its reply read under a size cap and a wall-clock deadline."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from app.errors import APIError, invalid
from app.sandbox.jail import JailLimits, prepared_jail
from app.sandbox.jail_memory import JailMemory

log = logging.getLogger(__name__)

READ_CHUNK = 65536
STDERR_KEEP = 8192
# The reply wraps the result in a small envelope; the bootstrap enforces the exact result limit itself.
ENVELOPE_BYTES = 4096
KILL_GRACE_S = 2.0
# How often the whole jail's memory is added up while the handler runs.
MEMORY_CHECK_S = 0.05


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
) -> Any:
    """Run `handler(payload)` in a fresh jail; return its JSON value or raise the APIError a client should see."""
    limits = JailLimits(
        cpu_seconds=max(1, int(cpu_seconds)),
        memory_mb=memory_mb,
        max_processes=max_processes,
        max_output_bytes=max_output_bytes,
        tmp_bytes=tmp_mb * 1024 * 1024,
    )
    try:
        request = json.dumps({"source": source, "payload": payload}, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise invalid("payload", f"must be JSON: {exc}") from None
    outcome = _run_jailed(limits, python, request, timeout_s, max_output_bytes + ENVELOPE_BYTES)
    return _interpret(outcome, limits, timeout_s)


class _Outcome:
    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.info = bytearray()
        self.timed_out = False
        self.overflowed = False
        self.memory_exceeded = False
        self.returncode: int | None = None


def _run_jailed(limits: JailLimits, python: str, request: bytes, timeout_s: float, max_reply: int) -> _Outcome:
    """Feed the request, read one reply line; kill the whole jail at the deadline or when the reply is too big."""
    outcome = _Outcome()
    deadline = time.monotonic() + timeout_s
    info_read, info_write = os.pipe()
    try:
        with prepared_jail(limits, python, info_fd=info_write) as launch:
            # A new session makes bwrap a process-group leader we can kill as one; its pid namespace takes the rest.
            proc = subprocess.Popen(  # noqa: S603 - argv is built by jail.prepared_jail, never from user input
                launch.argv,
                executable=launch.executable,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                start_new_session=True,
                pass_fds=(info_write, *launch.pass_fds),
            )
    except BaseException:
        os.close(info_read)
        raise
    finally:
        os.close(info_write)
    jail_init = None
    try:
        _exchange(proc, request, info_read, deadline, max_reply, outcome, limits.memory_mb * 1024 * 1024)
        jail_init = _open_jail_init(info_read, outcome)
        if not outcome.timed_out and not outcome.overflowed and not outcome.memory_exceeded:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                outcome.timed_out = True
    finally:
        if jail_init is None:
            jail_init = _open_jail_init(info_read, outcome)
        if proc.poll() is None:
            _kill_jail(proc, jail_init)
        proc.wait()
        _await_jail_gone(jail_init)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        os.close(info_read)
    outcome.returncode = proc.returncode
    return outcome


def _exchange(
    proc: subprocess.Popen,
    request: bytes,
    info_fd: int,
    deadline: float,
    max_reply: int,
    outcome: _Outcome,
    max_memory: int,
) -> None:
    stdin_fd, stdout_fd, stderr_fd = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
    for fd in (stdin_fd, stdout_fd, stderr_fd, info_fd):
        os.set_blocking(fd, False)
    sent = 0
    memory: JailMemory | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(stdin_fd, selectors.EVENT_WRITE)
        for fd in (stdout_fd, stderr_fd, info_fd):
            selector.register(fd, selectors.EVENT_READ)
        while stdout_fd in selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.timed_out = True
                return
            memory = memory or _watch_memory(outcome)
            if memory is not None and memory.exceeds(max_memory):
                outcome.memory_exceeded = True
                return
            for key, _ in selector.select(min(remaining, MEMORY_CHECK_S)):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        sent += os.write(fd, request[sent : sent + READ_CHUNK])
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        sent = len(request)
                    if sent >= len(request):
                        selector.unregister(fd)
                        proc.stdin.close()
                    continue
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    selector.unregister(fd)
                elif fd == info_fd:
                    outcome.info += chunk[:STDERR_KEEP]
                elif fd == stderr_fd:
                    # Kept for the worker's log only; it may name host paths, so clients never see it.
                    outcome.stderr = (outcome.stderr + chunk)[-STDERR_KEEP:]
                else:
                    outcome.stdout += chunk
                    if len(outcome.stdout) > max_reply:
                        outcome.overflowed = True
                        return
                    if b"\n" in chunk:
                        return


def _watch_memory(outcome: _Outcome) -> JailMemory | None:
    """The jail's memory gauge, once bwrap has told us its init's pid."""
    try:
        return JailMemory(int(json.loads(outcome.info)["child-pid"]))
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _open_jail_init(info_fd: int, outcome: _Outcome) -> int | None:
    """A pidfd on the jail's init (from bwrap's --info-fd), or None when bwrap never got that far."""
    with contextlib.suppress(BlockingIOError):  # bwrap has written all it will for now; parse what arrived
        while len(outcome.info) < STDERR_KEEP and (chunk := os.read(info_fd, READ_CHUNK)):
            outcome.info += chunk
    try:
        pid = int(json.loads(outcome.info)["child-pid"])
        return os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _kill_jail(proc: subprocess.Popen, jail_init: int | None) -> None:
    """SIGKILL bwrap's process group and the jail's init; the kernel then kills everything in its pid namespace."""
    if jail_init is not None:
        with contextlib.suppress(ProcessLookupError):  # the jail's init already exited
            signal.pidfd_send_signal(jail_init, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):  # bwrap's group already exited
        os.killpg(proc.pid, signal.SIGKILL)


def _await_jail_gone(jail_init: int | None) -> None:
    """bwrap may exit before its init does; the init's pidfd turns readable only after the namespace is emptied."""
    if jail_init is None:
        return
    try:
        with contextlib.suppress(ProcessLookupError):  # the namespace emptied between the two checks
            if not select.select([jail_init], [], [], KILL_GRACE_S)[0]:
                signal.pidfd_send_signal(jail_init, signal.SIGKILL)
                select.select([jail_init], [], [], KILL_GRACE_S)
    finally:
        os.close(jail_init)


def _interpret(outcome: _Outcome, limits: JailLimits, timeout_s: float) -> Any:
    if outcome.memory_exceeded:
        raise APIError(
            422,
            "function_resource_limit",
            f"the function's processes together used more than its {limits.memory_mb} MB of memory",
            {"memory_mb": limits.memory_mb},
        )
    reply = _parse_reply(outcome.stdout)
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
    if b"child-pid" not in outcome.info:
        # bwrap itself failed (no namespaces allowed here, a missing interpreter path ...): an operator problem.
        log.error("function sandbox failed to start: exit %s, stderr: %r", code, bytes(outcome.stderr[-2000:]))
        raise APIError(503, "function_sandbox_unavailable", "the function sandbox could not start on this worker")
    if code == 128 + signal.SIGXCPU:
        raise APIError(504, "function_timeout", f"the function used more than its {limits.cpu_seconds} s of CPU time")
    if code == 128 + signal.SIGKILL:
        raise _resource_limit(limits)
    log.warning("sandboxed function crashed: exit %s, stderr tail: %r", code, bytes(outcome.stderr[-2000:]))
    raise APIError(502, "function_crashed", "the function's process ended without a result")


def _parse_reply(data: bytearray) -> dict | None:
    line, newline, _ = bytes(data).partition(b"\n")
    if not newline:
        return None
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


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


def _timeout(timeout_s: float) -> APIError:
    return APIError(
        504, "function_timeout", f"the function did not finish within {timeout_s:g} s", {"timeout_s": timeout_s}
    )
