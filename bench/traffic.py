"""Traffic charts benchmark: how long the per-endpoint stats (`GET /api/api-services/{id}/stats`) and the log's
latency histogram take on a service with many audit records, and the Python memory they use meanwhile.

A fresh SQLite metadata database (or `--database-url`) in a temp folder, migrated; N audit records of one service
spread over the last 6 days (inside the week window) across 5 endpoints (plus N/10 of another service, which must not count); then each window
timed (best of `--repeat`), with tracemalloc's peak for one call.

    .venv/bin/python bench/traffic.py [--records 200000] [--repeat 3] [--database-url URL]

Figures go to bench/results/traffic.json, one entry per database (sqlite, postgresql).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "traffic.json"
ENDPOINTS = ("customer", "top", "risk", "score", "by_region")


def _fill(asset_id: int, count: int, now: datetime, seed: int) -> None:
    from app.db import AuditLog
    from app.extensions import db

    rng = random.Random(seed)
    batch = []
    for _ in range(count):
        batch.append(
            {
                "created_at": (now - timedelta(seconds=rng.uniform(0, 6 * 86400))).replace(tzinfo=None),
                "asset_id": asset_id,
                "endpoint_id": rng.choice(ENDPOINTS),
                "method": "GET",
                "status": 500 if rng.random() < 0.02 else 200,
                "latency_ms": rng.lognormvariate(2.5, 0.8),
            }
        )
        if len(batch) == 10_000:
            db.session.execute(AuditLog.__table__.insert(), batch)
            batch = []
    if batch:
        db.session.execute(AuditLog.__table__.insert(), batch)
    db.session.commit()


def _timed(fn, repeat: int) -> dict:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    fn()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"best_ms": round(best * 1000, 1), "python_peak_kb": round(peak / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="apiary-bench-traffic-")
    os.environ.update(
        {
            "APP_CONFIG": "testing",
            "APIARY_VAR_DIR": tmp,
            "APIARY_USE_RUN_FILE": "false",
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/apiary.db",
            "WAREHOUSE_URL": f"sqlite:///{tmp}/warehouse.db",
        }
    )
    from flask_migrate import upgrade

    from app import create_app
    from app.db import DeletedAsset
    from app.extensions import db
    from app.serving.traffic import latency_histogram, service_stats

    app = create_app("testing")
    with app.app_context():
        upgrade()
        now = datetime.now(UTC)
        started = time.perf_counter()
        _fill(1, args.records, now, 1)
        _fill(2, args.records // 10, now, 2)
        fill_s = time.perf_counter() - started
        # The stats read an asset's id and config only: a deleted asset's remains stand in for the service.
        asset = DeletedAsset(id=1, org_id=1, asset_type="api_service", asset_key="bench", title="bench", deleted_by="-")
        figures = {}
        for window in ("hour", "day", "week"):
            figures[f"stats_{window}"] = _timed(lambda w=window: service_stats(asset, w), args.repeat)
        week = service_stats(asset, "week")
        assert sum(e["calls"] for e in week["endpoints"]) == args.records, "the other service leaked in"
        filters = {"limit": 50, "offset": 0}
        figures["histogram_all"] = _timed(lambda: latency_histogram(asset, filters), args.repeat)
        figures["histogram_errors_only"] = _timed(
            lambda: latency_histogram(asset, {**filters, "errors_only": True}), args.repeat
        )
        db.session.remove()
    result = {
        "records": args.records,
        "other_service_records": args.records // 10,
        "database": "postgresql" if args.database_url else "sqlite",
        "fill_seconds": round(fill_s, 1),
        "figures": figures,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept[result["database"]] = result  # one entry per database: run it once on each
    RESULTS.write_text(json.dumps(kept, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
