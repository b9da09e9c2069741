"""Serving benchmark (issue 15): Apiary's keyed calls beside a bare Flask "hello", a plain scikit-learn route, a plain
Celery round trip and a plain Redis read.

One run, one private stack (temp var dir, private Redis, free loopback ports, the Celery workers of the Procfile, as
`make run` starts them, gunicorn with `make run`'s settings for every server): a generated 100,000-row table is uploaded through
`POST /api/datasets/file/upload`, a random forest is trained on a worker through a train_model recipe, and one
published API service holds a cached lookup, an uncached lookup, an uncached filtered sql query, the model and a
function. hey then drives each call at 16 clients and at 1 client, bounded in requests and in time.

A function call runs on a Celery worker by design (user code is sandboxed there, never in the web process), so its
ceiling is a worker round trip, not a bare "hello". The third reference (bench/celery_app.py) is what a team would
deploy for "run this on a worker and wait": a plain Flask route calling `apply_async(...).get()` on a task that
computes what the function does, its worker with the pool of the Procfile's worker for functions, on another
database of the same Redis. The function row is also shown against it.

Likewise a cached lookup answers after a round trip to Redis, which a bare "hello" never makes. The fourth reference
(bench/redis_app.py) is what a team would deploy for a cached lookup: a plain Flask route answering from one Redis
GET (the very answer Apiary's cached lookup gives, stored on another database of the same Redis), with no key, rate
limit, audit record or metrics. The cached lookup is also shown against it, and against the fifth reference
(bench/script_app.py): a plain Flask route making the one Redis round trip issue 15 asks of a keyed call, through
Apiary's own serve script, and nothing else, the ceiling of any design that makes that round trip.

    make bench                                  # = .venv/bin/python bench/serving.py
    .venv/bin/python bench/serving.py --seconds 5 --rounds 3 --warmup 1 [--rows 100000] [--keep]
    .venv/bin/python bench/serving.py --only celery,function,hello --out /tmp/serving.json
    .venv/bin/python bench/serving.py --only hello,redis,script,lookup_cached --out /tmp/lookup.json

Prints the table and writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import per_request, waited_children_cpu_seconds  # noqa: E402
from bench.load import Figures, Target, run_hey  # noqa: E402
from bench.redis_app import ANSWER_KEY  # noqa: E402
from bench.report import (  # noqa: E402
    LOAD_TOOL,
    add_ratios,
    combine_rounds,
    format_cpu_table,
    format_table,
    format_targets,
    issue_targets,
    ms_text,
)
from bench.stack import (  # noqa: E402
    CELERY_REFERENCE_WORKER,
    GUNICORN_SETTINGS,
    Stack,
    celery_reference_worker_command,
    gunicorn_command,
    procfile_workers,
)

RESULTS = ROOT / "bench" / "results" / "serving.json"
CLIENT_LEVELS = (16, 1)
SERVICE_KEY = "bench"
LOOKUP_ID = 42  # the table is unindexed: where the row sits does not change the cost of finding it
FEATURES = {"tenure": 8, "plan": "basic", "monthly_fee": 20.0, "region": "EU"}
FUNCTION_PAYLOAD = {"tenure": 5}
MODEL_HYPERPARAMS = {"n_estimators": 100, "max_depth": 12}
SEGMENT_HANDLER = """def handler(payload):
    tenure = payload.get("tenure", 0)
    return {"segment": "new" if tenure < 12 else "loyal", "tenure": tenure}
