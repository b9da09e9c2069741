"""The bootstrap that runs inside the jail: drop to a throwaway uid, set rlimits, run `handler(payload)`, reply once."""

# Runs as `python -I -S -B child.py '<limits json>'` with only the standard library on the path: it must not import
# anything from the app. The reply is one JSON line on the file descriptor that was stdout when we started; the
# handler's own prints go to /dev/null so they can never corrupt it.

import builtins
import json
import os
import resource
import sys
import traceback

HANDLER_FILENAME = "<handler>"
MESSAGE_LIMIT = 2000


def drop_privileges(uid: int) -> None:
    """bwrap started as host root keeps uid 0; move to a uid of our own so RLIMIT_NPROC counts only this call."""
    if os.getuid() != 0 and os.geteuid() != 0:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit(70)


def limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def apply_limits(limits: dict) -> None:
    # Soft and hard are set together so the handler cannot raise them again (it has no CAP_SYS_RESOURCE).
    limit(resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_seconds"] + 1)
    limit(resource.RLIMIT_AS, limits["memory_mb"] * 1024 * 1024)
    limit(resource.RLIMIT_NPROC, limits["max_processes"])
    limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
    limit(resource.RLIMIT_NOFILE, 64)
    limit(resource.RLIMIT_CORE, 0)


def describe(exc: BaseException) -> dict:
    """Exception type, message and the handler line; never a file path of the bootstrap or the interpreter."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure itself
        message = ""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == HANDLER_FILENAME:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename == HANDLER_FILENAME:
        line, message = exc.lineno, exc.msg
    return {"kind": "error", "type": type(exc).__name__, "message": message[:MESSAGE_LIMIT], "line": line}


def surely_too_large(result, max_bytes: int) -> bool:
    """A cheap lower bound on the encoded size, so a 100 MB string is refused before it is encoded (and copied)."""
    size, stack, seen = 0, [result], set()
    while stack and size <= max_bytes:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            size += 2
            stack.extend(item.values() if isinstance(item, dict) else item)
            if isinstance(item, dict):
                stack.extend(key for key in item if isinstance(key, str))
        else:
            size += 1
    return size > max_bytes


def encode_result(result, max_bytes: int) -> bytes | dict:
    """The result as JSON bytes, or a failure dict; stops as soon as the size limit is passed."""
    if surely_too_large(result, max_bytes):
        return {"kind": "too_large", "limit": max_bytes}
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in encoder.iterencode(result):
            data = chunk.encode("utf-8")
            size += len(data)
            if size > max_bytes:
                return {"kind": "too_large", "limit": max_bytes}
            parts.append(data)
    except (TypeError, ValueError) as exc:
        return {"kind": "bad_result", "message": str(exc)[:MESSAGE_LIMIT]}
    except RecursionError:
        return {"kind": "bad_result", "message": "the result is nested too deeply"}
    return b"".join(parts)


def run(request: dict, max_output_bytes: int) -> bytes:
    namespace = {"__name__": "handler", "__builtins__": builtins}
    try:
        code = compile(request["source"], HANDLER_FILENAME, "exec")
        exec(code, namespace)  # noqa: S102 - running the user's handler is the point of this process
        handler = namespace.get("handler")
        if not callable(handler):
            return reply({"kind": "error", "type": "NameError", "message": "the source defines no handler(payload)"})
        result = handler(request["payload"])
    except MemoryError:
        return reply({"kind": "resource_limit", "message": "the handler ran out of memory"})
    except BaseException as exc:  # noqa: BLE001 - SystemExit and friends are handler failures too
        return reply(describe(exc))
    encoded = encode_result(result, max_output_bytes)
    if isinstance(encoded, dict):
        return reply(encoded)
    return b'{"ok":true,"result":' + encoded + b"}\n"


def reply(failure: dict) -> bytes:
    return (json.dumps({"ok": False, **failure}) + "\n").encode("utf-8")


def main() -> None:
    limits = json.loads(sys.argv[1])
    out_fd = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    raw = sys.stdin.buffer.read()
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    drop_privileges(limits["uid"])
    apply_limits(limits)
    original_pid = os.getpid()
    try:
        line = run(json.loads(raw), limits["max_output_bytes"])
    except MemoryError:
        line = b'{"ok":false,"kind":"resource_limit","message":"the handler ran out of memory"}\n'
    if os.getpid() != original_pid:
        # A process the handler forked came back here: only the original answers.
        os._exit(0)
    view = memoryview(line)
    while view:
        written = os.write(out_fd, view)
        view = view[written:]
    # _exit: threads or atexit hooks the handler left behind must not delay or alter the reply.
    os._exit(0)


if __name__ == "__main__":
    main()
