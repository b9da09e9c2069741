"""Where a measurement's CPU went: the CPU time of each process tree of the stack, and of the load tool, per request.

On the benchmark's 2-core machine every process of a run shares the same two cores: the server under load, the
workers, Redis, and hey itself. Once the cores are saturated a server's req/s is set by the CPU one request costs the
whole machine, not by the server alone, so a ratio of two rows' req/s is close to the inverse ratio of their totals
here. These figures say which part of a call to cut (issue 15: "measure where it goes").

Linux only (/proc), in clock ticks (10 ms): over a measurement of thousands of requests, a few microseconds per
request.
"""

from __future__ import annotations

import os
import resource

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def process_stats() -> dict[int, list[str]]:
    """pid -> the fields of `/proc/<pid>/stat` after the command name (state, parent pid, group, ...; proc(5) numbers
    them from 3), for every process now running or not yet reaped."""
    out: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                # The command name may hold spaces and parentheses: the fields start after its last ")".
                out[int(entry)] = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
    return out


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds of the process plus those of its children it has waited for)."""
    out: dict[int, tuple[int, float]] = {}
    for pid, fields in process_stats().items():
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        out[pid] = (int(fields[1]), (utime + stime + cutime + cstime) * _TICK_S)
    return out


def tree_cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process and every process below it (gunicorn's workers, Celery's pool, a
    worker's sandboxes). A process of the tree that ended and was waited for by its parent stays counted, in its
    parent's children's time; the difference of two snapshots is what the tree spent in between."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    totals = {}
    for name, root in roots.items():
        seconds, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            if pid in processes:
                seconds += processes[pid][1]
                todo.extend(children.get(pid, ()))
        totals[name] = seconds
    return totals


def waited_children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have ended and been waited for (hey, once `run_hey` returns)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float] | None:
    """Microseconds of CPU per request of each name in both snapshots, and their `total`; None without requests."""
    if requests <= 0:
        return None
    spent = {name: max(0.0, after[name] - before[name]) * 1e6 / requests for name in before if name in after}
    spent["total"] = sum(spent.values())
    return {name: round(us, 1) for name, us in spent.items()}
