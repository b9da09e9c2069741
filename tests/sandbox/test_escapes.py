"""Escapes a handler may try from inside the jail: nested namespaces, mounts, ptrace, raw sockets, kernel keyrings,
memory beyond its budget (shared memory the watch cannot see included), and host paths in the jail's own process list. Each runs a real handler in the real jail."""

from __future__ import annotations

import sys

from app.sandbox.jail import CHILD_PATH
from tests.sandbox.conftest import TIMEOUT_S, assert_next_call_succeeds, call, failure

# Syscall numbers the handlers use through ctypes, per architecture (the jail runs on the worker's).
SYSCALLS = """
import ctypes, errno, os, platform

NR = {
    "x86_64": {"clone": 56, "clone3": 435, "unshare": 272, "setns": 308, "mount": 165, "ptrace": 101, "bpf": 321,
               "keyctl": 250, "add_key": 248, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
               "fsopen": 430, "open_tree": 428, "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "msgget": 68,
               "semget": 64, "mq_open": 240},
    "aarch64": {"clone": 220, "clone3": 435, "unshare": 97, "setns": 268, "mount": 40, "ptrace": 117, "bpf": 280,
                "keyctl": 219, "add_key": 217, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
                "fsopen": 430, "open_tree": 428, "memfd_create": 279, "memfd_secret": 447, "shmget": 194,
                "msgget": 186, "semget": 190, "mq_open": 180},
}[platform.machine()]
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x20000, 0x10000000, 0x40000000, 0x20000000
SIGCHLD = 17
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def syscall(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(NR[name], *args)
    return result, ctypes.get_errno()


def in_child(fn):
    # Namespace and trace calls run in a throwaway child so one success cannot change the next attempt.
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        finally:
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def errno_or_ok(result, err):
    return "ok" if result >= 0 else errno.errorcode.get(err, str(err))
"""


def test_nested_user_and_mount_namespaces_are_refused():
    source = (
        SYSCALLS
        + """
import subprocess, struct


def clone_raw(flags):
    result, err = syscall("clone", flags | SIGCHLD, 0, 0, 0, 0)
    if result == 0:
        os._exit(0)
    if result > 0:
        os.waitpid(result, 0)
    return errno_or_ok(result, err)


def clone3(flags):
    args = ctypes.create_string_buffer(struct.pack("11Q", flags, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0), 88)
    result, err = syscall("clone3", args, ctypes.c_size_t(88))
    if result == 0:
        os._exit(0)
    if result > 0:
        os.waitpid(result, 0)
    return errno_or_ok(result, err)


def handler(payload):
    seen = {}
    tool = subprocess.run(["unshare", "-Urm", "id", "-u"], capture_output=True, text=True)
    seen["unshare -Urm"] = "ok" if tool.returncode == 0 else "refused"
    for name, flags in (("user", CLONE_NEWUSER), ("user+mount", CLONE_NEWUSER | CLONE_NEWNS),
                        ("user+net+pid", CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID), ("mount", CLONE_NEWNS),
                        ("net", CLONE_NEWNET)):
        seen["unshare " + name] = "ok" if in_child(lambda: 0 if syscall("unshare", flags)[0] == 0 else 1) == 0 else "refused"
        seen["clone " + name] = clone_raw(flags)
        seen["clone3 " + name] = clone3(flags)
    fd = os.open("/proc/self/ns/user", os.O_RDONLY)
    seen["setns"] = errno_or_ok(*syscall("setns", fd, 0))
    return seen
"""
    )
    seen = call(source, timeout_s=10)
    assert seen and not [name for name, outcome in seen.items() if outcome == "ok"], seen
    assert_next_call_succeeds()


def test_a_tmpfs_mounted_by_the_handler_cannot_hold_memory_past_the_limits():
    # The hole found by probing: `unshare -Urm` then a private tmpfs held 306 MB past the 16 MB /tmp and 256 MB limits.
    source = (
        SYSCALLS
        + """
import subprocess


def handler(payload):
    # Files of 10 MB each stay under the file-size limit; together they pass the 16 MB /tmp.
    script = (
        "mount -t tmpfs -o size=64m none /tmp && for i in 1 2 3 4; do head -c 10000000 /dev/zero > /tmp/h$i; done"
        " && cat /tmp/h* | wc -c"
    )
    tool = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True)
    direct = errno_or_ok(*syscall("mount", b"none", b"/tmp", b"tmpfs", 0, b"size=64m"))
    fs = errno_or_ok(*syscall("fsopen", b"tmpfs", 0))
    return {"held": tool.stdout.strip(), "unshare": tool.returncode, "mount": direct, "fsopen": fs}
"""
    )
    seen = call(source)
    assert seen["held"] == "" and seen["unshare"] != 0, seen
    assert seen["mount"] == "EPERM" and seen["fsopen"] == "EPERM", seen


