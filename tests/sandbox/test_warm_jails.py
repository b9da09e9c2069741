"""Warm jails in the real jail: reused only by the same endpoint version, ended by any failure, by their call count
and age, bounded in number, replaced when killed from outside; limits still hold per call."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from app.errors import APIError
from app.sandbox import WarmKey, WarmPool, run_handler
from app.sandbox.jail import UID_RANGE

# Reports who it is (a token drawn when the jail loads it, its call counter) and what it can see of the jail's state;
# `do` makes it leave state behind or fail in each way a call can fail.
STATE = """
import os, subprocess, threading, time

TOKEN = os.urandom(8).hex()
CALLS = 0


def handler(payload):
    global CALLS
    CALLS += 1
    do = (payload or {}).get("do")
    if do == "leave":
        os.environ["LEFT_BY"] = TOKEN
        with open("/tmp/left-by", "w") as handle:
            handle.write(TOKEN)
    elif do == "spawn":
        child = subprocess.Popen(["sleep", "600"], start_new_session=True)
        # (Popen may return before the kernel shows the new command line.)
        while open(f"/proc/{child.pid}/cmdline", "rb").read() != b"sleep\\x00600\\x00":
            time.sleep(0.001)
    elif do == "thread":
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    elif do == "raise":
        raise ValueError(f"{TOKEN} {CALLS}")  # the jail, and how many calls it had taken with this one
    elif do == "set":
        return {TOKEN}
    elif do == "huge":
        return "x" * 2_000_000
    elif do == "sleep":
        time.sleep(60)
    elif do == "spin":
        end = time.process_time() + payload.get("cpu_s", 600)
        while time.process_time() < end:
            pass
    elif do == "hoard":
        hoard = []
        while True:
            hoard.append(bytearray(10 * 1024 * 1024))
    elif do == "fork_hoard":
        for _ in range(4):
            if os.fork() == 0:
                hoard = b"x" * (100 * 1024 * 1024)
                time.sleep(3)
                os._exit(len(hoard) and 0)
        time.sleep(3)
    elif do == "transient":
        return len(bytearray(100 * 1024 * 1024))
    elif do == "exit":
        os._exit(3)
    processes = []
    for pid in sorted(name for name in os.listdir("/proc") if name.isdigit()):
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            processes.append(handle.read().replace(b"\\0", b" ").decode().strip())
    return {"token": TOKEN, "calls": CALLS, "pid": os.getpid(), "env": os.environ.get("LEFT_BY"),
            "tmp": sorted(os.listdir("/tmp")), "processes": processes}
"""

TIMEOUT_S = 3.0


def endpoint(endpoint_id="score", version=1, org_id=1, asset_id=10, source=STATE) -> WarmKey:
    identity = {"org_id": org_id, "asset_id": asset_id, "version": version, "endpoint_id": endpoint_id}
    return WarmKey.for_endpoint(identity, source)


def run(pool, key, payload=None, source=STATE, **limits):
    limits.setdefault("timeout_s", TIMEOUT_S)
    limits.setdefault("cpu_seconds", 2)
    return run_handler(source, payload, warm=key, pool=pool, **limits)


def failure(pool, key, payload, **limits) -> APIError:
    with pytest.raises(APIError) as caught:
        run(pool, key, payload, **limits)
    return caught.value


def jail_processes() -> list[psutil.Process]:
    """Jails of this process only: the session's Celery worker (also our child) keeps warm jails of its own."""
    bwraps = [p for p in psutil.Process().children(recursive=True) if p.name() == "bwrap"]
    return [p for p in bwraps if p.ppid() == os.getpid()]


@pytest.fixture()
def pool():
    pool = WarmPool(size=4, max_calls=100, max_age_s=60)
    yield pool
    pool.close()
    assert jail_processes() == []