"""
# What the function endpoint and the Celery reference both answer to FUNCTION_PAYLOAD.
SEGMENT_ANSWER = {"result": {"segment": "new", "tenure": 5}}


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    server: str  # "hello", "sklearn", "celery", "redis_ref" or "apiary"
    method: str
    path: str
    body: dict | None = None
    keyed: bool = True


ROWS = (
    Row("hello", 'bare Flask "hello" (reference)', "hello", "GET", "/hello", keyed=False),
    Row(
        "sklearn",
        "plain Flask + scikit-learn predict (reference)",
        "sklearn",
        "POST",
        "/predict",
        {"features": FEATURES},
        keyed=False,
    ),
    Row(
        "celery",
        "plain Flask + a Celery task round trip (reference)",
        "celery",
        "POST",
        "/run",
        FUNCTION_PAYLOAD,
        keyed=False,
    ),
    Row(
        "redis",
        "plain Flask + one Redis GET (reference)",
        "redis_ref",
        "GET",
        f"/lookup?id={LOOKUP_ID}",
        keyed=False,
    ),
    Row(
        "script",
        "plain Flask + Apiary's serve script, one round trip (reference)",
        "script_ref",
        "GET",
        f"/api/service/{SERVICE_KEY}/customer?id={LOOKUP_ID}",
    ),
    Row(
        "lookup_cached",
        "lookup by key, cache on",
        "apiary",
        "GET",
        f"/api/service/{SERVICE_KEY}/customer?id={LOOKUP_ID}",
    ),
    Row(
        "lookup_uncached",
        "lookup by key, cache off",
        "apiary",
        "GET",
        f"/api/service/{SERVICE_KEY}/customer_nocache?id={LOOKUP_ID}",
    ),
    Row(
        "sql_filtered",
        "sql filtered + sorted, cache off",
        "apiary",
        "GET",
        f"/api/service/{SERVICE_KEY}/top_tenure?region=EU&limit=10",
    ),
    Row(
        "model",
        "model, one row (random forest)",
        "apiary",
        "POST",
        f"/api/service/{SERVICE_KEY}/churn_risk",
        {"features": FEATURES},
    ),
    Row("function", "function endpoint", "apiary", "POST", f"/api/service/{SERVICE_KEY}/segment", FUNCTION_PAYLOAD),
)


# --- the data, the model and the service, through Apiary's own API ------------------------------------------------


def customers_csv(rows: int, seed: int = 15) -> bytes:
    """A customer table where short-tenure basic-plan customers churn (plus noise), `rows` rows."""
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("customer_key,name,email,region,plan,tenure,monthly_fee,churned\n")
    for i in range(1, rows + 1):
        tenure, plan = rng.randint(1, 72), rng.choice(("basic", "standard", "premium"))
        churned = int((tenure < 18 and plan == "basic") or rng.random() < 0.07)
        out.write(
            f"{i},Customer {i},customer{i}@example.com,{rng.choice(('EU', 'US', 'APAC'))},{plan},{tenure},"
            f"{rng.uniform(9, 99):.2f},{churned}\n"
        )
    return out.getvalue().encode()


def _ok(response, what: str, status: int = 200) -> dict:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


def set_up_service(base_url: str, rows: int) -> dict:
    """Sign up, upload the table, train the model on a worker, publish the service and mint a key."""
    import httpx

    with httpx.Client(base_url=base_url, timeout=900) as http:
        _ok(
            http.post(
                "/api/auth/register",
                json={
                    "org_name": "Bench",
                    "username": "bench",
                    "email": "bench@example.com",
                    "password": "benchmark password 15",
                },
            ),
            "sign up",
            201,
        )
        login = _ok(
            http.post("/api/auth/login", json={"username": "bench", "password": "benchmark password 15"}), "log in"
        )
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        # Only the fields every Apiary version accepts (icon, color, theme ... arrive with issue 11).
        project = _ok(http.post("/api/projects", json={"name": "Bench", "slug": "bench"}, headers=auth), "project", 201)
        scoped = {**auth, "X-Project-Id": str(project["project_id"])}
        started = time.perf_counter()
        dataset = _ok(
            http.post(
                "/api/datasets/file/upload",
                headers=scoped,
                data={"name": "marts.customers"},
                files={"file": ("customers.csv", customers_csv(rows), "text/csv")},
            ),
            "upload",
            201,
        )
        upload_s = time.perf_counter() - started
        print(f"  uploaded {dataset['row_count']:,} rows in {upload_s:.1f} s", flush=True)
        config = {
            "input_table": "marts.customers",
            "target_column": "churned",
            "task_type": "classification",
            "algorithm": "random_forest",
            "feature_columns": list(FEATURES),
            "hyperparams": MODEL_HYPERPARAMS,
        }
        recipe = _ok(
            http.post(
                "/api/flow/ai-recipes",
                headers=scoped,
                json={"recipe_type": "train_model", "name": "churn", "inputs": ["marts.customers"], "config": config},
            ),
            "recipe",
            201,
        )
        started = time.perf_counter()
        run = _ok(http.post(f"/api/flow/ai-recipes/{recipe['recipe_id']}/run", headers=scoped), "train")
        train_s = time.perf_counter() - started
        if run["status"] != "success":
            raise RuntimeError(f"training failed: {run}")
        print(f"  trained model {run['model_id']} on a worker in {train_s:.1f} s", flush=True)
        sql = {
            "source": {"schema": "marts", "table": "customers"},
            "columns": ["customer_key", "region", "plan", "tenure"],
            "filters": [{"column": "region", "op": "eq", "param": "region"}],
            "order_by": [{"column": "tenure", "dir": "desc"}],
            "pagination": {"default_limit": 10, "max_limit": 100},
        }
        endpoints = [
            {
                "id": "customer",
                "kind": "lookup",
                "dataset": "marts.customers",
                "key_column": "customer_key",
                "cache_ttl_seconds": 60,
            },
            {
                "id": "customer_nocache",
                "kind": "lookup",
                "dataset": "marts.customers",
                "key_column": "customer_key",
                "cache_ttl_seconds": 0,
            },
            {"id": "top_tenure", "kind": "sql", "query": sql, "cache_ttl_seconds": 0},
            {"id": "churn_risk", "kind": "model", "model_id": run["model_id"]},
            {"id": "segment", "kind": "function", "handler": SEGMENT_HANDLER},
        ]
        asset = _ok(
            http.post(
                "/api/publish/assets",
                headers=scoped,
                json={
                    "asset_type": "api_service",
                    "asset_key": SERVICE_KEY,
                    "title": "Bench",
                    "config": {"endpoints": endpoints},
                },
            ),
            "service",
            201,
        )
        _ok(http.post(f"/api/publish/assets/{asset['id']}/publish", headers=auth), "publish")
        key = _ok(
            http.post(
                f"/api/publish/assets/{asset['id']}/api-keys",
                headers=auth,
                json={"name": "bench", "rate_limit": 1_000_000, "expires_days": 0},
            ),
            "key",
            201,
        )
    return {
        "model_id": run["model_id"],
        "key": key["key"],
        "upload_s": round(upload_s, 1),
        "train_s": round(train_s, 1),
        "row_count": dataset["row_count"],
    }


def model_artifact(stack: Stack, model_id: int) -> str:
    """Where the worker stored the trained model (the plain scikit-learn route loads the same file)."""
    with sqlite3.connect(stack.tmp / "var" / "apiary.db") as conn:
        (path,) = conn.execute("SELECT artifact_path FROM ml_models WHERE id = ?", (model_id,)).fetchone()
    return path


def target_for(stack: Stack, row: Row, key: str) -> Target:
    headers = (("X-API-Key", key),) if row.keyed else ()
    body = json.dumps(row.body) if row.body is not None else None
    return Target(stack.url(row.server, row.path), row.method, body, headers)


def check_answers(targets: dict[str, Target]) -> None:
    """Every call answers 200 before it is measured, lookups find their row, only the cached one hits the cache, the
    function and its Celery reference give the same answer, and so do the cached lookup and its Redis reference."""
    import httpx

    bodies: dict[str, bytes] = {}
    for row_id, target in targets.items():
        for _ in range(2):
            answer = httpx.request(
                target.method,
                target.url,
                content=target.body,
                timeout=60,
                headers={"Content-Type": "application/json", **dict(target.headers)},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"{row_id}: HTTP {answer.status_code} {answer.text[:500]}")
        if row_id == "lookup_cached" and answer.headers.get("X-Cache") != "HIT":
            raise RuntimeError(f"lookup_cached: the second call was not a cache hit ({answer.headers.get('X-Cache')})")
        if row_id in ("lookup_uncached", "sql_filtered") and "X-Cache" in answer.headers:
            raise RuntimeError(f"{row_id}: answered through the cache, expected it off")
        if row_id.startswith("lookup") and answer.json()["count"] != 1:
            raise RuntimeError(f"{row_id}: expected the one row of key {LOOKUP_ID}, got {answer.text[:300]}")
        if row_id in ("function", "celery") and answer.json() != SEGMENT_ANSWER:
            raise RuntimeError(f"{row_id}: expected {SEGMENT_ANSWER}, got {answer.text[:300]}")
        bodies[row_id] = answer.content
    for reference in ("redis", "script"):
        if reference in bodies and "lookup_cached" in bodies and bodies[reference] != bodies["lookup_cached"]:
            raise RuntimeError(
                f"{reference}: answers {bodies[reference][:300]!r}, the cached lookup {bodies['lookup_cached'][:300]!r}"
            )


def cached_answer(stack: Stack, key: str) -> bytes:
    """The cached lookup's answer as Apiary sends it, for the Redis reference to store."""
    import httpx

    row = next(row for row in ROWS if row.id == "lookup_cached")
    answer = httpx.get(stack.url("apiary", row.path), headers={"X-API-Key": key}, timeout=60)
    if answer.status_code != 200:
        raise RuntimeError(f"lookup_cached: HTTP {answer.status_code} {answer.text[:500]}")
    return answer.content