def test_ptrace_is_refused_even_on_the_handlers_own_children():
    source = (
        SYSCALLS
        + """
import time

PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE = 0, 16, 0x4206


def handler(payload):
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    seen = {
        "attach child": errno_or_ok(*syscall("ptrace", PTRACE_ATTACH, pid, 0, 0)),
        "seize child": errno_or_ok(*syscall("ptrace", PTRACE_SEIZE, pid, 0, 0)),
        "attach init": errno_or_ok(*syscall("ptrace", PTRACE_ATTACH, 1, 0, 0)),
        "traceme": in_child(lambda: 0 if syscall("ptrace", PTRACE_TRACEME, 0, 0, 0)[0] == 0 else 1),
    }
    os.kill(pid, 9)
    return seen
"""
    )
    seen = call(source)
    assert seen == {"attach child": "EPERM", "seize child": "EPERM", "attach init": "EPERM", "traceme": 1}, seen


def test_raw_and_packet_sockets_are_refused_even_in_a_namespace_of_the_handlers_own():
    source = """
import socket, subprocess, sys

RAW = "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')"


def attempt(*args):
    try:
        socket.socket(*args).close()
        return "ok"
    except OSError as exc:
        return type(exc).__name__


def handler(payload):
    nested = subprocess.run(["unshare", "-Urn", sys.executable, "-I", "-S", "-c", RAW], capture_output=True, text=True)
    return {
        "raw icmp": attempt(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "raw tcp v6": attempt(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP),
        "packet": attempt(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)),
        "ping": attempt(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
        "raw in a namespace of its own": nested.stdout.strip() or "refused",
    }
"""
    seen = call(source)
    assert seen["raw in a namespace of its own"] == "refused", seen
    assert {name: outcome for name, outcome in seen.items() if outcome == "ok"} == {}, seen


def test_kernel_keyrings_bpf_perf_userfaultfd_and_io_uring_are_refused():
    source = (
        SYSCALLS
        + """
KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, KEY_SPEC_PROCESS_KEYRING = 0, -3, -2


def handler(payload):
    attr = ctypes.create_string_buffer(128)
    return {
        "keyctl": errno_or_ok(*syscall("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1)),
        "add_key": errno_or_ok(*syscall("add_key", b"user", b"k", b"v", 1, KEY_SPEC_PROCESS_KEYRING)),
        "bpf": errno_or_ok(*syscall("bpf", 0, attr, 72)),
        "perf_event_open": errno_or_ok(*syscall("perf_event_open", attr, 0, -1, -1, 0)),
        "userfaultfd": errno_or_ok(*syscall("userfaultfd", 0)),
        "io_uring_setup": errno_or_ok(*syscall("io_uring_setup", 1, attr)),
        "open_tree": errno_or_ok(*syscall("open_tree", -100, b"/tmp", 1)),
    }
"""
    )
    seen = call(source)
    assert set(seen.values()) == {"EPERM"}, seen


def test_the_jails_process_list_shows_no_host_path():
    source = """
import os


def handler(payload):
    found = {}
    for pid in sorted(name for name in os.listdir("/proc") if name.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                found[pid] = handle.read().replace(b"\\0", b" ").decode("utf-8", "replace")
        except OSError:
            pass
    return found
"""
    found = call(source)
    assert "1" in found and found["1"], found
    repo = CHILD_PATH.rsplit("/app/", 1)[0]
    for pid, cmdline in found.items():
        for host_path in (repo, CHILD_PATH, sys.base_prefix, "/root", "/work", "--ro-bind", "--bind"):
            assert host_path not in cmdline, (pid, cmdline)


HOARD = """
import os, time


def handler(payload):
    for _ in range(payload["children"]):
        if os.fork() == 0:
            hoard = b"x" * (payload["mb"] * 1024 * 1024)
            time.sleep(payload["hold_s"])
            os._exit(len(hoard) and 0)
    time.sleep(payload["hold_s"])
    return "held"
"""


