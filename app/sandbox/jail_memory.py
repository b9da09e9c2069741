"""The memory, CPU time and processes of a whole jail: every process of its pid namespace added up."""

from __future__ import annotations

import os
from dataclasses import dataclass

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The jail's own processes while no call runs: bwrap's init (pid 1) and the bootstrap (pid 2).
IDLE_PIDS = ("1", "2")


@dataclass(frozen=True)
class JailSample:
    """The jail's processes at one instant."""

    pids: tuple[str, ...]
    resident_bytes: int
    # User and system time of every process, including the children each has reaped: it only grows.
    cpu_seconds: float
    # Only the init and a single-threaded bootstrap, neither a zombie: nothing of the handler runs between calls.
    idle: bool


class JailMemory:
    """Memory of the processes in the jail, read through the jail's own /proc (it lists the jail's processes only).

    The cheap resident size (RSS) is read first; only when it passes the limit is the proportional set size (PSS)
    read, which shares each page among the processes mapping it, so memory a forked child still shares with its
    parent is counted once. The tmpfs at /tmp is not included: its own size limit bounds it.
    """

    def __init__(self, jail_init_pid: int) -> None:
        self.root = f"/proc/{jail_init_pid}/root"
        host_root = os.stat("/")
        self.host_root = (host_root.st_dev, host_root.st_ino)
        # The jail's /proc, opened once the jail has its own root: every later read is relative to it, so it never
        # walks /proc/<pid>/root again and cannot reach another pid namespace's processes should the pid be reused.
        self._proc_fd: int | None = None

    def _proc(self) -> int | None:
        if self._proc_fd is None:
            root = os.stat(self.root)
            if (root.st_dev, root.st_ino) == self.host_root:
                return None  # bwrap has not moved the jail into its own root yet: its /proc is still the host's
            self._proc_fd = os.open(f"{self.root}/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._proc_fd

    def close(self) -> None:
        if self._proc_fd is not None:
            os.close(self._proc_fd)
            self._proc_fd = None

    def bootstrap_alive(self) -> bool:
        """The bootstrap (the jail's pid 2) exists and is no zombie."""
        try:
            proc = self._proc()
            if proc is None:
                return False
            return _read(proc, f"{IDLE_PIDS[1]}/stat").rpartition(b")")[2].split()[0] != b"Z"
        except (OSError, IndexError):
            return False

    def sample(self) -> JailSample | None:
        """None while bwrap has not moved the jail into its own root yet, and once the jail is gone."""
        try:
            proc = self._proc()
            if proc is None:
                return None
            pids = tuple(name for name in os.listdir(proc) if name.isdigit())
        except OSError:
            return None
        resident, ticks, idle = 0, 0, len(pids) == len(IDLE_PIDS) and set(pids) == set(IDLE_PIDS)
        for pid in pids:
            try:
                # The command name may hold spaces and parentheses: the fields start after the last ')'.
                fields = _read(proc, f"{pid}/stat").rpartition(b")")[2].split()
                state, threads = fields[0], int(fields[17])
                ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
                resident += int(fields[21]) * PAGE_BYTES
            except (OSError, ValueError, IndexError):  # the process ended while we looked
                idle = False
                continue
            idle = idle and state != b"Z" and threads == 1
        return JailSample(pids, resident, ticks / CLOCK_TICKS, idle)

    def exceeds(self, limit_bytes: int, sample: JailSample | None = None) -> bool:
        sample = sample or self.sample()
        if sample is None or sample.resident_bytes <= limit_bytes or self._proc_fd is None:
            return False
        total = 0
        for pid in sample.pids:
            try:
                total += _proportional_bytes(self._proc_fd, pid)
            except (OSError, ValueError, IndexError):  # the process ended while we looked
                continue
        return total > limit_bytes


def _read(directory: int, path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=directory)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _proportional_bytes(directory: int, pid: str) -> int:
    try:
        for line in _read(directory, f"{pid}/smaps_rollup").splitlines():
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:  # kernels before 4.14 have no smaps_rollup: resident size, an upper bound
        pass
    return int(_read(directory, f"{pid}/statm").split()[1]) * PAGE_BYTES
