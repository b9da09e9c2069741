"""Warm switches: the latency of the first calls after routing traffic to a version whose model no predict process
has loaded yet, with the preload broadcast (PREDICT_WARM_COPIES=4, the default) and without it (0).

For each setting it starts the private stack of bench/predict.py (Redis, a Celery worker with two predict processes,
gunicorn), trains the logistic regression behind version 1, measures the steady state (p50 of sequential calls),
trains a random forest, publishes it as version 2 *without traffic*, waits `--settle` seconds, switches all traffic
to version 2 (PUT .../routing) and times the next `--first` calls one after the other (the first ones land on
processes that must load the model unless it was preloaded).

    .venv/bin/python bench/warm_switch.py [--steady 40] [--first 4] [--settle 3]

Figures go to bench/results/warm_switch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from predict import FEATURES, Stack, _ok, set_up_model  # noqa: E402 - bench/predict.py, beside this file

RESULTS = ROOT / "bench" / "results" / "warm_switch.json"


def _login(stack: Stack) -> dict:
    token = _ok(
        stack.request("POST", "/api/auth/login", {"username": "bench", "password": "benchmark password 123"}), "login"
    )["access_token"]
    return {"Authorization": f"Bearer {token}"}


def _timed_call(stack: Stack, key: str) -> tuple[float, int]:
    started = time.perf_counter()
    status, _body = stack.request("POST", "/api/service/bench/churn", {"features": FEATURES}, {"X-API-Key": key})
    if status != 200:
        raise RuntimeError(f"call answered {status}")
    return (time.perf_counter() - started) * 1000, status


def run_setting(copies: int, steady_n: int, first_n: int, settle_s: float) -> dict:
    os.environ["PREDICT_WARM_COPIES"] = str(copies)
    stack = Stack(keep=False)
    try:
        stack.start()
        model_a, key = set_up_model(stack)
        auth = _login(stack)
        assets = _ok(stack.request("GET", "/api/publish/assets", None, auth), "assets")["items"]
        asset = next(a for a in assets if a["asset_key"] == "bench")
        for _ in range(5):
            _timed_call(stack, key)  # every process has version 1's model
        steady = sorted(_timed_call(stack, key)[0] for _ in range(steady_n))
        scoped = {**auth, "X-Project-Id": str(asset["project_id"])}
        config = {
            "input_table": "marts.churn",
            "target_column": "churned",
            "task_type": "classification",
            "algorithm": "random_forest",
            "feature_columns": list(FEATURES),
        }
        recipe = _ok(
            stack.request(
                "POST",
                "/api/flow/ai-recipes",
                {"recipe_type": "train_model", "name": "churn_rf", "inputs": ["marts.churn"], "config": config},
                scoped,
            ),
            "recipe",
            201,
        )
        run = _ok(stack.request("POST", f"/api/flow/ai-recipes/{recipe['recipe_id']}/run", None, scoped), "train")
        endpoints = [{"id": "churn", "kind": "model", "model_id": run["model_id"]}]
        path = f"/api/publish/assets/{asset['id']}"
        _ok(stack.request("PUT", path, {"config": {"endpoints": endpoints}}, auth), "draft")
        _ok(stack.request("POST", f"{path}/publish", {"activate": False}, auth), "publish inactive")
        time.sleep(settle_s)
        routing = {"strategy": "single", "entries": [{"version": 2, "weight": 100}]}
        _ok(stack.request("PUT", f"{path}/routing", routing, auth), "routing")
        first = [_timed_call(stack, key)[0] for _ in range(first_n)]
        return {
            "copies": copies,
            "steady_p50_ms": round(statistics.median(steady), 2),
            "steady_max_ms": round(steady[-1], 2),
            "first_calls_ms": [round(x, 2) for x in first],
            "first_call_max_ms": round(max(first), 2),
            "models": [model_a, run["model_id"]],
        }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steady", type=int, default=40)
    parser.add_argument("--first", type=int, default=4)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    results = {
        "warm": run_setting(4, args.steady, args.first, args.settle),
        "cold": run_setting(0, args.steady, args.first, args.settle),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "command": "bench/warm_switch.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for name in ("warm", "cold"):
        r = results[name]
        print(f"{name:5} steady p50 {r['steady_p50_ms']} ms; first calls after the switch {r['first_calls_ms']} ms")


if __name__ == "__main__":
    main()
