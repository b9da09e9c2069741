"""The serving benchmark's own machinery: hey's summary read right, loads bounded, every process stopped, and the
servers started with `make run`'s gunicorn settings. (Benchmarks themselves are run on demand, never in tests.)"""

from __future__ import annotations

import json
import subprocess
import time
from argparse import Namespace
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from bench.load import Target, figures_from_hey, hey_command, run_hey
from bench.redis_app import ANSWER_KEY
from bench.report import add_ratios, format_table, format_targets, issue_targets
from bench.serving import FUNCTION_PAYLOAD, LOOKUP_ID, ROWS, SEGMENT_ANSWER, measure_once
from bench.stack import (
    CELERY_REFERENCE_DB,
    CELERY_REFERENCE_QUEUE,
    GUNICORN_SETTINGS,
    REDIS_REFERENCE_DB,
    SCRIPT_REFERENCE_DB,
    Stack,
    celery_reference_worker_command,
    procfile_workers,
    redis_database,
)

ROOT = Path(__file__).resolve().parents[2]

# A real hey 0.1.4 summary: 2xx and 4xx answers plus connection errors.
HEY_SUMMARY = """
Summary:
  Total:\t2.0000 secs
  Slowest:\t0.0546 secs
  Fastest:\t0.0013 secs
  Average:\t0.0044 secs
  Requests/sec:\t468.5792

Latency distribution:
  10% in 0.0024 secs
  50% in 0.0039 secs
  99% in 0.0122 secs

Status code distribution:
  [200]\t800 responses
  [429]\t50 responses

Error distribution:
  [101]\tGet "http://127.0.0.1:18931/": dial tcp 127.0.0.1:18931: connect: connection refused
"""


def test_only_2xx_answers_count_as_requests_and_everything_else_is_an_error():
    figures = figures_from_hey(HEY_SUMMARY, clients=2)
    assert figures.requests == 800
    assert figures.errors == 50 + 101
    assert figures.requests_per_s == 400.0  # 800 answers over hey's 2 s, not its 468 (which counts failures)
    assert (figures.p50_ms, figures.p99_ms, figures.mean_ms) == (3.9, 12.2, 4.4)
    assert figures.first_error == "HTTP 429"


def test_a_run_too_short_for_a_99th_percentile_says_so_instead_of_zero():
    figures = figures_from_hey(HEY_SUMMARY.replace("  99% in 0.0122 secs\n", ""), clients=1)
    assert figures.p99_ms is None
    assert "| n/a |" in format_table({"hello": "hello"}, {"hello": {"c1": figures.as_dict()}})


def test_the_load_only_ever_goes_to_the_loopback():
    with pytest.raises(ValueError, match="loopback"):
        hey_command(Target("http://example.com/"), 1, 10, None)


def test_ratios_are_against_hello_at_the_same_client_count_and_the_model_also_against_sklearn():
    def figures(rps, p50=1.0, p99=2.0):
        return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99}

    results = {
        "hello": {"c16": figures(1000), "c1": figures(500)},
        "sklearn": {"c16": figures(100), "c1": figures(50)},
        "lookup_cached": {"c16": figures(600), "c1": figures(100)},
        "model": {"c16": figures(250, p99=70.0), "c1": figures(40, p50=5.0)},
    }
    add_ratios(results)
    assert results["lookup_cached"]["vs_hello"] == {"c16": 0.6, "c1": 0.2}
    assert results["model"]["vs_sklearn"] == {"c16": 2.5, "c1": 0.8}
    assert "vs_hello" not in results["hello"]
    met = {(t["row"], t["clients"], t["what"]): t["met"] for t in issue_targets(results)}
    assert met[("lookup_cached", 16, "req/s vs bare hello")] is True
    assert met[("model", 16, "req/s vs plain scikit-learn")] is True
    assert met[("model", 16, "p99 ms")] is False
    assert met[("model", 1, "p50 ms")] is True
    assert met[("function", 1, "p50 ms")] is None  # not run: not measured, never "met"


def _figures(rps: float, clients: int) -> dict:
    return {"clients": clients, "requests_per_s": rps, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}


def _results(**rows: tuple[float, float]) -> dict:
    """Results of rows measured at (16 clients, 1 client) req/s."""
    return {row_id: {"c16": _figures(c16, 16), "c1": _figures(c1, 1)} for row_id, (c16, c1) in rows.items()}


def _cell(results: dict, row_id: str, column: str, clients: int = 16) -> str:
    """The printed table's cell in `column` on the line of `row_id` at `clients`."""
    labels = {row.id: row.label for row in ROWS}
    lines = format_table(labels, results).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    line = next(line for line in lines if line.startswith(f"| {labels[row_id]} | {clients} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][header.index(column)]


def _shown_without_target(results: dict, row_id: str, what: str, measured: float) -> list[dict]:
    """`what` is printed for `row_id` at 16 clients as a figure without a target; returns every target checked."""
    checked = issue_targets(results)
    assert [t for t in checked if t["what"] == what] == [
        {"row": row_id, "clients": 16, "what": what, "target": None, "measured": measured, "met": None}
    ]
    return checked


def test_the_function_is_also_shown_against_the_plain_celery_round_trip_as_a_figure_without_a_target():
    results = _results(hello=(1000, 500), celery=(200, 100), model=(300, 90), function=(250, 80))
    add_ratios(results)
    assert results["function"]["vs_celery"] == {"c16": 1.25, "c1": 0.8}
    assert results["function"]["vs_hello"] == {"c16": 0.25, "c1": 0.16}  # the issue's ratio stays
    assert results["celery"]["vs_hello"] == {"c16": 0.2, "c1": 0.2}
    assert "vs_celery" not in results["model"] and "vs_sklearn" not in results["model"]  # no sklearn row run

    assert _cell(results, "function", "vs plain Celery") == "1.25x"
    assert _cell(results, "celery", "vs plain Celery") == ""

    checked = _shown_without_target(results, "function", "req/s vs plain Celery round trip", 1.25)
    # The issue's targets are unchanged beside it.
    function_vs_hello = next(t for t in checked if t["row"] == "function" and t["what"] == "req/s vs bare hello")
    assert (function_vs_hello["target"], function_vs_hello["met"]) == (">= 0.2", True)
    lines = format_targets(checked).splitlines()
    assert (
        "- function, 16 clients: req/s vs plain Celery round trip: measured 1.25 (shown for reference, no target)"
        in (lines)
    )

    del results["celery"], results["function"]["vs_celery"]
    add_ratios(results)
    assert "vs_celery" not in results["function"]  # the reference was not run: no ratio
    assert "req/s vs plain Celery round trip: measured None (not measured)" in format_targets(issue_targets(results))


def test_the_celery_reference_is_called_like_the_function_endpoint():
    rows = {row.id: row for row in ROWS}
    reference, function = rows["celery"], rows["function"]
    assert (reference.server, reference.method, reference.path, reference.keyed) == ("celery", "POST", "/run", False)
    assert reference.body == function.body == FUNCTION_PAYLOAD
    assert list(rows).index("celery") < list(rows).index("lookup_cached"), "the references come first"


def test_the_cached_lookup_is_also_shown_against_the_plain_redis_read_as_a_figure_without_a_target():
    rows = {row.id: row for row in ROWS}
    reference, cached = rows["redis"], rows["lookup_cached"]
    assert (reference.server, reference.method, reference.keyed) == ("redis_ref", "GET", False)
    assert reference.path == f"/lookup?id={LOOKUP_ID}" and cached.path.endswith(f"?id={LOOKUP_ID}")
    assert list(rows).index("redis") < list(rows).index("lookup_cached"), "the references come first"

    results = _results(hello=(1000, 500), redis=(800, 400), lookup_cached=(520, 200), lookup_uncached=(400, 150))
    add_ratios(results)
    assert results["lookup_cached"]["vs_redis"] == {"c16": 0.65, "c1": 0.5}
    assert results["lookup_cached"]["vs_hello"] == {"c16": 0.52, "c1": 0.4}  # the issue's ratio stays
    assert "vs_redis" not in results["lookup_uncached"]  # the cached lookup's reference only

    assert _cell(results, "lookup_cached", "vs plain Redis") == "0.65x"
    assert _cell(results, "lookup_uncached", "vs plain Redis") == ""

    checked = _shown_without_target(results, "lookup_cached", "req/s vs plain Redis read", 0.65)
    cached_vs_hello = next(t for t in checked if t["row"] == "lookup_cached" and t["what"] == "req/s vs bare hello")
    assert (cached_vs_hello["target"], cached_vs_hello["met"]) == (">= 0.5", True)


def test_the_cached_lookup_is_also_shown_against_the_serve_script_route_as_a_figure_without_a_target():
    rows = {row.id: row for row in ROWS}
    reference, cached = rows["script"], rows["lookup_cached"]
    assert (reference.server, reference.method, reference.keyed) == ("script_ref", "GET", True)
    assert reference.path == cached.path, "called exactly as the cached lookup is"
    assert list(rows).index("script") < list(rows).index("lookup_cached"), "the references come first"

    results = _results(hello=(1000, 500), script=(600, 300), lookup_cached=(450, 200), lookup_uncached=(400, 150))
    add_ratios(results)
    assert results["lookup_cached"]["vs_script"] == {"c16": 0.75, "c1": 0.667}
    assert results["script"]["vs_hello"] == {"c16": 0.6, "c1": 0.6}
    assert "vs_script" not in results["lookup_uncached"]
    assert _cell(results, "lookup_cached", "vs serve script") == "0.75x"
    assert _cell(results, "script", "vs serve script") == ""
    _shown_without_target(results, "lookup_cached", "req/s vs serve script route", 0.75)


def test_the_celery_reference_worker_has_the_pool_of_the_worker_that_runs_function_calls():
    functions_worker = next(
        argv for argv in procfile_workers().values() if "functions" in argv[argv.index("-Q") + 1].split(",")
    )
    command = celery_reference_worker_command()
    for flag in ("--pool", "--concurrency"):
        assert command[command.index(flag) + 1] == functions_worker[functions_worker.index(flag) + 1]
    assert command[command.index("-A") + 1] == "bench.celery_app"
    assert command[command.index("-Q") + 1] == CELERY_REFERENCE_QUEUE
    assert CELERY_REFERENCE_QUEUE not in {
        q for argv in procfile_workers().values() for q in argv[argv.index("-Q") + 1].split(",")
    }


def test_the_bench_serves_with_the_gunicorn_and_worker_settings_of_make_run():
    from app.procfile import load_processes

    processes = {p.name: p for p in load_processes(ROOT / "Procfile")}
    web = processes["web"].argv({"HOST": "127.0.0.1", "PORT": "8000", "WEB_CONCURRENCY": "2"})
    assert web[0] == "gunicorn" and web[1] == "--bind" and web[-1] == "wsgi:app"
    assert tuple(web[3:-1]) == GUNICORN_SETTINGS, "the Procfile's gunicorn changed: update bench/stack.py"
    workers = procfile_workers()
    assert set(workers) == {name for name, p in processes.items() if p.is_worker}
    queues = sorted(q for argv in workers.values() for q in argv[argv.index("-Q") + 1].split(","))
    assert queues == ["default", "functions", "predict", "train"], "every queue is consumed by exactly one worker"
    serving = next(argv for argv in workers.values() if "predict" in argv[argv.index("-Q") + 1].split(","))
    assert serving[serving.index("--pool") + 1] == "threads", "model calls run on a threads pool (no prefork hop)"


def _group_alive(pgid: int) -> bool:
    """Any process of the group still running (per `ps`; a zombie is already dead)."""
    listing = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True, check=True).stdout
    return any(
        int(g) == pgid and not stat.startswith("Z") for g, stat in (line.split() for line in listing.splitlines())
    )


def test_a_live_hello_server_is_loaded_within_the_request_cap_and_every_process_stops():
    stack = Stack()
    try:
        stack.serve("hello", "bench.hello_app:create_app()")
        stack.wait_until("hello", "/hello")
        target = Target(stack.url("hello", "/hello"))
        capped = run_hey(target, clients=2, seconds=60, max_requests=40)
        assert (capped.requests, capped.errors) == (40, 0)
        started = time.monotonic()
        timed = run_hey(target, clients=2, seconds=1, max_requests=10_000_000)
        assert time.monotonic() - started < 30  # stopped at its time budget, not at its (unreachable) cap
        assert timed.errors == 0 and 0 < timed.requests < 10_000_000
        measured = measure_once(stack, target, 2, Namespace(seconds=1, max_requests=400))
        cpu = measured["cpu_us_per_request"]
        assert measured["requests"] == 400 and set(cpu) == {"hello", "hey", "total"}
        assert cpu["hello"] > 0 and cpu["hey"] > 0  # the server's workers and the load tool both spent CPU
        assert abs(cpu["total"] - (cpu["hello"] + cpu["hey"])) <= 0.2  # each part rounded to 0.1 µs
        group = stack.children[0][1].pid
        tmp = stack.tmp
    finally:
        stack.stop()
    assert not _group_alive(group), "gunicorn's master or a worker outlived the benchmark"
    assert not tmp.exists()


def test_the_celery_reference_answers_through_its_worker_on_its_own_database_and_every_process_stops():
    stack = Stack()
    try:
        stack.start_celery_reference()
        stack.wait_until("celery", "/ready", timeout=120)
        answer = httpx.post(stack.url("celery", "/run"), json=FUNCTION_PAYLOAD, timeout=30)
        assert (answer.status_code, answer.json()) == (200, SEGMENT_ANSWER)
        apiary_db = redis.Redis.from_url(stack.redis_url)
        reference_db = redis.Redis.from_url(redis_database(stack.redis_url, CELERY_REFERENCE_DB))
        assert apiary_db.dbsize() == 0, "the reference wrote into the database Apiary uses"
        assert reference_db.keys("celery-task-meta-*"), "the answer did not come through the result backend"
        groups = {name: proc.pid for name, proc in stack.children if name != "redis"}
        assert set(groups) == {"celery-worker", "celery"}
        assert all(_group_alive(pgid) for pgid in groups.values())
        tmp = stack.tmp
    finally:
        stack.stop()
    assert not any(_group_alive(pgid) for pgid in groups.values()), "the reference's worker or server outlived it"
    assert not tmp.exists()


@contextmanager
def _reference_stack(server: str):
    """A stack for one reference app, named `server`; its processes and temp dir must be gone once stopped."""
    stack = Stack()
    try:
        yield stack
        group = next(proc.pid for name, proc in stack.children if name == server)
        tmp = stack.tmp
    finally:
        stack.stop()
    assert not _group_alive(group), "the reference's server outlived it"
    assert not tmp.exists()


def _reference_database(stack: Stack, db: int) -> redis.Redis:
    """The reference's own Redis database, once the one Apiary uses is seen untouched."""
    assert redis.Redis.from_url(stack.redis_url).dbsize() == 0, "the reference wrote into the database Apiary uses"
    return redis.Redis.from_url(redis_database(stack.redis_url, db))


def test_the_redis_reference_answers_what_was_stored_from_its_own_database_and_every_process_stops():
    with _reference_stack("redis_ref") as stack:
        answer = b'{"count":1,"rows":[{"customer_key":42}]}\n'
        stack.start_redis_reference({ANSWER_KEY.format(LOOKUP_ID): answer})
        stack.wait_until("redis_ref", f"/lookup?id={LOOKUP_ID}")
        got = httpx.get(stack.url("redis_ref", f"/lookup?id={LOOKUP_ID}"), timeout=30)
        assert (got.status_code, got.content, got.headers["Content-Type"]) == (200, answer, "application/json")
        assert httpx.get(stack.url("redis_ref", "/lookup?id=43"), timeout=30).status_code == 404
        assert _reference_database(stack, REDIS_REFERENCE_DB).get(ANSWER_KEY.format(LOOKUP_ID)) == answer


def test_the_serve_script_reference_answers_its_key_with_one_round_trip_on_its_own_database_and_every_process_stops():
    with _reference_stack("script_ref") as stack:
        answer = b'{"count":1,"rows":[{"customer_key":42}]}\n'
        stack.start_script_reference(answer, "dk_bench_reference_key")
        path = f"/api/service/bench/customer?id={LOOKUP_ID}"
        stack.wait_until("script_ref", path, statuses=(401,))
        url = stack.url("script_ref", path)
        assert httpx.get(url, timeout=30).status_code == 401
        assert httpx.get(url, headers={"X-API-Key": "dk_another"}, timeout=30).status_code == 401
        got = httpx.get(url, headers={"X-API-Key": "dk_bench_reference_key"}, timeout=30)
        assert (got.status_code, got.content, got.headers["X-Cache"]) == (200, answer, "HIT")
        assert int(got.headers["RateLimit-Remaining"]) < int(got.headers["RateLimit-Limit"])
        # The answered call's audit record, written by the serve script in the same round trip.
        (record,) = _reference_database(stack, SCRIPT_REFERENCE_DB).lrange("bench_script:audit", 0, -1)
        assert json.loads(record)["user_agent"].startswith("python-httpx")


def test_rounds_are_combined_by_their_median_and_ratios_taken_within_each_round():
    """A 2-core VM's speed drifts within minutes: a row is held to the references measured in its own round."""
    from bench.report import combine_rounds

    def figures(rps: float) -> dict:
        return {**_figures(rps, 16), "requests": int(rps * 5), "seconds": 5.0, "first_error": None}

    def one(hello: float, cached: float) -> dict:
        return {"hello": {"c16": figures(hello)}, "lookup_cached": {"c16": figures(cached)}}

    # Round 2 ran on a machine half as fast: its hello and its lookup both halved.
    results = combine_rounds([one(3000, 1500), one(1500, 750), one(2800, 1300)])
    assert results["hello"]["c16"]["requests_per_s"] == 2800  # the median round
    assert results["lookup_cached"]["c16"]["requests"] == (1500 + 750 + 1300) * 5  # every round's answers count
    assert len(results["lookup_cached"]["rounds"]) == 3
    add_ratios(results)
    # Per round 0.5, 0.5 and 0.464: the median is 0.5; the ratio of the medians (1300 / 2800) would say 0.464.
    assert results["lookup_cached"]["vs_hello"] == {"c16": 0.5}
    assert next(t for t in issue_targets(results) if t["row"] == "lookup_cached")["met"] is True