def test_consecutive_calls_of_one_endpoint_version_reuse_its_jail(pool):
    first = run(pool, endpoint())
    later = [run(pool, endpoint()) for _ in range(4)]
    assert {r["token"] for r in later} == {first["token"]}
    assert [r["calls"] for r in [first, *later]] == [1, 2, 3, 4, 5]
    assert {r["pid"] for r in later} == {first["pid"]}
    # What a call leaves behind is there for the next call of the same endpoint version: that is what warm means.
    left = run(pool, endpoint(), {"do": "leave"})
    seen = run(pool, endpoint())
    assert seen["token"] == left["token"] and seen["env"] == left["token"] and seen["tmp"] == ["left-by"]
    assert len(jail_processes()) == 1


@pytest.mark.parametrize(
    "other",
    [
        endpoint("other"),  # another endpoint of the same service, same source
        endpoint(version=2),  # the next published version, same source
        endpoint(org_id=2),  # another organization
        endpoint(asset_id=11),  # another service
    ],
    ids=["endpoint", "version", "organization", "service"],
)
def test_another_endpoint_or_version_never_sees_the_state_left_behind(pool, other):
    left = run(pool, endpoint(), {"do": "leave"})
    assert run(pool, endpoint())["env"] == left["token"]
    theirs = [run(pool, other) for _ in range(3)]
    assert left["token"] not in {r["token"] for r in theirs}
    assert [r["calls"] for r in theirs] == [1, 2, 3]
    for result in theirs:
        assert result["env"] is None and result["tmp"] == []
    # The first endpoint's jail is still its own, untouched by the other's calls.
    again = run(pool, endpoint())
    assert (again["token"], again["calls"]) == (left["token"], 3)
    assert len(jail_processes()) == 2


def test_a_process_or_thread_left_running_ends_the_jail_and_reaches_nobody(pool):
    warm = run(pool, endpoint())
    spawned = run(pool, endpoint(), {"do": "spawn"})
    assert spawned["token"] == warm["token"] and any(p == "sleep 600" for p in spawned["processes"])
    # The call answered, but its jail was killed with the process it left: nothing of it runs any more.
    assert not [
        p
        for p in psutil.process_iter(["cmdline", "uids"])
        if p.info["cmdline"] == ["sleep", "600"] and p.info["uids"].real >= UID_RANGE[0]
    ]
    after = run(pool, endpoint())
    assert after["token"] != warm["token"] and after["calls"] == 1
    assert not [p for p in after["processes"] if "sleep" in p]
    other = run(pool, endpoint("other"))
    assert not [p for p in other["processes"] if "sleep" in p]
    threaded = run(pool, endpoint(), {"do": "thread"})
    assert threaded["token"] == after["token"]
    assert run(pool, endpoint())["token"] != after["token"]


@pytest.mark.parametrize(
    "payload,status,code",
    [
        ({"do": "raise"}, 422, "function_error"),
        ({"do": "set"}, 422, "function_bad_result"),
        ({"do": "huge"}, 422, "function_result_too_large"),
        ({"do": "sleep"}, 504, "function_timeout"),
        ({"do": "spin"}, 504, "function_timeout"),
        ({"do": "hoard"}, 422, "function_resource_limit"),
        ({"do": "fork_hoard"}, 422, "function_resource_limit"),
        ({"do": "exit"}, 502, "function_crashed"),
    ],
    ids=lambda value: value.get("do") if isinstance(value, dict) else None,
)
def test_any_failed_call_ends_its_jail_and_the_next_call_gets_a_fresh_one(pool, payload, status, code):
    warm = [run(pool, endpoint(), memory_mb=192, max_output_bytes=1_000_000) for _ in range(2)]
    assert warm[1]["token"] == warm[0]["token"]
    err = failure(pool, endpoint(), payload, memory_mb=192, max_output_bytes=1_000_000)
    assert (err.status, err.code) == (status, code), err.message
    if payload["do"] == "raise":
        assert warm[0]["token"] in err.message  # the failure came from the warm jail
    assert jail_processes() == []
    after = run(pool, endpoint(), memory_mb=192, max_output_bytes=1_000_000)
    assert after["token"] != warm[0]["token"] and after["calls"] == 1


