"""Audit log export benchmark: memory while streaming `GET /api/api-services/<id>/logs/export` for growing logs.

Its own app (a temp var dir, SQLite metadata database, a private Redis for sign-up throttling), one service whose
audit log is filled with N synthetic records (with timing and 1 KB payloads, like `log: "payload"` records), then the
export read through the Flask test client chunk by chunk (never joined), in JSON lines and CSV. Measured with
tracemalloc: the peak of Python allocations while the export streams, against the peak of loading the same rows at
once (what a non-streaming export would hold). Flat memory: the streaming peak does not grow with N.

    .venv/bin/python bench/export_memory.py [--records 10000 100000 1000000] [--keep]

Figures go to bench/results/export_memory.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "export_memory.json"
LOAD_ALL_UP_TO = 100_000
PAYLOAD = json.dumps({"rows": [{"customer_key": i, "name": "C*******", "email": "[BLOCKED]"} for i in range(20)]})


def _fill(app, asset_id: int, total: int) -> None:
    from app.db import AuditLog
    from app.db.columns import utcnow
    from app.extensions import db

    start = utcnow() - timedelta(days=1)
    with app.app_context():
        db.session.execute(AuditLog.__table__.delete())
        db.session.commit()
        for offset in range(0, total, 10_000):
            db.session.execute(
                AuditLog.__table__.insert(),
                [
                    {
                        "created_at": start + timedelta(milliseconds=i),
                        "asset_id": asset_id,
                        "endpoint_id": "top",
                        "method": "GET",
                        "status": 200,
                        "latency_ms": 3.5,
                        "version": 1,
                        "request_id": f"req-{i}",
                        "client_ip": "10.0.0.1",
                        "user_agent": "bench/1.0",
                        "timing": {"auth": 0.2, "ratelimit": 0.4, "query": 2.1, "total": 3.5},
                        "request_payload": '{"limit":"20"}',
                        "response_payload": PAYLOAD,
                    }
                    for i in range(offset, min(total, offset + 10_000))
                ],
            )
            db.session.commit()


def _stream_peak(client, headers: dict, url: str) -> dict:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    resp = client.get(url, headers=headers, buffered=False)
    assert resp.status_code == 200 and resp.is_streamed
    lines = size = chunks = 0
    for chunk in resp.response:
        chunks += 1
        size += len(chunk)
        lines += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
    resp.close()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"lines": lines, "chunks": chunks, "bytes": size, "seconds": round(elapsed, 2), "peak_mb": _mb(peak)}


def _load_all_peak(app, asset_id: int) -> float:
    """The peak of holding every row at once (a plain `.all()` of the same columns), for comparison."""
    from sqlalchemy import select

    from app.db import AuditLog
    from app.extensions import db

    with app.app_context():
        gc.collect()
        tracemalloc.start()
        rows = db.session.execute(select(AuditLog.__table__).where(AuditLog.asset_id == asset_id)).all()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del rows
    return _mb(peak)


def _mb(n: int) -> float:
    return round(n / 1024 / 1024, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()

    from app.redis_server import start_private_redis

    tmp = Path(tempfile.mkdtemp(prefix="apiary-export-bench-"))
    redis_proc, redis_url = start_private_redis(str(tmp / "redis"))
    os.environ.update(
        {
            "APP_CONFIG": "testing",
            "APIARY_VAR_DIR": str(tmp / "var"),
            "DATABASE_URL": f"sqlite:///{tmp / 'apiary.db'}",
            "WAREHOUSE_URL": f"sqlite:///{tmp / 'warehouse' / 'main.db'}",
            "REDIS_URL": redis_url,
            "APIARY_USE_RUN_FILE": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        from flask_migrate import upgrade

        from app import create_app

        app = create_app("testing")
        with app.app_context():
            upgrade()
        client = app.test_client()
        reg = {"org_name": "Bench", "username": "bench", "email": "b@example.com", "password": "a long bench password"}
        assert client.post("/api/auth/register", json=reg).status_code == 201
        token = client.post("/api/auth/login", json={"username": "bench", "password": reg["password"]}).get_json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        project = client.post("/api/projects", headers=headers, json={"name": "B", "slug": "b"}).get_json()
        asset = client.post(
            "/api/publish/assets",
            headers={**headers, "X-Project-Id": str(project["project_id"])},
            json={"asset_type": "api_service", "asset_key": "bench", "title": "Bench", "config": {"endpoints": []}},
        ).get_json()
        runs = []
        for total in args.records:
            _fill(app, asset["id"], total)
            url = f"/api/api-services/{asset['id']}/logs/export"
            run = {"records": total}
            for fmt in ("jsonl", "csv"):
                run[fmt] = _stream_peak(client, headers, f"{url}?format={fmt}")
                expected = total + (1 if fmt == "csv" else 0)
                assert run[fmt]["lines"] == expected, (fmt, run[fmt]["lines"], expected)
            if total <= LOAD_ALL_UP_TO:  # past it, holding every row at once is the very thing to avoid
                run["load_all_peak_mb"] = _load_all_peak(app, asset["id"])
            print(json.dumps(run))
            runs.append(run)
        result = {
            "benchmark": "audit log export, tracemalloc peak while streaming vs loading every row",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0],
            "runs": runs,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(ROOT)}")
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
