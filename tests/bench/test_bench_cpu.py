"""Where a benchmark measurement's CPU went (bench/cpu.py): process trees counted whole, the load tool too, and the
per-request table the run prints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from bench.cpu import per_request, tree_cpu_seconds, waited_children_cpu_seconds
from bench.report import combine_rounds, format_cpu_table

# A parent that forks a child burning CPU, waits for it, then idles until its stdin closes.
_PARENT = textwrap.dedent(
    """
    import os, sys, time
    sys.stdout.write("up\\n"); sys.stdout.flush()
    sys.stdin.readline()
    pid = os.fork()
    if pid == 0:
        end = time.process_time() + 0.4
        while time.process_time() < end:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    sys.stdout.write("done\\n"); sys.stdout.flush()
    sys.stdin.readline()
    """
)


def _idle() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)


def test_a_tree_counts_the_cpu_of_a_child_that_ended_within_the_measurement_and_nothing_of_another_tree():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    other = _idle()
    try:
        assert parent.stdout.readline() == "up\n"
        roots = {"parent": parent.pid, "other": other.pid}
        before = tree_cpu_seconds(roots)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "done\n"  # the child burned 0.4 s, ended and was waited for
        after = tree_cpu_seconds(roots)
    finally:
        for proc in (parent, other):
            proc.stdin.close()
            proc.wait(timeout=10)
    assert 0.35 <= after["parent"] - before["parent"] < 1.5
    assert after["other"] - before["other"] < 0.05


def test_a_tree_that_is_gone_counts_nothing():
    assert tree_cpu_seconds({"gone": 2**22 + 12345}) == {"gone": 0.0}


def test_the_load_tool_is_counted_once_it_has_been_waited_for():
    before = waited_children_cpu_seconds()
    subprocess.run(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"],
        check=True,
    )
    assert waited_children_cpu_seconds() - before >= 0.25


def test_per_request_is_microseconds_per_answer_with_a_total_and_nothing_without_answers():
    before = {"apiary": 10.0, "redis": 1.0, "hey": 0.5}
    after = {"apiary": 11.5, "redis": 1.1, "hey": 0.8, "born_later": 3.0}
    assert per_request(before, after, 1000) == {"apiary": 1500.0, "redis": 100.0, "hey": 300.0, "total": 1900.0}
    assert per_request(before, after, 0) is None


def _measured(rps: float, cpu: dict | None) -> dict:
    return {
        "clients": 16,
        "requests": int(rps * 5),
        "errors": 0,
        "seconds": 5.0,
        "requests_per_s": rps,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "first_error": None,
        "cpu_us_per_request": cpu,
    }


def test_rounds_keep_the_median_of_each_part_and_the_table_splits_a_request_by_process():
    hello = [{"hello": 600.0, "hey": 170.0, "redis": 1.0, "total": 771.0}, None]
    cached = [
        {"apiary": 1500.0, "serving": 2.0, "background": 70.0, "redis": 100.0, "hey": 220.0, "hello": 8.0},
        {"apiary": 1300.0, "serving": 4.0, "background": 80.0, "redis": 90.0, "hey": 200.0, "hello": 2.0},
        {"apiary": 1400.0, "serving": 3.0, "background": 75.0, "redis": 95.0, "hey": 210.0, "hello": 5.0},
    ]
    for cpu in cached:
        cpu["total"] = sum(cpu.values())
    rounds = [
        {"hello": {"c16": _measured(2000, h)}, "lookup_cached": {"c16": _measured(900, c)}}
        for h, c in zip([*hello, hello[0]], cached, strict=True)
    ]
    results = combine_rounds(rounds)
    assert results["lookup_cached"]["c16"]["cpu_us_per_request"]["apiary"] == 1400.0
    assert results["lookup_cached"]["c16"]["cpu_us_per_request"]["background"] == 75.0
    assert results["hello"]["c16"]["cpu_us_per_request"]["hello"] == 600.0  # the round without figures is skipped

    labels = {"hello": "bare hello", "lookup_cached": "cached lookup"}
    table = format_cpu_table(
        labels, {"hello": "hello", "lookup_cached": "apiary"}, ("serving", "background"), results
    ).splitlines()
    assert table[0].startswith("| call (16 clients), CPU µs per request | server | workers | Redis | hey | rest |")
    assert table[2] == "| bare hello | 600 | 0 | 1 | 170 | 0 | 771 | 1.00x |"
    # server 1,400; workers 3 + 75; Redis 95; hey 210; the idle hello server's 5 is the rest; 1,788 in all.
    assert table[3] == "| cached lookup | 1,400 | 78 | 95 | 210 | 5 | 1,788 | 2.32x |"


def test_a_row_measured_without_cpu_figures_is_left_out_of_the_cpu_table():
    results = combine_rounds([{"hello": {"c16": _measured(2000, None)}}])
    assert results["hello"]["c16"]["cpu_us_per_request"] is None
    assert len(format_cpu_table({"hello": "bare hello"}, {"hello": "hello"}, (), results).splitlines()) == 2