def test_cpu_time_is_limited_per_call_not_over_the_jails_life(pool):
    # Each call spends 0.6 s of CPU under a 1 s limit: four of them on one jail are 2.4 s together.
    # (Generous deadlines: on a loaded machine a second of CPU takes several seconds of wall clock.)
    results = [run(pool, endpoint(), {"do": "spin", "cpu_s": 0.6}, cpu_seconds=1, timeout_s=30) for _ in range(4)]
    assert len({r["token"] for r in results}) == 1 and results[-1]["calls"] == 4
    err = failure(pool, endpoint(), {"do": "spin", "cpu_s": 5}, cpu_seconds=1, timeout_s=30)
    assert (err.status, err.code) == (504, "function_timeout") and "1 s of CPU time" in err.message
    assert run(pool, endpoint(), cpu_seconds=1, timeout_s=30)["calls"] == 1


def test_memory_and_the_deadline_still_hold_on_a_warm_jail(pool):
    limits = {"memory_mb": 192, "timeout_s": 2.0}
    # 100 MB freed after each call: the memory limit is on what the jail holds, so it never adds up.
    results = [run(pool, endpoint(), {"do": "transient"}, **limits) for _ in range(3)]
    assert results == [100 * 1024 * 1024] * 3
    token = run(pool, endpoint(), **limits)["token"]
    err = failure(pool, endpoint(), {"do": "fork_hoard"}, **limits)
    assert (err.status, err.code) == (422, "function_resource_limit") and "192 MB" in err.message
    run(pool, endpoint(), **limits)
    started = time.monotonic()
    err = failure(pool, endpoint(), {"do": "sleep"}, **limits)
    assert (err.status, err.code) == (504, "function_timeout")
    assert time.monotonic() - started < 2.0 + 1.5
    assert jail_processes() == []
    assert run(pool, endpoint(), **limits)["token"] != token


def test_a_jail_serves_at_most_max_calls_calls():
    pool = WarmPool(size=4, max_calls=3, max_age_s=60)
    try:
        results = [run(pool, endpoint()) for _ in range(7)]
    finally:
        pool.close()
    assert [r["calls"] for r in results] == [1, 2, 3, 1, 2, 3, 1]
    tokens = [r["token"] for r in results]
    assert tokens[0] == tokens[2] != tokens[3] == tokens[5] != tokens[6]


def test_a_jail_lives_at_most_max_age_seconds_idle_or_busy():
    pool = WarmPool(size=4, max_calls=1000, max_age_s=1.0)
    try:
        first = run(pool, endpoint())
        ((_, jail),) = pool.jails()
        # Idle past its age: killed by the pool without any further call.
        deadline = time.monotonic() + 3
        while jail.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jail.proc.poll() is not None and pool.jails() == []
        assert jail_processes() == []
        second = run(pool, endpoint())
        assert second["token"] != first["token"] and second["calls"] == 1
        # Busy: called all the time, it is still replaced once its age has passed.
        tokens = set()
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            tokens.add(run(pool, endpoint())["token"])
        assert len(tokens - {second["token"]}) >= 1
    finally:
        pool.close()


def test_the_pool_keeps_a_few_jails_and_kills_the_least_recently_used():
    pool = WarmPool(size=2, max_calls=100, max_age_s=60)
    try:
        tokens = {name: run(pool, endpoint(name))["token"] for name in ("a", "b")}
        (jail_a,) = [jail for slot, jail in pool.jails() if slot.key.endpoint_id == "a"]
        assert run(pool, endpoint("a"))["token"] == tokens["a"]  # a is now the most recently used
        run(pool, endpoint("c"))
        assert sorted(slot.key.endpoint_id for slot, _ in pool.jails()) == ["a", "c"]
        assert len(jail_processes()) == 2
        again = run(pool, endpoint("b"))
        assert again["token"] != tokens["b"] and again["calls"] == 1
        # b is back, so a, now the least recently used, is evicted and its jail killed.
        assert sorted(slot.key.endpoint_id for slot, _ in pool.jails()) == ["b", "c"]
        assert jail_a.proc.poll() is not None and len(jail_processes()) == 2
    finally:
        pool.close()


