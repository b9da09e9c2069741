"""Runaway handlers end in a clean 4xx/504 within the deadline, leave nothing running, and the next call works."""

from __future__ import annotations

import time

import psutil

from app.sandbox.jail import UID_RANGE
from tests.sandbox.conftest import TIMEOUT_S, assert_next_call_succeeds, call, failure


def jailed_processes() -> list[psutil.Process]:
    """Processes under a throwaway sandbox uid, plus any bwrap still running below the test process; not the warm
    jails the session's Celery worker keeps (a child of this process too) for its endpoints, nor the jails of another
    test run on the same machine. A process that escaped its jail (reparented to init) is always counted."""
    found = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real >= UID_RANGE[0]]
    found += [p for p in psutil.Process().children(recursive=True) if p.name() == "bwrap"]
    return [p for p in found if not _owned_elsewhere(p)]


def _owned_elsewhere(process: psutil.Process) -> bool:
    """Under a Celery worker, or under a pytest process other than this one."""
    me = psutil.Process().pid
    try:
        for parent in process.parents():
            command = " ".join(parent.cmdline())
            if "celery" in command or (parent.pid != me and "pytest" in command and me not in _ancestors(parent)):
                return True
        return False
    except psutil.Error:  # ended while we looked
        return False


def _ancestors(process: psutil.Process) -> set[int]:
    return {parent.pid for parent in process.parents()}


def test_an_infinite_loop_times_out_at_the_deadline():
    started = time.monotonic()
    err = failure("def handler(payload):\n    while True:\n        pass\n", cpu_seconds=30)
    assert (err.status, err.code) == (504, "function_timeout")
    assert time.monotonic() - started < TIMEOUT_S + 1.5
    assert jailed_processes() == []
    assert_next_call_succeeds()


def test_a_sleeping_handler_times_out_too():
    err = failure("import time\n\ndef handler(payload):\n    time.sleep(60)\n")
    assert (err.status, err.code) == (504, "function_timeout")
    assert_next_call_succeeds()


def test_cpu_time_limit_ends_a_busy_handler():
    err = failure("def handler(payload):\n    while True:\n        pass\n", cpu_seconds=1, timeout_s=10)
    assert (err.status, err.code) == (504, "function_timeout")
    assert "CPU" in err.message
    assert_next_call_succeeds()


def test_a_memory_bomb_hits_the_memory_limit():
    source = """
        def handler(payload):
            hoard = []
            while True:
                hoard.append(bytearray(10 * 1024 * 1024))
    """
    err = failure(source, memory_mb=128)
    assert (err.status, err.code) == (422, "function_resource_limit")
    assert_next_call_succeeds()


def test_one_huge_allocation_hits_the_memory_limit():
    err = failure("def handler(payload):\n    return len(bytearray(8 * 1024**3))\n")
    assert err.code == "function_resource_limit"


def test_a_fork_bomb_is_stopped_by_the_process_limit():
    source = """
        import os

        def handler(payload):
            while True:
                os.fork()
    """
    err = failure(source)
    assert err.status in {422, 504}
    assert jailed_processes() == []
    assert_next_call_succeeds()


def test_a_fork_bomb_that_ignores_errors_is_killed_at_the_deadline():
    source = """
        import os

        def handler(payload):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """
    err = failure(source)
    assert (err.status, err.code) == (504, "function_timeout")
    assert jailed_processes() == []
    assert_next_call_succeeds()


def test_a_daemonised_child_does_not_outlive_the_call():
    source = """
        import os, subprocess

        def handler(payload):
            subprocess.Popen(["sleep", "600"], start_new_session=True)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    import time
                    time.sleep(600)
                os._exit(0)
            return "returned"
    """

    assert call(source) == "returned"
    assert jailed_processes() == []


def test_a_100_mb_result_is_refused_without_the_worker_buffering_it():
    worker = psutil.Process()
    before = worker.memory_info().rss
    err = failure("def handler(payload):\n    return 'x' * 100_000_000\n")
    assert (err.status, err.code) == (422, "function_result_too_large")
    assert worker.memory_info().rss - before < 50 * 1024 * 1024
    assert_next_call_succeeds()


def test_raw_output_past_the_limit_is_cut_off_by_the_worker():
    # The handler bypasses the bootstrap and floods every descriptor it has: the worker still reads at most the cap.
    source = """
        import os

        def handler(payload):
            block = b"x" * (1024 * 1024)
            for fd in range(3, 64):
                try:
                    for _ in range(100):
                        os.write(fd, block)
                except OSError:
                    pass
    """
    worker = psutil.Process()
    before = worker.memory_info().rss
    err = failure(source, max_output_bytes=10_000)
    assert (err.status, err.code) == (422, "function_result_too_large")
    assert worker.memory_info().rss - before < 50 * 1024 * 1024
    assert jailed_processes() == []
    assert_next_call_succeeds()


def test_a_result_just_under_the_limit_is_returned():

    assert len(call("def handler(payload):\n    return 'y' * 9_000\n", max_output_bytes=10_000)) == 9_000
    err = failure("def handler(payload):\n    return 'y' * 10_001\n", max_output_bytes=10_000)
    assert err.code == "function_result_too_large"
