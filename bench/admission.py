"""Admission benchmark: an endpoint's pool under 64 clients, and the fair share of a shared queue under a flood.

Its own stack (bench/stack.py: a private Redis, a temp var dir, migrations, the `make run` worker on every queue with
concurrency 2), plus a worker of 4 processes for the named queue `functions.pool` and a gunicorn of 2 workers x 48
threads (a web server needs more threads than the calls its pools hold, or refusals wait for a thread).

1. Pool: a function endpoint sleeping 50 ms with `pool: {max_in_flight: 4, max_queued: 8, queue_timeout_ms: 2000,
   queue: "functions.pool"}`; 64 clients call it for `--seconds`, a refused client waiting its `Retry-After` (1 s)
   and up to as long again (spread at random, as independent clients) before calling again (`pool`), then again with no pause at all (`pool_back_to_back`: a stress
   figure, where 64 tight loops saturate this machine's 2 cores). Target: refusals (503 overloaded) answered in
   under 10 ms p99, and every accepted call started within the queue timeout (none given up).
2. Fair share: organization A floods its function endpoint (50 ms, the shared `functions` queue) with 32 clients while
   organization B calls its own one call at a time; B alone first (unloaded), then during the flood. Target: B keeps
   zero errors and its p99 stays under 3x its unloaded p99.

    .venv/bin/python bench/admission.py [--seconds 20] [--calls 200] [--keep]

Figures go to bench/results/admission.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stack import BIN, Stack  # noqa: E402 - after the path is set

RESULTS = ROOT / "bench" / "results" / "admission.json"
HANDLER = "import time\n\ndef handler(payload):\n    time.sleep(0.05)\n    return {'ok': payload.get('n')}\n"
POOL = {"max_in_flight": 4, "max_queued": 8, "queue_timeout_ms": 2000, "queue": "functions.pool"}
WEB_THREADS = 48


def percentiles(latencies_s: list[float]) -> dict:
    if not latencies_s:
        return {"calls": 0}
    ordered = sorted(x * 1000 for x in latencies_s)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def server_total_ms(header: str | None, part: str = "total") -> float | None:
    """A part of a `Server-Timing` header (`auth;dur=0.3, ..., cpu;dur=0.9, total;dur=1.2`), by default `total`: the
    time the web process itself spent on the call, from its first line of code to its answer (no client, socket or
    thread-pool wait); `cpu`: the web thread's CPU time within it."""
    for item in (header or "").split(","):
        name, _, rest = item.strip().partition(";dur=")
        if name == part and rest:
            try:
                return float(rest)
            except ValueError:
                return None
    return None


