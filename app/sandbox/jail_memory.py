"""The memory of a whole jail: every process of its pid namespace added up, so forking does not multiply the budget."""

from __future__ import annotations

import os

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class JailMemory:
    """Proportional set size (PSS) of the processes in the pid namespace of the jail's init, summed on demand.

    PSS shares each page among the processes mapping it, so memory a forked child still shares with its parent is
    counted once. The tmpfs at /tmp is not included: its own size limit bounds it.
    """

    def __init__(self, jail_init_pid: int) -> None:
        info = os.stat(f"/proc/{jail_init_pid}/ns/pid")
        self.namespace = (info.st_dev, info.st_ino)

    def total_bytes(self) -> int:
        total = 0
        with os.scandir("/proc") as entries:
            for entry in entries:
                if not entry.name.isdigit():
                    continue
                try:
                    info = os.stat(f"/proc/{entry.name}/ns/pid")
                    if (info.st_dev, info.st_ino) == self.namespace:
                        total += _process_bytes(entry.name)
                except OSError:  # the process ended while we looked, or is not ours to inspect
                    continue
        return total


def _process_bytes(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:  # kernels before 4.14: resident pages, which count shared pages in full
        pass
    with open(f"/proc/{pid}/statm", "rb") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES
