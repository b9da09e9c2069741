"""The serving benchmark's own machinery: hey's summary read right, loads bounded, every process stopped, and the
servers started with `make run`'s gunicorn settings. (Benchmarks themselves are run on demand, never in tests.)"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.load import Target, figures_from_hey, hey_command, run_hey
from bench.report import add_ratios, format_table, issue_targets
from bench.stack import GUNICORN_SETTINGS, Stack, procfile_workers

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
        group = stack.children[0][1].pid
        tmp = stack.tmp
    finally:
        stack.stop()
    assert not _group_alive(group), "gunicorn's master or a worker outlived the benchmark"
    assert not tmp.exists()