# --- the run -------------------------------------------------------------------------------------------------------


def measure_once(stack: Stack, target: Target, clients: int, args: argparse.Namespace) -> dict:
    """One hey run's figures, with the CPU each process of the stack and hey itself spent per request during it
    (`cpu_us_per_request`, bench/cpu.py): on two shared cores, what a call costs the machine."""
    before = {**stack.cpu_seconds(), LOAD_TOOL: waited_children_cpu_seconds()}
    figures = run_hey(target, clients, args.seconds, args.max_requests)
    after = {**stack.cpu_seconds(), LOAD_TOOL: waited_children_cpu_seconds()}
    return {**figures.as_dict(), "cpu_us_per_request": per_request(before, after, figures.requests)}


def measure(stack: Stack, targets: dict[str, Target], args: argparse.Namespace) -> dict[str, dict]:
    """`--rounds` rounds of the whole table; in each, every call at 16 then 1 client, a short unrecorded warm-up at
    16 clients before a call's first round (models loaded in every process). The speed of a shared 2-core VM drifts
    by a third within minutes, so each row's ratios are taken within each round, against references measured minutes
    apart at most, and the median round is reported (bench/report.py: combine_rounds, add_ratios)."""
    rounds: list[dict[str, dict]] = []
    for number in range(args.rounds):
        print(f" round {number + 1} of {args.rounds}", flush=True)
        one: dict[str, dict] = {}
        for row in ROWS:
            if row.id not in targets:
                continue
            target = targets[row.id]
            if number == 0 and args.warmup > 0:
                run_hey(target, max(CLIENT_LEVELS), args.warmup, args.max_requests)
            one[row.id] = {}
            for clients in CLIENT_LEVELS:
                stack.check_alive()
                one[row.id][f"c{clients}"] = measured = measure_once(stack, target, clients, args)
                figures = Figures(**{k: v for k, v in measured.items() if k != "cpu_us_per_request"})
                print(
                    f"  {row.label:<50} {clients:>2} clients: {figures.requests_per_s:>8,.1f} req/s  "
                    f"p50 {ms_text(figures.p50_ms):>6} ms  p99 {ms_text(figures.p99_ms):>6} ms"
                    + (f"  {figures.errors} errors ({figures.first_error})" if figures.errors else ""),
                    flush=True,
                )
        rounds.append(one)
    return combine_rounds(rounds)


