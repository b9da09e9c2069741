"""Where the time of a one-row model call (and a function call) goes on its Celery round trip (issue 15).

A private Redis, no web server: this process is the web side. For each worker shape (pool type, concurrency,
prefetch) a Celery worker consuming the predict and functions queues is started, and then, one call at a time:

- `score_in_process`: the same random forest scored in this process (the worker's compute floor);
- `backend`: the path call_worker took before: apply_async (publish + SUBSCRIBE to the result channel), result.get
  (wait for the PUBLISH), forget (UNSUBSCRIBE + DEL), each phase timed;
- `reply`: call_worker now: apply_async with ignore_result, one BLPOP on the per-call reply list;
- `function_reply`: a function endpoint's call (warm jail) through call_worker;

and the throughput of each path from 16 threads. Writes bench/results/predict_roundtrip.json.

    .venv/bin/python bench/predict_roundtrip.py [--calls 300] [--seconds 4] [--shapes prefork2,threads4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stack import Stack, _wait  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "predict_roundtrip.json"
CLIENTS = 16
# Worker shapes: celery worker options beside `-Q predict,functions`.
SHAPES = {
    "prefork2": ("--pool", "prefork", "--concurrency", "2"),
    "prefork2_prefetch4": ("--pool", "prefork", "--concurrency", "2", "--prefetch-multiplier", "4"),
    "threads4": ("--pool", "threads", "--concurrency", "4"),
    "solo": ("--pool", "solo"),
}
ROW = {"f0": 0.3, "f1": 12.0, "f2": 55.5, "f3": 1.0}
HANDLER = "def handler(payload):\n    return {'segment': 'new' if payload.get('tenure', 0) < 12 else 'loyal'}\n"


def fit_model(store_dir: str) -> dict:
    """A random forest like bench/serving.py's (100 trees, depth 12) on four float features, stored as training
    stores one; returns the model dict a score task gets."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from app.ml.store import save_artifact

    rng = np.random.default_rng(15)
    x = rng.normal(size=(5000, 4)) * [1, 20, 30, 1] + [0, 30, 50, 0]
    y = ((x[:, 1] < 18) ^ (rng.random(5000) < 0.07)).astype(int)
    frame = pd.DataFrame(x, columns=list(ROW))
    # The shape training gives a model (app/ml/training.py), so the worker scores it compiled as it would in serving.
    numeric = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True))])
    forest = Pipeline(
        [
            ("preprocess", ColumnTransformer([("numeric", numeric, list(ROW))], remainder="drop")),
            ("model", RandomForestClassifier(n_estimators=100, max_depth=12, random_state=15)),
        ]
    ).fit(frame, y)
    stored = save_artifact(store_dir, "roundtrip", forest)
    schema = [{"name": name, "type": "float", "categories": None, "nullable": False} for name in ROW]
    return {
        "id": 1,
        "artifact_path": stored.path,
        "artifact_sha256": stored.sha256,
        "sklearn_version": stored.sklearn_version,
        "input_schema": schema,
    }


def summary(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)], 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def phase_summaries(calls: list[dict]) -> dict:
    """Per phase (the gap between two perf_counter marks of a call) and in total, a latency summary."""
    phases: dict[str, list[float]] = {}
    for marks in calls:
        names = list(marks)
        for before, after in zip(names, names[1:], strict=False):
            phases.setdefault(after, []).append((marks[after] - marks[before]) * 1000)
        phases.setdefault("total", []).append((marks[names[-1]] - marks[names[0]]) * 1000)
    return {name: summary(samples) for name, samples in phases.items()}


def throughput(seconds: float, one_call) -> dict:
    """CLIENTS threads calling `one_call` back to back for `seconds`: calls/s and latency."""
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                one_call()
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                with lock:
                    errors.append(repr(exc)[:200])
                continue
            with lock:
                samples.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": CLIENTS,
        "calls_per_s": round(len(samples) / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        **(summary(samples) if samples else {}),
    }


def measure_shape(app, model: dict, args) -> dict:
    from tasks.calls import call_worker
    from tasks.functions import run_function
    from tasks.predict import score

    rows = [ROW]
    endpoint = {"org_id": 1, "asset_id": 1, "version": 1, "endpoint_id": "segment"}

    def backend_call() -> dict:
        marks = {"start": time.perf_counter()}
        result = score.apply_async(
            args=[model, rows], queue="predict", expires=10, argsrepr="(model 1, 1 rows)", kwargsrepr="{}"
        )
        marks["apply_async"] = time.perf_counter()
        result.get(timeout=10, disable_sync_subtasks=False)
        marks["result_get"] = time.perf_counter()
        result.forget()
        marks["forget"] = time.perf_counter()
        return marks

    def reply_call() -> dict:
        from tasks.calls import _replies, _Sent
        from tasks.replies import REPLY_HEADER, wait_reply

        marks = {"start": time.perf_counter()}
        task_id = os.urandom(16).hex()
        score.app.send_task(
            score.name,
            args=[model, rows],
            queue="predict",
            expires=10,
            argsrepr="(model 1, 1 rows)",
            kwargsrepr="{}",
            task_id=task_id,
            ignore_result=True,
            headers={REPLY_HEADER: 1},
            result_cls=_Sent,
            add_to_parent=False,
        )
        marks["send_task"] = time.perf_counter()
        if wait_reply(_replies(), task_id, 10) is None:
            raise RuntimeError("no reply within 10 s")
        marks["blpop"] = time.perf_counter()
        return marks

    def call_worker_score() -> dict:
        marks = {"start": time.perf_counter()}
        call_worker(score, [model, rows], "predict", 10, "(model 1, 1 rows)")
        marks["call_worker"] = time.perf_counter()
        return marks

    def call_worker_function() -> dict:
        marks = {"start": time.perf_counter()}
        answer = call_worker(run_function, [HANDLER, {"tenure": 5}, endpoint], "functions", 10, "(endpoint segment)")
        if answer != {"result": {"segment": "new"}}:
            raise RuntimeError(f"function answered {answer}")
        marks["call_worker"] = time.perf_counter()
        return marks

    paths = {
        "backend": backend_call,
        "reply": reply_call,
        "call_worker_score": call_worker_score,
        "call_worker_function": call_worker_function,
    }
    marks: dict[str, list[dict]] = {name: [] for name in paths}
    with app.app_context():
        for one in paths.values():
            for _ in range(20):  # warm-up: models loaded and jails started in every pool process / thread
                one()
        for _ in range(args.calls):  # interleaved, so a change of the machine's load hits every path alike
            for name, one in paths.items():
                marks[name].append(one())
    out: dict = {name: {"c1": phase_summaries(marks[name])} for name in paths}

    def in_context(one):
        def run():
            with app.app_context():
                return one()

        return run

    for name, one in (
        ("backend", backend_call),
        ("call_worker_score", call_worker_score),
        ("call_worker_function", call_worker_function),
    ):
        out[name][f"c{CLIENTS}"] = throughput(args.seconds, in_context(one))
    return out


