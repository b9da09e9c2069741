"""The bubblewrap command line that builds the jail: what the handler's process can see, reach and keep."""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from app.errors import APIError
from app.sandbox.syscall_filter import compiled_filter

CHILD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
CHILD_IN_JAIL = "/sandbox/child.py"
# The interpreter is started through this link, so no process of the jail names a host path on its command line.
PYTHON_IN_JAIL = "/sandbox/python"

# Only system software is visible: no /etc, /home, /root (beyond the interpreter), /var, /work, /run or /srv.
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
SYSTEM_FILES = ("/etc/ld.so.cache",)

CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "random",
}

# Throwaway uids for the handler when the worker runs as root: a fresh one per jail keeps RLIMIT_NPROC per jail.
UID_RANGE = (1_000_000_000, 2_000_000_000)


@dataclass(frozen=True)
class JailLimits:
    """What one call may use; the bootstrap applies these to itself before it reads the handler."""

    cpu_seconds: int
    memory_mb: int
    max_processes: int
    max_output_bytes: int
    tmp_bytes: int
    # How many calls the jail may serve (a warm jail serves several): its CPU hard limit covers all of them.
    max_calls: int = 1


def bwrap_binary() -> str:
    """The bwrap executable; refusing to run is safer than running a handler without its jail."""
    found = shutil.which("bwrap") or ("/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)
    if not found:
        raise APIError(503, "function_sandbox_unavailable", "the function sandbox is not installed on this worker")
    return found


@functools.lru_cache(maxsize=8)
def interpreter_layout(python: str) -> tuple[str, str]:
    """(real executable, sys.base_prefix) of `python`; a venv's python is followed to the interpreter it links to."""
    real = os.path.realpath(python)
    if real == os.path.realpath(sys.executable):
        return real, os.path.realpath(sys.base_prefix)
    out = subprocess.run(  # noqa: S603 - the interpreter is configuration, not user input
        [real, "-I", "-S", "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": CHILD_ENV["PATH"]},
    )
    return real, os.path.realpath(out.stdout.strip())


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class JailLaunch:
    """How to start one jail: bwrap's short argv (its options are read from an fd) and the fds it needs."""

    executable: str
    argv: list[str]
    pass_fds: tuple[int, ...]


def _bind_with_parents(args: list[str], path: str, made: set[str], covered: list[str]) -> None:
    """Bind `path` read-only, creating world-traversable parents so the unprivileged uid can reach it (/root is 0700)."""
    if any(_under(path, root) for root in covered):
        return
    parent = os.path.dirname(path)
    parents = []
    while parent not in ("/", "") and parent not in made:
        parents.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(parents):
        args += ["--perms", "0755", "--dir", directory]
        made.add(directory)
    args += ["--ro-bind", path, path]
    covered.append(path)


def _filesystem_args(executable: str, prefix: str, child_fd: int) -> list[str]:
    args: list[str] = []
    covered: list[str] = []
    made: set[str] = set()
    _bind_with_parents(args, "/usr", made, covered)
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            _bind_with_parents(args, path, made, covered)
    for path in SYSTEM_FILES:
        if os.path.exists(path):
            _bind_with_parents(args, path, made, covered)
    # The interpreter keeps its host path inside the jail: its shared library may be linked there by absolute path.
    _bind_with_parents(args, prefix, made, covered)
    _bind_with_parents(args, os.path.dirname(executable), made, covered)
    # The interpreter's site-packages may hold anything the host installed; the jail offers the stdlib only.
    for site in sorted(glob.glob(os.path.join(prefix, "lib*", "python3*", "site-packages"))):
        args += ["--tmpfs", site, "--remount-ro", site]
    args += ["--perms", "0755", "--dir", "/sandbox", "--perms", "0444", "--ro-bind-data", str(child_fd), CHILD_IN_JAIL]
    args += ["--symlink", executable, PYTHON_IN_JAIL]
    return args


def build_args(
    limits: JailLimits,
    python: str,
    *,
    seccomp_fd: int,
    child_fd: int,
    info_fd: int | None = None,
) -> tuple[list[str], list[str]]:
    """(bwrap's options, which it reads from its --args fd; the bootstrap's command, which no host path is part of).

    With `info_fd`, bwrap writes {"child-pid": ...} there: the host pid of the jail's init, whose exit means the
    kernel has killed and reaped every process of the jail.
    """
    executable, prefix = interpreter_layout(python)
    as_root = os.geteuid() == 0
    args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if not as_root:
        # Without root, bwrap needs a user namespace; the handler keeps the worker's uid mapped inside it and may not
        # create a namespace of its own (bwrap caps the namespace count; the seccomp filter refuses it too).
        args += ["--unshare-user", "--disable-userns", "--assert-userns-disabled"]
    # The filter refuses new namespaces, mounts, tracing and more (see syscall_filter); bwrap also sets no_new_privs.
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox", "--seccomp", str(seccomp_fd)]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    if as_root:
        # Root keeps every capability in bwrap by default: keep only what the bootstrap needs to leave uid 0.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += _filesystem_args(executable, prefix, child_fd)
    # /dev is a tmpfs of its own without a size limit (and /dev/shm a directory of it): read-only, as the root is.
    args += ["--dir", "/tmp", "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--remount-ro", "/"]
    args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/", "--clearenv"]
    for name, value in CHILD_ENV.items():
        args += ["--setenv", name, value]
    bootstrap_limits = {
        "uid": secrets.randbelow(UID_RANGE[1] - UID_RANGE[0]) + UID_RANGE[0],
        "cpu_seconds": limits.cpu_seconds,
        # The hard limit over the jail's life; the bootstrap lowers the soft limit to cpu_seconds more before each call.
        "cpu_total_seconds": limits.max_calls * (limits.cpu_seconds + 1),
        "memory_mb": limits.memory_mb,
        "max_processes": limits.max_processes,
        "max_output_bytes": limits.max_output_bytes,
        "file_bytes": limits.tmp_bytes,
    }
    return args, [PYTHON_IN_JAIL, "-I", "-S", "-B", CHILD_IN_JAIL, json.dumps(bootstrap_limits)]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def prepared_jail(limits: JailLimits, python: str, info_fd: int | None = None) -> Iterator[JailLaunch]:
    """Everything one call's bwrap needs; its descriptors are closed when the block ends (after bwrap has started).

    bwrap's own command line is only `bwrap --args N -- <command in the jail>`: the jail's init is a fork of bwrap,
    so whatever bwrap was given on its command line would show in the jail's /proc/1/cmdline, host paths included.
    """
    binary = bwrap_binary()
    fds: list[int] = []
    try:
        fds.append(_memfd("apiary-seccomp", compiled_filter()))
        seccomp_fd = fds[-1]
        with open(CHILD_PATH, "rb") as handle:
            fds.append(_memfd("apiary-child", handle.read()))
        child_fd = fds[-1]
        options, command = build_args(limits, python, seccomp_fd=seccomp_fd, child_fd=child_fd, info_fd=info_fd)
        fds.append(_memfd("apiary-bwrap-args", b"".join(arg.encode("utf-8") + b"\0" for arg in options)))
        argv = ["bwrap", "--args", str(fds[-1]), "--", *command]
        yield JailLaunch(executable=binary, argv=argv, pass_fds=tuple(fds))
    finally:
        for fd in fds:
            os.close(fd)
