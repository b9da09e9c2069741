"""The bootstrap that runs inside the jail: drop to a throwaway uid, set rlimits, then serve `handler(payload)` calls."""

# Runs as `python -I -S -B child.py '<limits json>'` with only the standard library on the path: it must not import
# anything from the app. Calls arrive as frames on the descriptor that was stdin when we started, replies leave as
# frames on the one that was stdout: an 8-byte header (body length, call number; big-endian) and a JSON body. The
# handler's source comes with the first call and is loaded once; later calls reuse the loaded handler and whatever
# it keeps (a warm jail). The handler's own prints go to /dev/null so they can never corrupt a reply. End of input
# ends the process.

import builtins
import json
import math
import os
import resource
import struct
import sys
import traceback

HANDLER_FILENAME = "<handler>"
MESSAGE_LIMIT = 2000
FRAME = struct.Struct(">II")


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
    limit(resource.RLIMIT_CPU, limits["cpu_seconds"], limits["cpu_total_seconds"])
    limit(resource.RLIMIT_AS, limits["memory_mb"] * 1024 * 1024)
    limit(resource.RLIMIT_NPROC, limits["max_processes"])
    limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
    limit(resource.RLIMIT_NOFILE, 64)
    limit(resource.RLIMIT_CORE, 0)


def limit_cpu_for_next_call(cpu_seconds: int) -> None:
    """RLIMIT_CPU counts the process's whole life: the soft limit moves to `cpu_seconds` past what is spent so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def describe(exc: BaseException) -> dict:
    """Exception type, message and the handler line; never a file path of the bootstrap or the interpreter."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the failure itself
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


class Loaded:
    """The handler of this jail, loaded from the first call's source; later calls reuse it."""

    handler = None


def run(request: dict, loaded: Loaded, max_output_bytes: int) -> bytes:
    try:
        if loaded.handler is None:
            namespace = {"__name__": "handler", "__builtins__": builtins}
            code = compile(request["source"], HANDLER_FILENAME, "exec")
            exec(code, namespace)  # running the user's handler is the point of this process
            handler = namespace.get("handler")
            if not callable(handler):
                return reply(
                    {"kind": "error", "type": "NameError", "message": "the source defines no handler(payload)"}
                )
            loaded.handler = handler
        result = loaded.handler(request["payload"])
    except MemoryError:
        return reply({"kind": "resource_limit", "message": "the handler ran out of memory"})
    except BaseException as exc:  # SystemExit and friends are handler failures too
        return reply(describe(exc))
    encoded = encode_result(result, max_output_bytes)
    if isinstance(encoded, dict):
        return reply(encoded)
    return b'{"ok":true,"result":' + encoded + b"}"


def reply(failure: dict) -> bytes:
    return json.dumps({"ok": False, **failure}).encode("utf-8")


def read_exactly(fd: int, size: int) -> bytes | None:
    """`size` bytes from `fd`, or None at end of input (the worker closed the jail's stdin)."""
    parts, missing = [], size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> None:
    limits = json.loads(sys.argv[1])
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    drop_privileges(limits["uid"])
    apply_limits(limits)
    original_pid = os.getpid()
    loaded = Loaded()
    while (header := read_exactly(in_fd, FRAME.size)) is not None:
        size, number = FRAME.unpack(header)
        body = read_exactly(in_fd, size)
        if body is None:
            break
        limit_cpu_for_next_call(limits["cpu_seconds"])
        try:
            line = run(json.loads(body), loaded, limits["max_output_bytes"])
        except MemoryError:
            line = b'{"ok":false,"kind":"resource_limit","message":"the handler ran out of memory"}'
        if os.getpid() != original_pid:
            # A process the handler forked came back here: only the original answers.
            os._exit(0)
        write_all(out_fd, FRAME.pack(len(line), number) + line)
    # _exit: threads or atexit hooks the handler left behind must not delay or alter the end.
    os._exit(0)


if __name__ == "__main__":
    main()
