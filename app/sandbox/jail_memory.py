"""The memory of a whole jail: every process of its pid namespace added up, so forking does not multiply the budget."""

from __future__ import annotations

import os

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class JailMemory:
    """Memory of the processes in the jail, read through the jail's own /proc (it lists the jail's processes only).

    The cheap resident size (RSS) is read first; only when it passes the limit is the proportional set size (PSS)
    read, which shares each page among the processes mapping it, so memory a forked child still shares with its
    parent is counted once. The tmpfs at /tmp is not included: its own size limit bounds it.
    """

    def __init__(self, jail_init_pid: int) -> None:
        self.root = f"/proc/{jail_init_pid}/root"
        self.proc = f"{self.root}/proc"
        host_root = os.stat("/")
        self.host_root = (host_root.st_dev, host_root.st_ino)

    def exceeds(self, limit_bytes: int) -> bool:
        try:
            root = os.stat(self.root)
            if (root.st_dev, root.st_ino) == self.host_root:
                return False  # bwrap has not moved the jail into its own root yet: its /proc is still the host's
            pids = [name for name in os.listdir(self.proc) if name.isdigit()]
        except OSError:  # the jail is not set up yet, or already gone
            return False
        if self._sum(pids, _resident_bytes) <= limit_bytes:
            return False
        return self._sum(pids, _proportional_bytes) > limit_bytes

    def _sum(self, pids: list[str], measure) -> int:
        total = 0
        for pid in pids:
            try:
                total += measure(f"{self.proc}/{pid}")
            except (OSError, ValueError, IndexError):  # the process ended while we looked
                continue
        return total


def _resident_bytes(process_dir: str) -> int:
    with open(f"{process_dir}/statm", "rb") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES


def _proportional_bytes(process_dir: str) -> int:
    try:
        with open(f"{process_dir}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:  # kernels before 4.14 have no smaps_rollup: resident size, an upper bound
        pass
    return _resident_bytes(process_dir)