PAUSE = """
import os, time

TOKEN = os.urandom(8).hex()
CALLS = 0


def handler(payload):
    global CALLS
    CALLS += 1
    time.sleep(payload["pause_s"])
    return {"token": TOKEN, "calls": CALLS}
"""


def test_calls_of_one_endpoint_at_once_each_keep_their_jail_warm(pool):
    from concurrent.futures import ThreadPoolExecutor

    # Three calls at once (the threads of a threads-pool worker, which live as long as the worker: a jail dies with
    # the thread that started it): three jails; each is kept, so the next three calls at once are all warm, instead
    # of all but one jail being killed and started cold again.
    with ThreadPoolExecutor(3) as threads:

        def three_at_once() -> list[dict]:
            return list(threads.map(lambda _: run(pool, endpoint(), {"pause_s": 0.5}, source=PAUSE), range(3)))

        first = three_at_once()
        assert [r["calls"] for r in first] == [1, 1, 1] and len({r["token"] for r in first}) == 3
        assert len(pool.jails()) == 3
        again = three_at_once()
        assert sorted(r["calls"] for r in again) == [2, 2, 2]
        assert {r["token"] for r in again} == {r["token"] for r in first}
        # Still one endpoint version's jails only: another endpoint gets none of them.
        other = run(pool, endpoint("other"), {"pause_s": 0}, source=PAUSE)
        assert other["calls"] == 1 and other["token"] not in {r["token"] for r in first}
        # The pool's bound counts jails, not slots: at most 4 idle in all.
        assert len(pool.jails()) == 4 and len(jail_processes()) == 4


def test_a_jail_killed_from_outside_is_replaced_without_the_caller_noticing(pool):
    first = run(pool, endpoint())
    ((_, jail),) = pool.jails()
    (bootstrap,) = [p for p in psutil.Process(jail.proc.pid).children(recursive=True) if p.uids().real >= UID_RANGE[0]]
    os.kill(bootstrap.pid, signal.SIGKILL)
    psutil.wait_procs([bootstrap], timeout=5)
    after = run(pool, endpoint())
    assert after["token"] != first["token"] and after["calls"] == 1
    # The same when the whole jail is killed.
    ((_, jail),) = pool.jails()
    os.killpg(jail.proc.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(jail.proc.pid)], timeout=5)
    assert run(pool, endpoint())["calls"] == 1


@pytest.mark.parametrize(
    "size,max_calls,max_age_s", [(0, 100, 60), (4, 1, 60), (4, 0, 60), (4, 100, 0)], ids=["size", "calls", "0", "age"]
)
def test_settings_of_zero_or_one_give_every_call_a_fresh_jail(size, max_calls, max_age_s):
    pool = WarmPool(size=size, max_calls=max_calls, max_age_s=max_age_s)
    try:
        results = [run(pool, endpoint()) for _ in range(3)]
        assert [r["calls"] for r in results] == [1, 1, 1]
        assert len({r["token"] for r in results}) == 3
        assert pool.jails() == [] and jail_processes() == []
    finally:
        pool.close()


def test_a_call_without_an_endpoint_version_never_uses_a_warm_jail(pool):
    warm = run(pool, endpoint())
    assert run(pool, endpoint())["token"] == warm["token"]
    dry = [run(pool, None) for _ in range(2)]
    assert [r["calls"] for r in dry] == [1, 1] and warm["token"] not in {r["token"] for r in dry}
    assert WarmKey.for_endpoint(None, STATE) is None
    assert WarmKey.for_endpoint({"org_id": 1, "asset_id": 1, "version": None, "endpoint_id": "x"}, STATE) is None
    assert run(pool, endpoint())["token"] == warm["token"]


def test_the_same_endpoint_with_other_source_or_limits_gets_another_jail(pool):
    warm = run(pool, endpoint())
    edited = STATE + "\n# edited\n"
    other_source = run(pool, endpoint(source=edited), source=edited)
    assert other_source["token"] != warm["token"] and other_source["calls"] == 1
    other_limits = run(pool, endpoint(), memory_mb=128)
    assert other_limits["token"] != warm["token"] and other_limits["calls"] == 1
    assert run(pool, endpoint())["calls"] == 2
