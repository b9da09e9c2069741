"""The seccomp filter every jailed process runs under: namespaces, mounts, tracing, kernel facilities and shared memory
the memory watch cannot see are refused."""

from __future__ import annotations

import errno
import functools
import os

from app.errors import unavailable

# Each of these answers EPERM: none is needed by a handler, each has been a way out of a sandbox or into the kernel.
DENIED_SYSCALLS = (
    # New namespaces and mounts: a user namespace of its own gives the handler every capability inside it.
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # Tracing and reading other processes.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # Kernel facilities with a history of privilege escalations.
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "name_to_handle_at",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "uselib",
    "iopl",
    "ioperm",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "clock_adjtime",
    # Memory outside every process's resident and proportional size, so outside the whole-jail memory watch: a memfd's
    # pages, SysV shared memory, message queues and semaphores (the jail's IPC namespace keeps them after the process
    # that made them detaches or ends), POSIX message queues. Nothing in the jail uses them: the worker makes the
    # memfds bwrap reads outside it, and the bootstrap talks over its stdin and stdout.
    "memfd_create",
    "memfd_secret",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "ipc",
    "mq_open",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "mq_unlink",
)
# clone(2) flags that create namespaces; CLONE_NEWTIME only exists for unshare and clone3, both refused whole.
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
SOCK_TYPE_MASK = 0xF
SOCK_RAW, SOCK_PACKET = 3, 10
AF_INET, AF_INET6, AF_PACKET = 2, 10, 17
IPPROTO_ICMP, IPPROTO_ICMPV6 = 1, 58


@functools.lru_cache(maxsize=1)
def compiled_filter() -> bytes:
    """The BPF program bwrap loads with --seccomp (built once per process with libseccomp)."""
    try:
        import pyseccomp as sc  # lazy: needs libseccomp; without it functions are a 503, the app still starts
    except (ImportError, RuntimeError, OSError) as exc:  # pyseccomp raises RuntimeError when libseccomp is missing
        raise unavailable(
            "function_sandbox_unavailable", "the function sandbox's system-call filter is not available"
        ) from exc
    denied = sc.ERRNO(errno.EPERM)
    rules = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) != -1:  # -1: not a system call of this architecture
            rules.add_rule(denied, name)
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.add_rule(denied, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone, checked above.
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # Raw IP, packet and ping sockets; netlink's SOCK_RAW stays (libc lists interfaces through it).
    rules.add_rule(denied, "socket", sc.Arg(0, sc.EQ, AF_PACKET))
    for domain in (AF_INET, AF_INET6):
        for sock_type in (SOCK_RAW, SOCK_PACKET):
            rules.add_rule(
                denied, "socket", sc.Arg(0, sc.EQ, domain), sc.Arg(1, sc.MASKED_EQ, SOCK_TYPE_MASK, sock_type)
            )
        for protocol in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            rules.add_rule(denied, "socket", sc.Arg(0, sc.EQ, domain), sc.Arg(2, sc.EQ, protocol))
    fd = os.memfd_create("apiary-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as sink:
            rules.export_bpf(sink)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