class Client:
    """One keep-alive connection to the wide web server."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.retry_after: str | None = None
        self.server_ms: float | None = None  # the `total` of the last answer's Server-Timing
        self.server_cpu_ms: float | None = None  # ... and its `cpu`

    def call(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict, float]:
        payload = json.dumps(body) if body is not None else None
        started = time.perf_counter()
        try:
            self.conn.request(method, path, payload, {"Content-Type": "application/json", **(headers or {})})
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise
        took = time.perf_counter() - started
        self.retry_after = resp.getheader("Retry-After")
        self.server_ms = server_total_ms(resp.getheader("Server-Timing"))
        self.server_cpu_ms = server_total_ms(resp.getheader("Server-Timing"), "cpu")
        return resp.status, json.loads(raw) if raw else {}, took

    def close(self) -> None:
        self.conn.close()


def ok(answer: tuple[int, dict, float], what: str, status: int = 200) -> dict:
    if answer[0] != status:
        raise RuntimeError(f"{what}: HTTP {answer[0]} {answer[1]}")
    return answer[1]


def set_up_org(port: int, name: str, endpoint: dict) -> str:
    """Sign an organization up, publish a service `name` with `endpoint`; its key."""
    c = Client(port)
    password = "benchmark password 123"
    user = {"org_name": name, "username": name, "email": f"{name}@example.com", "password": password}
    ok(c.call("POST", "/api/auth/register", user), "register", 201)
    token = ok(c.call("POST", "/api/auth/login", {"username": name, "password": password}), "login")["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    project = ok(c.call("POST", "/api/projects", {"name": name, "slug": name}, auth), "project", 201)
    scoped = {**auth, "X-Project-Id": str(project["project_id"])}
    config = {"endpoints": [endpoint]}
    body = {"asset_type": "api_service", "asset_key": name, "title": name, "config": config}
    asset = ok(c.call("POST", "/api/publish/assets", body, scoped), "service", 201)
    ok(c.call("POST", f"/api/publish/assets/{asset['id']}/publish", None, auth), "publish")
    key = ok(
        c.call("POST", f"/api/publish/assets/{asset['id']}/api-keys", {"name": "b", "rate_limit": 1_000_000}, auth),
        "key",
        201,
    )["key"]
    c.close()
    return key


def run_clients(
    port: int,
    path: str,
    key: str,
    clients: int,
    seconds: float,
    stop: threading.Event | None = None,
    honour_retry_after: bool = False,
):
    """`clients` connections calling `path` back to back for `seconds` (or until `stop`); every answer recorded.
    With `honour_retry_after`, a client refused with a 503 waits its `Retry-After` before calling again, as a
    well-behaved client (the SDK) does."""
    answers: list[tuple[int, str | None, float, float | None, float | None]] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)
    until = [0.0]

    def client() -> None:
        c = Client(port)
        mine = []
        gate.wait()
        n = 0
        while time.monotonic() < until[0] and not (stop and stop.is_set()):
            n += 1
            try:
                status, body, took = c.call("POST", path, {"n": n}, {"X-API-Key": key})
            except (http.client.HTTPException, OSError) as exc:
                mine.append((0, type(exc).__name__, 0.0, None, None))
                continue
            reason = (body.get("error") or {}).get("details", {}).get("reason") if status != 200 else None
            mine.append((status, reason, took, c.server_ms, c.server_cpu_ms))
            if honour_retry_after and status == 503:
                # Never before Retry-After, spread over the second after it: independent clients do not all
                # come back in the same millisecond (64 clients refused together would, without the spread).
                time.sleep(float(c.retry_after or 1) * random.uniform(1.0, 2.0))
        c.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    until[0] = time.monotonic() + seconds
    gate.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    return answers, time.monotonic() - began


def one_at_a_time(port: int, path: str, key: str, calls: int) -> dict:
    c = Client(port)
    took, errors = [], []
    for n in range(calls):
        status, body, t = c.call("POST", path, {"n": n}, {"X-API-Key": key})
        if status == 200:
            took.append(t)
        else:
            errors.append(f"{status} {body}")
    c.close()
    return {**percentiles(took), "errors": len(errors), "first_error": errors[0] if errors else None}


def floor_probe(port: int, stop: threading.Event, out: list[float]) -> None:
    """`GET /healthz` one at a time while the clients run: the cheapest answer this server and machine give under
    the same load, the floor under any refusal's latency."""
    c = Client(port)
    while not stop.is_set():
        out.append(c.call("GET", "/healthz")[2])
        time.sleep(0.02)
    c.close()


def pool_part(port: int, key: str, seconds: float, honour_retry_after: bool) -> dict:
    path = "/api/service/pooled/slow"
    stop, floor = threading.Event(), []
    prober = threading.Thread(target=floor_probe, args=(port, stop, floor))
    prober.start()
    try:
        answers, elapsed = run_clients(port, path, key, 64, seconds, honour_retry_after=honour_retry_after)
    finally:
        stop.set()
        prober.join()
    accepted = [t for s, _, t, *_ in answers if s == 200]
    refused = [t for s, r, t, *_ in answers if s == 503 and r == "full"]
    refused_server = [ms / 1000 for s, r, _, ms, _ in answers if s == 503 and r == "full" and ms is not None]
    refused_cpu = [cpu / 1000 for s, r, _, _, cpu in answers if s == 503 and r == "full" and cpu is not None]
    timed_out = [t for s, r, t, *_ in answers if s == 503 and r == "queue_timeout"]
    other = [(s, r) for s, r, *_ in answers if s not in (200, 503) or (s == 503 and r not in ("full", "queue_timeout"))]
    return {
        "clients": 64,
        "refused_clients_wait_retry_after": honour_retry_after,
        "seconds": round(elapsed, 1),
        "pool": POOL,
        "accepted": percentiles(accepted),
        "accepted_per_s": round(len(accepted) / elapsed, 1),
        "refused_overloaded": percentiles(refused),
        # The same refusals as the web process timed them (Server-Timing total): what a refusal costs the server,
        # without the wait for a thread of this 2-core machine's loaded gunicorn or for the client's own threads.
        "refused_overloaded_server_side": percentiles(refused_server),
        # ... and the CPU time the web thread spent on each (Server-Timing cpu): what a refusal costs the server.
        "refused_overloaded_server_cpu": percentiles(refused_cpu),
        "given_up_at_queue_timeout": len(timed_out),
        "healthz_meanwhile": percentiles(floor),
        "other_answers": len(other),
        "first_other": other[0] if other else None,
    }