def test_the_jails_total_memory_is_bounded_not_only_each_process():
    # Four children of 100 MB each stay under the 192 MB address-space limit one by one, not together.
    err = failure(HOARD, {"children": 4, "mb": 100, "hold_s": 2.5}, memory_mb=192, timeout_s=TIMEOUT_S + 2)
    assert (err.status, err.code) == (422, "function_resource_limit"), err.message
    assert "192 MB" in err.message
    assert_next_call_succeeds()


def test_children_within_the_total_memory_budget_are_left_alone():
    assert call(HOARD, {"children": 2, "mb": 30, "hold_s": 0.5}, memory_mb=192) == "held"


SHARED_MEMORY = (
    SYSCALLS
    + """
import mmap

IPC_PRIVATE, IPC_CREAT = 0, 0o1000


def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def handler(payload):
    # Through libc's wrappers and the raw system calls alike: neither may hand out memory outside RSS and PSS.
    seen = {
        "os.memfd_create": attempt(lambda: os.memfd_create("hoard")),
        "/dev/shm": attempt(lambda: os.open("/dev/shm/hoard", os.O_CREAT | os.O_RDWR, 0o600)),
        "/dev": attempt(lambda: os.open("/dev/hoard", os.O_CREAT | os.O_RDWR, 0o600)),
    }
    for name, args in (("memfd_create", (b"hoard", 0)), ("memfd_secret", (0,)),
                       ("shmget", (IPC_PRIVATE, 8 << 20, IPC_CREAT | 0o600)), ("msgget", (IPC_PRIVATE, IPC_CREAT | 0o600)),
                       ("semget", (IPC_PRIVATE, 1000, IPC_CREAT | 0o600)), ("mq_open", (b"hoard", os.O_CREAT | os.O_RDWR, 0o600, None))):
        seen[name] = errno_or_ok(*syscall(name, *args))
    # What stays allowed: shared anonymous memory (counted in the RSS and PSS of whoever maps it), a ctypes callback
    # (libffi's trampolines), and files in /tmp (bounded by the tmpfs's size).
    shared = mmap.mmap(-1, 1 << 20)
    shared[:5] = b"works"
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))(
        lambda a, b: a[0] - b[0])
    numbers = (ctypes.c_int * 3)(3, 1, 2)
    libc.qsort(numbers, 3, ctypes.sizeof(ctypes.c_int), compare)
    with open("/tmp/mapped", "w+b") as handle:
        handle.truncate(1 << 20)
        mapped = mmap.mmap(handle.fileno(), 1 << 20)
        mapped[:5] = b"works"
    return {"refused": seen, "allowed": [bytes(shared[:5]).decode(), list(numbers), bytes(mapped[:5]).decode()]}
"""
)


def test_memfd_and_other_shared_memory_the_watch_cannot_see_are_refused():
    # The hole found by probing: pages of a memfd count in neither RSS nor PSS, so 40 memfds of 15 MB each held
    # 600 MB against a 256 MB limit. SysV shared memory, message queues and semaphores are kernel memory outside the
    # processes as well; /dev (and /dev/shm) is a tmpfs without a size limit.
    seen = call(SHARED_MEMORY)
    assert seen["refused"] == {
        "os.memfd_create": "EPERM",
        "/dev/shm": "EROFS",
        "/dev": "EROFS",
        "memfd_create": "EPERM",
        "memfd_secret": "EPERM",
        "shmget": "EPERM",
        "msgget": "EPERM",
        "semget": "EPERM",
        "mq_open": "EPERM",
    }, seen
    assert seen["allowed"] == ["works", [1, 2, 3], "works"], seen
    assert_next_call_succeeds()


def test_the_tmp_tmpfs_bounds_memory_mapped_from_files():
    # Files in /tmp are shared memory too (mmap'ed or not), outside RSS once unmapped: the tmpfs's size bounds them.
    err = failure(
        """
import mmap, os


def handler(payload):
    held = []
    for i in range(8):
        fd = os.open(f"/tmp/hoard{i}", os.O_CREAT | os.O_RDWR, 0o600)
        os.ftruncate(fd, 4 << 20)
        with mmap.mmap(fd, 4 << 20) as mapped:
            for offset in range(0, 4 << 20, 4096):
                mapped[offset] = 1
        held.append(fd)
    return len(held)
""",
        tmp_mb=8,
    )
    # Touching a page past the tmpfs's size is a SIGBUS: the call fails and the 32 MB were never held.
    assert (err.status, err.code) in ((502, "function_crashed"), (422, "function_resource_limit")), err.message
    assert_next_call_succeeds()
