"""The comparison report of two versions of a service, read from the audit log: calls, error rate and latency per
version, the distribution of a model's predictions per version, and how often shadow runs agreed with the answer."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

from sqlalchemy import select

from app.db import AuditLog, PublishedAsset
from app.extensions import db

MAX_RECORDS = 200_000  # newest first: a report over more calls reads the latest ones
TOP_CLASSES = 20


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 3)


def _is_regression(values: list) -> bool:
    return any(isinstance(v, float) and not float(v).is_integer() for v in values)


def prediction_distribution(values: list) -> dict | None:
    """Classes: counts and shares of the most common; numbers with decimals (regression): mean and quantiles."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if _is_regression(values):
        numbers = sorted(float(v) for v in values if isinstance(v, int | float))
        if not numbers:
            return None
        return {
            "kind": "regression",
            "count": len(numbers),
            "mean": round(sum(numbers) / len(numbers), 6),
            "min": numbers[0],
            "p50": percentile(numbers, 50),
            "p90": percentile(numbers, 90),
            "max": numbers[-1],
        }
    counts = Counter(str(v) for v in values)
    total = sum(counts.values())
    return {
        "kind": "classification",
        "count": total,
        "classes": [
            {"label": label, "count": n, "share": round(n / total, 4)} for label, n in counts.most_common(TOP_CLASSES)
        ],
    }


def _version_stats(version: int, rows: list) -> dict:
    calls = [r for r in rows if not r.shadow and r.version == version]
    shadow_runs = [r for r in rows if r.shadow and r.version == version]
    errors = sum(1 for r in calls if r.status >= 400)
    latencies = sorted(r.latency_ms for r in calls if r.status < 400)
    predictions = []
    for r in calls:
        if r.status < 400 and r.summary and isinstance(r.summary.get("predictions"), list):
            predictions.extend(r.summary["predictions"])
    return {
        "version": version,
        "calls": len(calls),
        "errors": errors,
        "error_rate": round(errors / len(calls), 4) if calls else None,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "shadow_runs": len(shadow_runs),
        "shadow_errors": sum(1 for r in shadow_runs if r.status >= 400),
        "predictions": prediction_distribution(predictions),
    }


def _agreement(rows: list, a: int, b: int) -> dict:
    """Calls answered by one of the versions and shadowed on the other, paired by call id."""
    answered = {r.call_id: r for r in rows if not r.shadow and r.call_id and r.status < 400}
    same = compared = digests_same = digests = 0
    abs_diffs: list[float] = []
    pairs = 0
    for shadow in rows:
        if not shadow.shadow or shadow.status >= 400 or shadow.call_id not in answered:
            continue
        primary = answered[shadow.call_id]
        if {primary.version, shadow.version} != {a, b}:
            continue
        pairs += 1
        left, right = primary.summary or {}, shadow.summary or {}
        if "digest" in left and "digest" in right:
            digests += 1
            digests_same += left["digest"] == right["digest"]
            continue
        for x, y in zip(left.get("predictions") or [], right.get("predictions") or [], strict=False):
            compared += 1
            if isinstance(x, int | float) and isinstance(y, int | float) and _is_regression([x, y]):
                abs_diffs.append(abs(float(x) - float(y)))
            else:
                same += x == y
    classified = compared - len(abs_diffs)
    return {
        "pairs": pairs,
        "predictions_compared": compared,
        "agreement_rate": round(same / classified, 4) if classified else None,
        "mean_abs_diff": round(sum(abs_diffs) / len(abs_diffs), 6) if abs_diffs else None,
        "function_pairs": digests,
        "function_agreement_rate": round(digests_same / digests, 4) if digests else None,
    }


def compare_versions(
    asset: PublishedAsset,
    a: int,
    b: int,
    since: datetime | None = None,
    until: datetime | None = None,
    endpoint_id: str | None = None,
) -> dict:
    stmt = select(
        AuditLog.version,
        AuditLog.shadow,
        AuditLog.status,
        AuditLog.latency_ms,
        AuditLog.summary,
        AuditLog.call_id,
    ).where(AuditLog.asset_id == asset.id, AuditLog.version.in_((a, b)))
    if since is not None:
        stmt = stmt.where(AuditLog.created_at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.created_at < until)
    if endpoint_id is not None:
        stmt = stmt.where(AuditLog.endpoint_id == endpoint_id)
    rows = db.session.execute(stmt.order_by(AuditLog.id.desc()).limit(MAX_RECORDS)).all()
    return {
        "asset_id": asset.id,
        "a": a,
        "b": b,
        "since": since,
        "until": until,
        "endpoint_id": endpoint_id,
        "versions": [_version_stats(a, rows), _version_stats(b, rows)],
        "shadow": _agreement(rows, a, b),
        "truncated": len(rows) >= MAX_RECORDS,
    }