def score_in_process(model: dict, calls: int) -> dict:
    from app.ml.scoring import load_scorer

    scorer = load_scorer(model["artifact_path"], model["artifact_sha256"], model["sklearn_version"])
    samples = []
    for i in range(calls + 20):
        started = time.perf_counter()
        scorer.score([ROW], model["input_schema"])
        if i >= 20:
            samples.append((time.perf_counter() - started) * 1000)
    return {"compiled": scorer.compiled, **summary(samples)}


def start_worker(stack: Stack, app, shape: str):
    from tasks.calls import queue_has_worker

    cmd = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "celery_worker",
        "worker",
        "-Q",
        "predict,functions",
        "-n",
        f"{shape}@%h",
        "--loglevel",
        "WARNING",
        *SHAPES[shape],
    ]
    stack.spawn(f"worker-{shape}", cmd)
    deadline = time.monotonic() + 90
    with app.app_context():
        while not (queue_has_worker("predict") and queue_has_worker("functions")):
            stack.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {shape} did not beat within 90 s; logs in {stack.tmp}")
            time.sleep(0.2)
    return stack.children[-1][1]


def stop_worker(stack: Stack, app, proc) -> None:
    from app.extensions import redis_store
    from tasks import calls
    from tasks.heartbeat import HEARTBEAT_KEY

    os.killpg(proc.pid, signal.SIGTERM)
    if not _wait(proc, 20):
        os.killpg(proc.pid, signal.SIGKILL)
        _wait(proc, 5)
    stack.children = [(name, child) for name, child in stack.children if child is not proc]
    with app.app_context():  # the next shape must not be taken for alive on this one's heartbeat
        redis_store.get().delete(*(HEARTBEAT_KEY.format(queue=q) for q in ("predict", "functions")))
    calls._alive_seen.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="sequential calls per path (default 300)")
    parser.add_argument("--seconds", type=float, default=4, help="time of each 16-thread measurement (default 4)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"worker shapes, of {', '.join(SHAPES)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker logs)")
    args = parser.parse_args()
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        parser.error(f"--shapes: unknown {unknown}; choose from {', '.join(SHAPES)}")
    if args.calls < 10 or not 0 < args.seconds <= 120:
        parser.error("--calls: at least 10; --seconds: more than 0, at most 120")

    from app.redis_server import start_private_redis

    load_before = os.getloadavg()
    stack = Stack(args.keep)
    try:
        redis_proc, redis_url = start_private_redis(str(stack.tmp / "redis"))
        stack.children.append(("redis", redis_proc))
        settings = {"APP_CONFIG": "development", "APIARY_VAR_DIR": str(stack.tmp / "var"), "REDIS_URL": redis_url}
        stack.env.update(settings)
        for name in list(os.environ):  # this process is the web side: same settings as the worker
            if name.startswith(("APIARY_", "CELERY_", "REDIS_URL", "APP_CONFIG", "DATABASE_URL", "WAREHOUSE_")):
                del os.environ[name]
        os.environ.update(settings)
        from app import create_app

        app = create_app()
        model = fit_model(app.config["MODEL_STORE"])
        results = {"score_in_process": score_in_process(model, args.calls), "shapes": {}}
        print(f"in-process scoring: {results['score_in_process']}", flush=True)
        for shape in shapes:
            proc = start_worker(stack, app, shape)
            try:
                results["shapes"][shape] = measure_shape(app, model, args)
            finally:
                stop_worker(stack, app, proc)
            for path, figures in results["shapes"][shape].items():
                c1 = figures["c1"]["total"]
                many = figures.get(f"c{CLIENTS}", {})
                print(
                    f"  {shape:<20} {path:<22} c1 p50 {c1['p50_ms']:7.2f} ms p99 {c1['p99_ms']:7.2f} ms"
                    + (f"   c{CLIENTS} {many.get('calls_per_s')} calls/s p99 {many.get('p99_ms')} ms" if many else ""),
                    flush=True,
                )
    except BaseException:
        stack.stop()
        raise
    report = {
        "what": "issue 15: the Celery round trip of a one-row model call and a function call, by phase and worker "
        "shape; `backend` is Celery's result backend (call_worker before), `reply` the per-call reply list (now)",
        "command": " ".join(["python", *sys.argv]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "worker_shapes": {name: " ".join(SHAPES[name]) for name in shapes},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    # Celery's result consumers (of the `backend` path) would spend 20 s reconnecting to the stopped Redis: gone first.
    logging.disable(logging.CRITICAL)
    stack.stop()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
