"""Traffic of a service read back from its audit log: per-endpoint calls, error rate and p50/p99 latency in time
buckets, a latency histogram of the filtered calls, and the records after a cursor (to follow the log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, bindparam, case, cast, func, select

from app.db import AuditLog, DeletedAsset, PublishedAsset
from app.db.columns import UTCDateTime, iso
from app.extensions import db
from app.publishing.endpoint_config import endpoints_in
from app.serving.audit import filtered_logs

# window -> (bucket length in seconds, number of buckets)
WINDOWS = {"hour": (300, 12), "day": (3600, 24), "week": (6 * 3600, 28)}
# Latency histogram bins, upper bounds in ms (the last bin holds everything slower).
MAX_UNLISTED = 10  # endpoint ids called but not in the config, listed at most
LATENCY_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def window_bounds(window: str, now: datetime | None = None) -> tuple[datetime, datetime, int, int]:
    """(since, until, bucket seconds, buckets): buckets aligned on their length, the last one holding `now`."""
    seconds, count = WINDOWS[window]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = (int(now.timestamp()) // seconds + 1) * seconds
    until = datetime.fromtimestamp(end, UTC)
    return until - timedelta(seconds=seconds * count), until, seconds, count


def _rate(errors: int, calls: int) -> float | None:
    return round(errors / calls, 4) if calls else None


def _ms(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _bucket(since: datetime, seconds: int, count: int):
    """Which bucket of the window a record falls in (0 .. count - 1), computed from its time (one expression,
    whatever the number of buckets)."""
    if db.engine.dialect.name == "sqlite":
        offset = (
            func.julianday(AuditLog.created_at) - func.julianday(bindparam("since", since, UTCDateTime()))
        ) * 86400
    else:
        offset = func.extract("epoch", AuditLog.created_at - bindparam("since", since, UTCDateTime()))
    index = func.floor(offset / seconds) if db.engine.dialect.name != "sqlite" else cast(offset / seconds, Integer)
    # A record at the very end of the last bucket could round up past it: it belongs to the last one.
    return case((index >= count, count - 1), else_=index).label("bucket")


def _summary(b, groups: tuple):
    """Per group: calls, errors (status >= 400) and the nearest-rank p50/p99, the smallest latency whose rank
    within the group reaches that share of its calls. PostgreSQL has that as an ordered-set aggregate
    (`percentile_disc`, one pass); elsewhere the ranks come from window functions."""
    errors = func.sum(case((b.c.status >= 400, 1), else_=0))
    if db.engine.dialect.name == "postgresql":
        return select(
            *groups,
            func.count(),
            errors,
            func.percentile_disc(0.5).within_group(b.c.latency_ms),
            func.percentile_disc(0.99).within_group(b.c.latency_ms),
        ).group_by(*groups)
    ranked = select(
        *groups,
        b.c.status,
        b.c.latency_ms,
        func.row_number().over(partition_by=groups, order_by=b.c.latency_ms).label("rank"),
        func.count().over(partition_by=groups).label("total"),
    ).subquery()
    c = ranked.c
    keys = [c[g.name] for g in groups]
    return select(
        *keys,
        func.count(),
        func.sum(case((c.status >= 400, 1), else_=0)),
        func.min(case((c.rank * 100 >= c.total * 50, c.latency_ms))),
        func.min(case((c.rank * 100 >= c.total * 99, c.latency_ms))),
    ).group_by(*keys)


def service_stats(
    asset: PublishedAsset | DeletedAsset, window: str, endpoint_id: str | None = None, now: datetime | None = None
) -> dict:
    """Per endpoint of the service: calls, errors (status >= 400), error rate, p50 and p99 latency over the window
    and in each of its buckets. Computed in the database (window functions), so memory does not grow with calls."""
    since, until, seconds, count = window_bounds(window, now)
    calls = select(AuditLog.endpoint_id, AuditLog.status, AuditLog.latency_ms, _bucket(since, seconds, count)).where(
        AuditLog.asset_id == asset.id, AuditLog.created_at >= since, AuditLog.created_at < until
    )
    if endpoint_id is not None:
        calls = calls.where(AuditLog.endpoint_id == endpoint_id)
    b = calls.subquery()
    # Two passes, one sort each: ranks within (endpoint, bucket) for the buckets, within endpoint for the window.
    per_bucket = db.session.execute(_summary(b, (b.c.endpoint_id, b.c.bucket))).all()
    per_window = db.session.execute(_summary(b, (b.c.endpoint_id,))).all()

    starts = [since + timedelta(seconds=seconds * i) for i in range(count)]
    ids = [ep.id for ep in endpoints_in(getattr(asset, "config", None))]  # a deleted asset has no config
    if endpoint_id is not None:
        ids = [i for i in ids if i == endpoint_id] or [endpoint_id]
    # Calls to ids the config does not hold (404s, removed endpoints) are listed too, the busiest few only: a
    # caller inventing endpoint names cannot grow the page or the answer without bound.
    unknown = sorted((row for row in per_window if row[0] not in ids), key=lambda row: -row[1])
    ids += sorted((row[0] for row in unknown[:MAX_UNLISTED]), key=lambda i: (i is None, i or ""))
    per_window = [row for row in per_window if row[0] in ids]
    per_bucket = [row for row in per_bucket if row[0] in ids]
    out = {
        i: {
            "endpoint_id": i,
            "calls": 0,
            "errors": 0,
            "error_rate": None,
            "p50_ms": None,
            "p99_ms": None,
            "buckets": [
                {"start": iso(s), "calls": 0, "errors": 0, "error_rate": None, "p50_ms": None, "p99_ms": None}
                for s in starts
            ],
        }
        for i in ids
    }
    for ep, n, errs, p50, p99 in per_window:
        errs = int(errs or 0)
        out[ep].update(calls=n, errors=errs, error_rate=_rate(errs, n), p50_ms=_ms(p50), p99_ms=_ms(p99))
    for ep, index, n, errs, p50, p99 in per_bucket:
        errs = int(errs or 0)
        out[ep]["buckets"][int(index)].update(
            calls=n, errors=errs, error_rate=_rate(errs, n), p50_ms=_ms(p50), p99_ms=_ms(p99)
        )
    return {
        "window": window,
        "since": iso(since),
        "until": iso(until),
        "bucket_seconds": seconds,
        "endpoints": list(out.values()),
    }


def latency_histogram(asset: PublishedAsset | DeletedAsset, filters: dict) -> dict:
    """How many of the filtered calls (the log's filters; limit and offset ignored) fall in each latency bin."""
    logs = filtered_logs(asset, filters).subquery()
    index = case(
        *[(logs.c.latency_ms <= edge, i) for i, edge in enumerate(LATENCY_EDGES_MS)], else_=len(LATENCY_EDGES_MS)
    ).label("bin")
    counts = dict(db.session.execute(select(index, func.count()).group_by(index)).all())
    bins = [{"le_ms": edge, "count": counts.get(i, 0)} for i, edge in enumerate(LATENCY_EDGES_MS)]
    bins.append({"le_ms": None, "count": counts.get(len(LATENCY_EDGES_MS), 0)})
    return {"total": sum(b["count"] for b in bins), "bins": bins}


def bin_label(le_ms: float | None) -> str:
    """A histogram bin's name: "≤ 50 ms", "≤ 2 s", "> 10 s"."""
    if le_ms is None:
        last = LATENCY_EDGES_MS[-1]
        return f"> {last // 1000} s" if last >= 1000 else f"> {last} ms"
    return f"≤ {le_ms // 1000} s" if le_ms >= 1000 else f"≤ {le_ms} ms"


def logs_after(asset: PublishedAsset | DeletedAsset, filters: dict, after_id: int, limit: int = 500) -> list[AuditLog]:
    """The filtered records written after record `after_id`, oldest first: one poll of `flask services logs -f`.
    The cursor is the id (the order records reach the table), so a late-flushed record is never skipped."""
    stmt = filtered_logs(asset, filters).where(AuditLog.id > after_id).order_by(AuditLog.id).limit(limit)
    return list(db.session.scalars(stmt))


def latest_logs(asset: PublishedAsset | DeletedAsset, filters: dict, count: int) -> list[AuditLog]:
    """The last `count` filtered records by id, oldest first: where following the log starts."""
    stmt = filtered_logs(asset, filters).order_by(AuditLog.id.desc()).limit(count)
    return list(reversed(list(db.session.scalars(stmt))))


def last_log_id(asset: PublishedAsset | DeletedAsset) -> int:
    """The id of the asset's newest record (0 when it has none): following starts after it."""
    return db.session.scalar(select(func.max(AuditLog.id)).where(AuditLog.asset_id == asset.id)) or 0
