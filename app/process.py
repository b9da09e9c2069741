"""This process's id, kept: `os.getpid()` is a system call (glibc no longer caches it), and a keyed call would ask
for it a dozen times (per-process clients, metrics files). Renewed in a child after a fork. Safety checks that must
hold whatever forked the process (the Redis pool's) ask os.getpid themselves."""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    return _pid