def fair_part(port: int, flood_key: str, calm_key: str, calls: int) -> dict:
    calm_path, flood_path = "/api/service/calm/work", "/api/service/flood/work"
    unloaded = one_at_a_time(port, calm_path, calm_key, calls)
    stop = threading.Event()
    flood: dict = {}

    def flooding() -> None:
        flood["answers"], flood["elapsed"] = run_clients(port, flood_path, flood_key, 32, 3600, stop)

    flooder = threading.Thread(target=flooding)
    flooder.start()
    time.sleep(3)  # the flood is on: 32 clients, every one waiting for or holding organization A's share
    loaded = one_at_a_time(port, calm_path, calm_key, calls)
    stop.set()
    flooder.join()
    flooded = flood["answers"]
    statuses: dict[str, int] = {}
    for status, reason, *_ in flooded:
        label = f"{status} {reason}" if reason else str(status)
        statuses[label] = statuses.get(label, 0) + 1
    return {
        "flooding_org": {
            "clients": 32,
            "answers": statuses,
            "accepted": percentiles([t for s, _, t, *_ in flooded if s == 200]),
        },
        "calm_org_unloaded": unloaded,
        "calm_org_during_flood": loaded,
        "p99_ratio": round(loaded["p99_ms"] / unloaded["p99_ms"], 2) if unloaded.get("p99_ms") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="how long the 64 clients call the pooled endpoint")
    parser.add_argument("--calls", type=int, default=200, help="calls of the calm organization, unloaded and loaded")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temp files (logs)")
    args = parser.parse_args()

    from app.redis_server import free_port

    stack = Stack(keep=args.keep)
    try:
        stack.start_apiary()
        stack.spawn(
            "pool-worker",
            [str(BIN / "celery"), "-A", "celery_worker", "worker", "-Q", "functions.pool", "-n", "pool@%h"]
            + ["--concurrency", "4", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        )
        port = free_port()
        stack.ports["wide"] = port
        stack.spawn(
            "wide",
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", str(WEB_THREADS)]
            # Keep-alive past the longest pause of a refused client (2 x Retry-After), so no client reuses a
            # connection the server has just closed.
            + ["--keep-alive", "5", "--graceful-timeout", "1", "wsgi:app"],
        )
        stack.wait_until("wide", "/readyz", timeout=180)
        pool_key = set_up_org(port, "pooled", {"id": "slow", "kind": "function", "handler": HANDLER, "pool": POOL})
        flood_key = set_up_org(port, "flood", {"id": "work", "kind": "function", "handler": HANDLER})
        calm_key = set_up_org(port, "calm", {"id": "work", "kind": "function", "handler": HANDLER})
        for key, path in ((pool_key, "/api/service/pooled/slow"), (flood_key, "/api/service/flood/work")):
            deadline = time.monotonic() + 60
            while run_clients(port, path, key, 4, 2)[0][-1][0] != 200:  # workers up, jails warm
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{path} never answered 200")
        one_at_a_time(port, "/api/service/calm/work", calm_key, 20)

        pool = pool_part(port, pool_key, args.seconds, honour_retry_after=True)
        stress = pool_part(port, pool_key, args.seconds, honour_retry_after=False)
        fair = fair_part(port, flood_key, calm_key, args.calls)
    finally:
        stack.stop()

    figures = {
        "what": "admission control: an endpoint's pool under 64 clients; the fair share of a shared queue under a flood",
        "command": "python bench/admission.py",
        "stack": (
            f"gunicorn 2 workers x {WEB_THREADS} threads, keep-alive 5 s; Celery prefork worker on every queue, concurrency 2 (the "
            "shared functions queue: 2 slots, a fair share of 1 per organization at FAIR_SHARE=0.5); a worker of 4 "
            "processes for functions.pool; private Redis; SQLite metadata; handlers sleep 50 ms"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "pool": pool,
        "pool_back_to_back": stress,
        "fair_share": fair,
        "targets": {
            "refusals_p99_under_10_ms": pool["refused_overloaded"].get("p99_ms", 0) < 10,
            "refusals_server_side_p99_under_10_ms": pool["refused_overloaded_server_side"].get("p99_ms", 0) < 10,
            "refusals_server_cpu_p99_under_10_ms": pool["refused_overloaded_server_cpu"].get("p99_ms", 0) < 10,
            "accepted_within_queue_timeout": pool["given_up_at_queue_timeout"] == 0
            and pool["accepted"].get("max_ms", 0) < POOL["queue_timeout_ms"] + 1000,
            "calm_org_zero_errors": fair["calm_org_during_flood"]["errors"] == 0,
            "calm_org_p99_under_3x_unloaded": (fair["p99_ratio"] or 99) < 3,
        },
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
