"""Model endpoint extras: the cost per row of enrichment and of exact Shapley explanations next to plain scoring.

Starts the same private stack as bench/predict.py (Redis, Celery worker, gunicorn; its `Stack` and training are
reused), trains its logistic regression (4 features), adds a `marts.customers` table keyed by `customer_key`, and
publishes a service with a plain endpoint and an endpoint that looks all four features up. Then, sequentially
(concurrency 1), it sends batches of `--rows` rows:

- plain: the features in each row;
- enriched: only `customer_id` in each row (one `IN` query for the batch through the governed query engine);
- explained: the features plus `"explanations": {"method": "shapley", "top_n": 3}` (a second worker task).

The cost per row is (mean latency - plain mean latency) / rows. Single-row latencies are measured too.

    .venv/bin/python bench/model_endpoints.py [--rows 100] [--requests 30]

Figures go to bench/results/explanations.json.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from predict import FEATURES, Stack, _ok, set_up_model  # noqa: E402 - bench/predict.py, beside this file

RESULTS = ROOT / "bench" / "results" / "explanations.json"
N_CUSTOMERS = 5000


def put_customers(project_id: int) -> None:
    import sqlalchemy as sa

    from app import create_app
    from app.db import Dataset
    from app.extensions import db, warehouse
    from app.warehouse.engine import ensure_schema, sa_type_for

    types = {"customer_key": "integer", "tenure": "integer", "monthly": "float", "plan": "text", "region": "text"}
    rng = random.Random(2)
    rows = [
        {
            "customer_key": i,
            "tenure": rng.randint(1, 60),
            "monthly": round(rng.uniform(10, 90), 2),
            "plan": rng.choice(["basic", "premium"]),
            "region": rng.choice(["EU", "US", "APAC"]),
        }
        for i in range(1, N_CUSTOMERS + 1)
    ]
    app = create_app()
    with app.app_context():
        engine = warehouse.get()
        ensure_schema(engine, "marts")
        table = sa.Table(
            f"p{project_id}__customers",
            sa.MetaData(),
            *[sa.Column(c, sa_type_for(t)) for c, t in types.items()],
            schema="marts",
        )
        table.create(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
            sa.Index("ix_bench_customers", table.c.customer_key).create(conn)
        db.session.add(
            Dataset(
                project_id=project_id,
                name="marts.customers",
                schema_name="marts",
                table_name=table.name,
                source="upload",
                row_count=len(rows),
                masking={},
                columns=[{"name": c, "type": t} for c, t in types.items()],
            )
        )
        db.session.commit()
        engine.dispose()


def publish_extras(stack: Stack, model_id: int) -> str:
    token = _ok(
        stack.request("POST", "/api/auth/login", {"username": "bench", "password": "benchmark password 123"}), "login"
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    projects = _ok(stack.request("GET", "/api/projects", None, auth), "projects")
    project_id = (projects["items"] if isinstance(projects, dict) else projects)[0]["project_id"]
    put_customers(project_id)
    enrich = {
        "dataset": "marts.customers",
        "on": [{"feature": "customer_id", "column": "customer_key"}],
        "columns": {f: f for f in FEATURES},
    }
    endpoints = [
        {"id": "plain", "kind": "model", "model_id": model_id},
        {"id": "enriched", "kind": "model", "model_id": model_id, "enrichments": [enrich]},
    ]
    scoped = {**auth, "X-Project-Id": str(project_id)}
    asset = _ok(
        stack.request(
            "POST",
            "/api/publish/assets",
            {"asset_type": "api_service", "asset_key": "extras", "title": "Extras", "config": {"endpoints": endpoints}},
            scoped,
        ),
        "service",
        201,
    )
    _ok(stack.request("POST", f"/api/publish/assets/{asset['id']}/publish", None, auth), "publish")
    return _ok(
        stack.request(
            "POST", f"/api/publish/assets/{asset['id']}/api-keys", {"name": "extras", "rate_limit": 1_000_000}, auth
        ),
        "key",
        201,
    )["key"]


def timed(port: int, path: str, key: str, bodies: list[dict]) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies = []
    for body in bodies:
        data = json.dumps(body)
        started = time.perf_counter()
        conn.request("POST", path, data, {"Content-Type": "application/json", "X-API-Key": key})
        resp = conn.getresponse()
        payload = resp.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status} {payload[:300]!r}")
    conn.close()
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100, help="rows per batch request (at most EXPLAIN_MAX_ROWS)")
    parser.add_argument("--requests", type=int, default=30, help="requests per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = parser.parse_args()
    rng = random.Random(3)

    def batch(kind: str, n: int) -> dict:
        rows = []
        for _ in range(n):
            if kind == "enriched":
                rows.append({"customer_id": rng.randint(1, N_CUSTOMERS)})
            else:
                rows.append(
                    {
                        "tenure": rng.randint(1, 60),
                        "monthly": round(rng.uniform(10, 90), 2),
                        "plan": rng.choice(["basic", "premium"]),
                        "region": rng.choice(["EU", "US", "APAC"]),
                    }
                )
        body = {"rows": rows}
        if kind == "explained":
            body["explanations"] = {"method": "shapley", "top_n": 3}
        return body

    stack = Stack(args.keep)
    try:
        stack.start()
        model_id, _key = set_up_model(stack)
        key = publish_extras(stack, model_id)
        paths = {
            "plain": "/api/service/extras/plain",
            "enriched": "/api/service/extras/enriched",
            "explained": "/api/service/extras/plain",
        }
        for kind, path in paths.items():  # warm: models loaded in every worker process, explanations compiled
            timed(stack.port, path, key, [batch(kind, args.rows) for _ in range(6)])
        results = {}
        for size in (1, args.rows):
            results[f"rows_{size}"] = {
                kind: timed(stack.port, path, key, [batch(kind, size) for _ in range(args.requests)])
                for kind, path in paths.items()
            }
    finally:
        stack.stop()

    big = results[f"rows_{args.rows}"]
    per_row = {
        kind: round((big[kind]["mean_ms"] - big["plain"]["mean_ms"]) / args.rows, 3)
        for kind in ("enriched", "explained")
    }
    report = {
        "what": "logistic regression, 4 features; enrichment looks all 4 up from a 5,000-row indexed table; "
        "explanations are exact Shapley values (2^4 = 16 coalitions per row) on a worker",
        "command": "python bench/model_endpoints.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "batch_rows": args.rows,
        "latency": results,
        "added_ms_per_row_vs_plain": per_row,
        "plain_ms_per_row": round(big["plain"]["mean_ms"] / args.rows, 3),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for size, figures in results.items():
        for kind, f in figures.items():
            print(f"{size:<9} {kind:<10} mean {f['mean_ms']:>8} ms  p50 {f['p50_ms']:>8}  p99 {f['p99_ms']:>8}")
    print(f"added per row vs plain: {per_row} (plain {report['plain_ms_per_row']} ms/row)")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
