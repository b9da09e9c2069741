"""Benchmark load_csv: a generated 1,000,000-row CSV into SQLite (and PostgreSQL), wall time and peak memory."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "upload.json")
HEADER = "Order ID,Customer Name,E-mail,City,Amount,Quantity,Active,Signup Date,Last Seen,Score,Category,Note\n"
CITIES = ["Zürich", "Paris", "São Paulo", "New York", "Nairobi", "Tokyo", "Oslo", "Lima", "Perth", "Cairo"]
CATEGORIES = ["hardware", "software", "services", "training", "support", "licences"]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def generate_csv(path: str, rows: int, seed: int = 7) -> int:
    """Write the file row by row (never in memory); returns its size in bytes."""
    rnd = random.Random(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(1, rows + 1):
            seen = start + timedelta(seconds=rnd.randrange(150_000_000))
            note = " ".join(rnd.choices(WORDS, k=rnd.randrange(6, 12)))
            score = f"{rnd.random():.6f}" if rnd.random() > 0.02 else ""  # some NULLs, as real exports have
            out.write(
                f"{i},Customer {rnd.randrange(100_000):05d},user{i}@example.com,{rnd.choice(CITIES)},"
                f"{rnd.uniform(0, 10_000):.2f},{rnd.randrange(1, 500)},{rnd.choice(('true', 'false'))},"
                f"{(start + timedelta(days=rnd.randrange(1500))).date().isoformat()},"
                f'{seen.isoformat(timespec="milliseconds")},{score},{rnd.choice(CATEGORIES)},"{note}, {rnd.choice(WORDS)}"\n'
            )
    return os.path.getsize(path)


def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_load(csv_path: str, url: str, work_dir: str, batch_size: int, trace: bool) -> dict:
    """In a fresh process (so the generator's memory is not counted): load the file as an upload stream."""
    sys.path.insert(0, ROOT)
    import sqlalchemy as sa

    from app.warehouse.engine import create_warehouse_engine
    from app.warehouse.loader import load_csv

    if trace:
        import tracemalloc

        tracemalloc.start()
    if url.startswith("sqlite"):
        engine = create_warehouse_engine(url, os.path.join(work_dir, "schemas"))
        schema = "uploads"
    else:
        engine = create_warehouse_engine(url)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
    statements = 0

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(*_args):
        nonlocal statements
        statements += 1

    baseline = rss_mb()
    started = time.perf_counter()
    try:
        with open(csv_path, "rb") as upload:  # a stream without a usable path, like werkzeug's FileStorage
            result = load_csv(engine, upload, schema, "bench_orders", replace=True, batch_size=batch_size)
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            counted = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".bench_orders').scalar_one()  # noqa: S608
    finally:
        if not url.startswith("sqlite"):
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()
    figures = {
        "backend": engine.dialect.name,
        "rows": result.row_count,
        "rows_in_table": counted,
        "columns": {c.name: c.type for c in result.columns},
        "seconds": round(seconds, 2),
        "rows_per_second": round(result.row_count / seconds),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "db_statements": statements,
        "tracemalloc": trace,
    }
    if trace:
        figures["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / (1024 * 1024), 1)
    return figures


def load_in_child(csv_path: str, url: str, work_dir: str, batch_size: int, trace: bool) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", csv_path, "--url", url, "--work-dir", work_dir]
    cmd += ["--batch-size", str(batch_size)] + (["--tracemalloc"] if trace else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"load failed ({url}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--postgres", metavar="URL", help="also load into this PostgreSQL warehouse")
    parser.add_argument("--tracemalloc", action="store_true", help="extra SQLite run under tracemalloc (slow)")
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_load(args.child, args.url, args.work_dir, args.batch_size, args.tracemalloc)))
        return

    with tempfile.TemporaryDirectory(prefix="apiary-bench-") as work_dir:
        csv_path = os.path.join(work_dir, "orders.csv")
        started = time.perf_counter()
        size = generate_csv(csv_path, args.rows)
        print(f"generated {args.rows:,} rows, {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
        runs = [load_in_child(csv_path, f"sqlite:///{work_dir}/main.db", work_dir, args.batch_size, False)]
        if args.postgres:
            runs.append(load_in_child(csv_path, args.postgres, work_dir, args.batch_size, False))
        if args.tracemalloc:
            sqlite_url = f"sqlite:///{work_dir}/traced.db"
            runs.append(load_in_child(csv_path, sqlite_url, os.path.join(work_dir, "traced"), args.batch_size, True))

    summary = "; ".join(
        f"{r['backend']}{' (tracemalloc)' if r['tracemalloc'] else ''}: {r['rows']:,} rows in {r['seconds']} s, "
        f"peak RSS {r['peak_rss_mb']} MB"
        + (f", tracemalloc peak {r['tracemalloc_peak_mb']} MB" if r["tracemalloc"] else "")
        for r in runs
    )
    summary = f"upload of a {size / 1e6:.0f} MB CSV: {summary}"
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "file_rows": args.rows,
        "file_mb": round(size / 1e6, 1),
        "batch_size": args.batch_size,
        "runs": runs,
        "summary": summary,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    print(summary)


if __name__ == "__main__":
    main()
