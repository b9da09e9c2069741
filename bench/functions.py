"""Functions benchmark: per-call latency of a function endpoint in a fresh jail per call (cold) and a warm jail.

Two parts, one run:
- through the jail only: `run_handler` in this process, N calls with a fresh jail each, then N calls on a warm jail
  of one endpoint version (no HTTP, no Celery);
- through HTTP: its own stack (a private Redis, a temp var dir, `flask db upgrade`, a Celery worker for the functions
  queue, gunicorn), a published function endpoint with a minted key, `POST /api/service/<key>/<endpoint>` from 1
  client and from 16, first with warm jails off (`FUNCTION_JAIL_POOL_SIZE=0`, the worker restarted), then with the
  defaults; beside a bare "hello" route of the same gunicorn.

    .venv/bin/python bench/functions.py [--calls 200] [--requests 300] [--requests-16 800] [--keep]

Figures go to bench/results/functions.json. The issue's target: function endpoint, 1 client, p50 under 8 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.predict import Stack, _ok  # noqa: E402 - after the path is set

RESULTS = ROOT / "bench" / "results" / "functions.json"
TARGET_P50_MS = 8.0
HANDLER = "import math\n\ndef handler(payload):\n    return {'root': math.sqrt(payload['x'])}\n"
PAYLOAD = {"x": 16}


def bench_app():
    """The app plus a bare "hello" route, served by the same gunicorn: the HTTP ceiling."""
    from app import create_app

    app = create_app()

    @app.get("/bench/hello")
    def hello():
        return {"hello": "world"}

    return app


def summary(latencies_s: list[float], elapsed_s: float | None = None) -> dict:
    ordered = sorted(x * 1000 for x in latencies_s)
    result = {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
    }
    if elapsed_s:
        result["requests_per_s"] = round(len(ordered) / elapsed_s, 1)
    return result


def through_the_jail(calls: int) -> dict:
    from app.sandbox import WarmKey, WarmPool, run_handler

    def timed(**kwargs) -> list[float]:
        out = []
        for _ in range(calls):
            started = time.perf_counter()
            assert run_handler(HANDLER, PAYLOAD, **kwargs) == {"root": 4.0}
            out.append(time.perf_counter() - started)
        return out

    cold = timed()
    pool = WarmPool(size=4, max_calls=100, max_age_s=60)
    key = WarmKey.for_endpoint({"org_id": 1, "asset_id": 1, "version": 1, "endpoint_id": "root"}, HANDLER)
    try:
        warm = timed(warm=key, pool=pool)
    finally:
        pool.close()
    return {"cold": summary(cold), "warm": summary(warm), "warm_jail_max_calls": 100}


class FunctionStack(Stack):
    """bench.predict's stack, with a worker for the functions queue and the hello route."""

    def start(self) -> None:
        from app.redis_server import free_port, start_private_redis

        redis_proc, redis_url = start_private_redis(str(self.tmp / "redis"))
        self.children.append(("redis", redis_proc))
        var = self.tmp / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WAREHOUSE_", "DATABASE_"))}
        env = {k: v for k, v in env.items() if not k.startswith("FUNCTION_")}
        env.update(
            {
                "APP_CONFIG": "development",
                "APIARY_VAR_DIR": str(var),
                "REDIS_URL": redis_url,
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT),
            }
        )
        self.env = env
        os.environ.update(env)
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        bin_dir = Path(sys.executable).parent
        self.spawn(
            "web",
            [
                str(bin_dir / "gunicorn"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--keep-alive",
                "30",
                "--graceful-timeout",
                "5",
                "bench.functions:bench_app()",
            ],
        )
        self.wait_until(lambda: self.get("/healthz")[0] == 200, "web")

    def start_worker(self, **settings: str) -> None:
        """(Re)start the functions worker with these FUNCTION_* settings."""
        for index, (name, proc) in enumerate(self.children):
            if name == "worker":
                self._signal(name, proc, 15)
                proc.wait(timeout=30)
                del self.children[index]
                break
        saved = self.env
        self.env = {**saved, **settings}
        bin_dir = Path(sys.executable).parent
        self.spawn(
            "worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "celery_worker",
                "worker",
                "-Q",
                "functions",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        self.env = saved

    def task_runtimes(self) -> dict:
        """How long the worker spent in each run_function task (Celery's "succeeded in" log lines): the part of a
        call spent in the worker and the jail, the rest being HTTP, the web process, Redis and Celery's round trip."""
        found = re.findall(r"run_function\[[^]]+\] succeeded in ([0-9.e-]+)s", (self.tmp / "worker.log").read_text())
        return summary([float(x) for x in found])


def set_up_function(stack: Stack) -> str:
    """Sign up, create a project, publish a service with one function endpoint; its key."""
    _ok(
        stack.request(
            "POST",
            "/api/auth/register",
            {
                "org_name": "Bench",
                "username": "bench",
                "email": "bench@example.com",
                "password": "benchmark password 123",
            },
        ),
        "register",
        201,
    )
    token = _ok(
        stack.request("POST", "/api/auth/login", {"username": "bench", "password": "benchmark password 123"}), "login"
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    project_id = _ok(stack.request("POST", "/api/projects", {"name": "Bench", "slug": "bench"}, auth), "project", 201)[
        "project_id"
    ]
    scoped = {**auth, "X-Project-Id": str(project_id)}
    endpoints = [{"id": "root", "kind": "function", "handler": HANDLER}]
    asset = _ok(
        stack.request(
            "POST",
            "/api/publish/assets",
            {"asset_type": "api_service", "asset_key": "bench", "title": "Bench", "config": {"endpoints": endpoints}},
            scoped,
        ),
        "service",
        201,
    )
    _ok(stack.request("POST", f"/api/publish/assets/{asset['id']}/publish", None, auth), "publish")
    return _ok(
        stack.request(
            "POST", f"/api/publish/assets/{asset['id']}/api-keys", {"name": "bench", "rate_limit": 1_000_000}, auth
        ),
        "key",
        201,
    )["key"]


def measure(port: int, method: str, path: str, headers: dict, concurrency: int, total: int) -> dict:
    """`total` requests spread over `concurrency` keep-alive connections; latency per request."""
    body = json.dumps(PAYLOAD) if method == "POST" else None
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        gate.wait()
        for _ in range(total // concurrency):
            started = time.perf_counter()
            conn.request(method, path, body, {"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            data = resp.read()
            mine.append(time.perf_counter() - started)
            if resp.status != 200:
                with lock:
                    errors.append(f"{resp.status} {data[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests on {path}, first: {errors[0]}")
    return {"concurrency": concurrency, **summary(latencies, elapsed)}


def through_http(requests: int, requests_16: int, keep: bool) -> dict:
    stack = FunctionStack(keep)
    results: dict[str, dict] = {}
    try:
        stack.start()
        key = set_up_function(stack)
        path, headers = "/api/service/bench/root", {"X-API-Key": key}
        for name, settings in (("cold", {"FUNCTION_JAIL_POOL_SIZE": "0"}), ("warm", {})):
            stack.start_worker(**settings)
            stack.wait_until(lambda: stack.request("POST", path, PAYLOAD, headers)[0] == 200, "functions worker")
            measure(stack.port, "POST", path, headers, 2, 20)  # both pool processes up (and, warm, their jails)
            results[name] = {
                "c1": measure(stack.port, "POST", path, headers, 1, requests),
                "c16": measure(stack.port, "POST", path, headers, 16, requests_16),
                "worker_task_time": stack.task_runtimes(),
            }
        results["hello"] = {
            "c1": measure(stack.port, "GET", "/bench/hello", {}, 1, requests),
            "c16": measure(stack.port, "GET", "/bench/hello", {}, 16, requests_16),
        }
    finally:
        stack.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per measurement through the jail")
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement from 1 client")
    parser.add_argument("--requests-16", type=int, default=800, help="requests per measurement from 16 clients")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()

    jail = through_the_jail(args.calls)
    http_results = through_http(args.requests, args.requests_16, args.keep)
    warm_c1 = http_results["warm"]["c1"]["p50_ms"]
    report = {
        "what": "a function endpoint returning math.sqrt of its payload; p50/p90/p99 per call",
        "command": "python bench/functions.py",
        "stack": "gunicorn 2 workers x 8 threads; Celery prefork worker, concurrency 2, functions queue; private "
        "Redis; SQLite metadata; warm jails: FUNCTION_JAIL_MAX_CALLS=100, FUNCTION_JAIL_MAX_AGE_SECONDS=60, "
        "FUNCTION_JAIL_POOL_SIZE=4 (cold: FUNCTION_JAIL_POOL_SIZE=0)",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "through_the_jail": jail,
        "through_http": http_results,
        "targets": {
            "p50_c1_under_ms": TARGET_P50_MS,
            "p50_c1_warm_ms": warm_c1,
            "p50_c1_met": warm_c1 < TARGET_P50_MS,
            "throughput_c16_warm_vs_hello": round(
                http_results["warm"]["c16"]["requests_per_s"] / http_results["hello"]["c16"]["requests_per_s"], 2
            ),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