def _hey_version() -> str:
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "hey"], capture_output=True, text=True, timeout=10, check=False
        )
        return f"hey {done.stdout.strip()}" if done.returncode == 0 and done.stdout.strip() else "hey"
    except OSError:
        return "hey"


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="time budget of each measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the whole table (default 3; medians reported)")
    parser.add_argument("--warmup", type=float, default=2, help="unrecorded warm-up per call, seconds (default 2)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request cap of each measurement")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the generated table (default 100,000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temp dir (logs, databases)")
    parser.add_argument(
        "--only", default="", help=f"measure only these calls, comma-separated, of: {', '.join(r.id for r in ROWS)}"
    )
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name} or {row.id for row in ROWS}
    if only - {row.id for row in ROWS}:
        parser.error(f"--only: unknown {sorted(only - {row.id for row in ROWS})}")
    if args.rows < 1000:
        parser.error("--rows: at least 1000 (the model trains on them)")
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 600:
        parser.error("--seconds: more than 0 and at most 600; --warmup: 0 to 600")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds: 1 to 20")
    if args.max_requests < max(CLIENT_LEVELS):
        parser.error(f"--max-requests: at least {max(CLIENT_LEVELS)}")

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    load_before = os.getloadavg()
    stack = Stack(args.keep)
    try:
        print(f"starting a private stack in {stack.tmp}", flush=True)
        stack.start_apiary()
        setup = set_up_service(stack.url("apiary", ""), args.rows)
        stack.serve("hello", "bench.hello_app:create_app()")
        stack.serve(
            "sklearn",
            "bench.sklearn_app:create_app()",
            {"BENCH_MODEL_ARTIFACT": model_artifact(stack, setup["model_id"])},
        )
        stack.start_celery_reference()
        stack.start_redis_reference({ANSWER_KEY.format(LOOKUP_ID): cached_answer(stack, setup["key"])})
        stack.wait_until("hello", "/hello")
        stack.wait_until("redis_ref", f"/lookup?id={LOOKUP_ID}")
        stack.start_script_reference(cached_answer(stack, setup["key"]), setup["key"])
        stack.wait_until("script_ref", f"/api/service/{SERVICE_KEY}/customer?id={LOOKUP_ID}", statuses=(401,))
        stack.wait_until("sklearn", "/predict", timeout=120, statuses=(405,))  # POST only: any answer means booted
        stack.wait_until("celery", "/ready", timeout=120)  # its web process and its worker are up
        targets = {row.id: target_for(stack, row, setup["key"]) for row in ROWS if row.id in only}
        check_answers(targets)
        print(
            f"measuring {len(targets)} calls x {len(CLIENT_LEVELS)} client counts x {args.rounds} rounds, "
            f"{args.seconds:g} s each",
            flush=True,
        )
        results = measure(stack, targets, args)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    add_ratios(results)
    targets_checked = issue_targets(results)
    labels = {row.id: row.label for row in ROWS}
    table = format_table(labels, results)
    workers = (*procfile_workers(), CELERY_REFERENCE_WORKER)
    cpu_table = format_cpu_table(labels, {row.id: row.server for row in ROWS}, workers, results)
    report = {
        "what": "issue 15 serving benchmark: Apiary's keyed calls beside a bare Flask hello, a plain scikit-learn "
        "route and a plain Flask route waiting for a Celery task, same gunicorn settings, one run",
        "command": " ".join(["python", *sys.argv]) if sys.argv[0].endswith(".py") else " ".join(sys.argv),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "load_tool": _hey_version(),
            "clients": list(CLIENT_LEVELS),
            "seconds_per_measurement": args.seconds,
            "rounds": args.rounds,
            "warmup_seconds": args.warmup,
            "max_requests_per_measurement": args.max_requests,
            "gunicorn": " ".join(["gunicorn", *gunicorn_command(0, "<app>")[1:]]).replace(":0 ", ":<port> "),
            "gunicorn_settings": list(GUNICORN_SETTINGS),
            "workers": {name: " ".join(["celery", *argv[1:]]) for name, argv in procfile_workers().items()},
            "celery_reference_worker": " ".join(["celery", *celery_reference_worker_command()[1:]]),
            "redis_reference": "bench/redis_app.py on its own database of the stack's Redis",
            "script_reference": "bench/script_app.py on its own database of the stack's Redis",
            "databases": "SQLite metadata and warehouse (make run's defaults), private Redis",
            "table_rows": setup["row_count"],
            "upload_seconds": setup["upload_s"],
            "model": {
                "algorithm": "random_forest",
                "hyperparams": MODEL_HYPERPARAMS,
                "features": FEATURES,
                "train_seconds": setup["train_s"],
            },
        },
        "calls": {
            row.id: {"label": row.label, "server": row.server, "method": row.method, "path": row.path, "body": row.body}
            for row in ROWS
        },
        "results": results,
        "issue_15_targets": targets_checked,
        "table": table.splitlines(),
        "cpu_table": cpu_table.splitlines(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table)
    print()
    print(cpu_table)
    print()
    print("issue 15 targets:")
    print(format_targets(targets_checked))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted: every process the benchmark started is stopped", file=sys.stderr)
        sys.exit(130)
