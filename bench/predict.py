"""Predict benchmark: single-row latency and throughput of a model endpoint against the in-process ceiling.

Starts its own stack (a private Redis, a temp var dir, `flask db upgrade`, a Celery worker for the predict and
train queues, gunicorn with the production shape of `make run`), trains a small classifier through the API,
publishes it behind an API service with a minted key, then measures `POST /api/service/<key>/<endpoint>` at
concurrency 1 and 16 beside the same model scored in-process by routes that only this benchmark registers:

- the ceiling (the issue's target): the web process scores with the same compiled scorer the workers use, with no
  key check, rate limit or audit;
- a reference: the web process calls the artifact's own scikit-learn `predict`/`predict_proba`, which is what a
  web process that loaded the model itself would do.

    .venv/bin/python bench/predict.py [--requests 400] [--seconds 10] [--keep]

Figures go to bench/results/predict.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "predict.json"
TARGET_P50_MS = 15.0
FEATURES = {"tenure": 7, "monthly": 42.5, "plan": "basic", "region": "EU"}


def bench_app():
    """The app plus two routes that score in the web process: the ceiling (compiled scorer) and scikit-learn."""
    from flask import request

    from app import create_app
    from app.db import MLModel
    from app.extensions import db
    from app.ml.input_schema import parse_predict_body, validate_rows
    from app.ml.scoring import ModelCache, load_scorer, score_rows

    app = create_app()
    cache = ModelCache(maxsize=4, loader=load_scorer)  # thread-safe: gunicorn's threads share it
    pipelines = ModelCache(maxsize=4)  # the artifacts as loaded, scored by scikit-learn

    @app.post("/bench/ceiling/<int:model_id>")
    def ceiling(model_id: int):
        model = db.session.get(MLModel, model_id)
        rows, _single = parse_predict_body(request.get_json())
        rows = validate_rows(model.input_schema, rows, app.config["PREDICT_MAX_ROWS"])
        scorer = cache.get(model.id, model.artifact_path, model.artifact_sha256, model.sklearn_version)
        scored = scorer.score(rows, model.input_schema)
        return {"predictions": scored["predictions"], "model_id": model.id, "count": len(scored["predictions"])}

    @app.post("/bench/sklearn/<int:model_id>")
    def sklearn_in_process(model_id: int):
        model = db.session.get(MLModel, model_id)
        rows, _single = parse_predict_body(request.get_json())
        rows = validate_rows(model.input_schema, rows, app.config["PREDICT_MAX_ROWS"])
        pipeline = pipelines.get(model.id, model.artifact_path, model.artifact_sha256, model.sklearn_version)
        scored = score_rows(pipeline, rows, model.input_schema)
        return {"predictions": scored["predictions"], "model_id": model.id, "count": len(scored["predictions"])}

    return app


# --- the stack -------------------------------------------------------------------------------------------------------


class Stack:
    def __init__(self, keep: bool):
        self.tmp = Path(tempfile.mkdtemp(prefix="apiary-bench-"))
        self.keep = keep
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.env: dict[str, str] = {}
        self.port = 0

    def start(self) -> None:
        from app.redis_server import free_port, start_private_redis

        redis_proc, redis_url = start_private_redis(str(self.tmp / "redis"))
        self.children.append(("redis", redis_proc))
        var = self.tmp / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WAREHOUSE_", "DATABASE_"))}
        env.update(
            {
                "APP_CONFIG": "development",
                "APIARY_VAR_DIR": str(var),
                "REDIS_URL": redis_url,
                "MODEL_STORE": str(var / "models"),
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
        bin_dir = Path(sys.executable).parent
        self.spawn(
            "worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "celery_worker",
                "worker",
                "-Q",
                "predict,train",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        self.port = free_port()
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
                "bench.predict:bench_app()",
            ],
        )
        self.wait_until(lambda: self.get("/healthz")[0] == 200, "web")
        self.wait_until(lambda: self.get("/readyz")[0] == 200, "worker")

    def spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "wb")  # the child owns it for its lifetime
        # Own process group: stop() signals the whole group, so no forked worker outlives the benchmark.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True)
        self.children.append((name, proc))

    def wait_until(self, ready, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.children:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.tmp / (name + '.log')}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{what} not ready within {timeout:g} s; logs in {self.tmp}")

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(method, path, payload, {"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else {}
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, dict]:
        return self.request("GET", path)

    def stop(self) -> None:
        for name, proc in reversed(self.children):
            self._signal(name, proc, signal.SIGTERM)
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._signal(name, proc, signal.SIGKILL)
                proc.wait(timeout=5)
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def _signal(name: str, proc: subprocess.Popen, sig: int) -> None:
        try:
            if name == "redis":
                proc.send_signal(sig)
            else:
                os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _ok(result: tuple[int, dict], what: str, status: int = 200) -> dict:
    if result[0] != status:
        raise RuntimeError(f"{what}: HTTP {result[0]} {result[1]}")
    return result[1]


def set_up_model(stack: Stack) -> tuple[int, str]:
    """Sign up, create a project and a churn table, train a logistic regression, publish it with a key."""
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
    put_churn_table(project_id)
    scoped = {**auth, "X-Project-Id": str(project_id)}
    config = {
        "input_table": "marts.churn",
        "target_column": "churned",
        "task_type": "classification",
        "algorithm": "logistic_regression",
        "feature_columns": list(FEATURES),
    }
    recipe = _ok(
        stack.request(
            "POST",
            "/api/flow/ai-recipes",
            {"recipe_type": "train_model", "name": "churn", "inputs": ["marts.churn"], "config": config},
            scoped,
        ),
        "recipe",
        201,
    )
    run = _ok(stack.request("POST", f"/api/flow/ai-recipes/{recipe['recipe_id']}/run", None, scoped), "train")
    if run["status"] != "success":
        raise RuntimeError(f"training failed: {run}")
    endpoints = [{"id": "churn", "kind": "model", "model_id": run["model_id"]}]
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
    key = _ok(
        stack.request(
            "POST", f"/api/publish/assets/{asset['id']}/api-keys", {"name": "bench", "rate_limit": 1_000_000}, auth
        ),
        "key",
        201,
    )["key"]
    return run["model_id"], key


def put_churn_table(project_id: int, n: int = 2000) -> None:
    import sqlalchemy as sa

    from app import create_app
    from app.db import Dataset
    from app.extensions import db, warehouse
    from app.warehouse.engine import ensure_schema, sa_type_for

    types = {"tenure": "integer", "monthly": "float", "plan": "text", "region": "text", "churned": "integer"}
    rng = random.Random(1)
    rows = []
    for _ in range(n):
        tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
        rows.append(
            {
                "tenure": tenure,
                "monthly": round(rng.uniform(10, 90), 2),
                "plan": plan,
                "region": rng.choice(["EU", "US", "APAC"]),
                "churned": int(tenure < 20 and plan == "basic"),
            }
        )
    app = create_app()
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, "marts")
        table = sa.Table(
            f"p{project_id}__churn",
            sa.MetaData(),
            *[sa.Column(c, sa_type_for(t)) for c, t in types.items()],
            schema="marts",
        )
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        db.session.add(
            Dataset(
                project_id=project_id,
                name="marts.churn",
                schema_name="marts",
                table_name=table.name,
                source="upload",
                row_count=n,
                masking={},
                columns=[{"name": c, "type": t} for c, t in types.items()],
            )
        )
        db.session.commit()
        engine.dispose()


# --- the load --------------------------------------------------------------------------------------------------------


def measure(port: int, path: str, headers: dict, concurrency: int, total: int) -> dict:
    """`total` single-row predictions spread over `concurrency` keep-alive connections; latency per request."""
    body = json.dumps({"features": FEATURES})
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = total // concurrency
    start_gate = threading.Barrier(concurrency + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        start_gate.wait()
        for _ in range(per_thread):
            started = time.perf_counter()
            conn.request("POST", path, body, {"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            data = resp.read()
            mine.append((time.perf_counter() - started) * 1000)
            if resp.status != 200:
                with lock:
                    errors.append(f"{resp.status} {data[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start_gate.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests on {path}, first: {errors[0]}")
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement at concurrency 1")
    parser.add_argument("--requests-16", type=int, default=1600, help="requests per measurement at concurrency 16")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()

    stack = Stack(args.keep)
    try:
        stack.start()
        model_id, key = set_up_model(stack)
        paths = {
            "worker": ("/api/service/bench/churn", {"X-API-Key": key}),
            "in_process": (f"/bench/ceiling/{model_id}", {}),
            "sklearn_in_process": (f"/bench/sklearn/{model_id}", {}),
        }
        for path, headers in paths.values():  # warm every web thread and worker process (model loaded once each)
            measure(stack.port, path, headers, 16, 160)
        results: dict[str, dict] = {name: {} for name in paths}
        for concurrency, total in ((1, args.requests), (16, args.requests_16)):
            for name, (path, headers) in paths.items():
                results[name][f"c{concurrency}"] = measure(stack.port, path, headers, concurrency, total)
    finally:
        stack.stop()

    worker, ceiling, sklearn = results["worker"], results["in_process"], results["sklearn_in_process"]
    report = {
        "what": "single-row predictions of a logistic regression (4 features, one-hot plan/region)",
        "command": "python bench/predict.py",
        "stack": "gunicorn 2 workers x 8 threads; Celery prefork worker, concurrency 2, predict+train queues; "
        "private Redis; SQLite metadata and warehouse",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "worker_path": worker,
        "in_process_ceiling": ceiling,
        "in_process_sklearn_reference": sklearn,
        "targets": {
            "p50_c1_under_ms": TARGET_P50_MS,
            "p50_c1_met": worker["c1"]["p50_ms"] < TARGET_P50_MS,
            "throughput_c16_vs_ceiling": round(worker["c16"]["requests_per_s"] / ceiling["c16"]["requests_per_s"], 2),
            "throughput_c16_met": worker["c16"]["requests_per_s"] >= ceiling["c16"]["requests_per_s"],
        },
        "reference": {
            "throughput_c16_vs_sklearn_in_process": round(
                worker["c16"]["requests_per_s"] / sklearn["c16"]["requests_per_s"], 2
            ),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'path':<12} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, figures in (("worker", worker), ("in-process", ceiling), ("sklearn", sklearn)):
        for level in ("c1", "c16"):
            f = figures[level]
            print(f"{name:<12} {f['concurrency']:>4} {f['requests_per_s']:>8} {f['p50_ms']:>8} {f['p99_ms']:>8}")
    targets = report["targets"]
    print(
        f"target p50 at c1 < {TARGET_P50_MS:g} ms: {'met' if targets['p50_c1_met'] else 'missed'}; "
        f"throughput at c16 vs ceiling: x{targets['throughput_c16_vs_ceiling']} "
        f"({'met' if targets['throughput_c16_met'] else 'missed'}); "
        f"vs scikit-learn in process: x{report['reference']['throughput_c16_vs_sklearn_in_process']}"
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
