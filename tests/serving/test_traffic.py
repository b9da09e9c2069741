"""Per-endpoint traffic read back from the audit log: buckets, error rates, nearest-rank percentiles, the latency
histogram of the filtered calls, and the same org isolation and permissions as the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.db import AuditLog
from app.extensions import db
from app.serving.traffic import window_bounds
from tests.conftest import add_user, sign_up
from tests.serving.test_serving_data import service  # noqa: F401 - fixture


def _rows(app, asset_id: int, rows: list[tuple[datetime, str | None, int, float]]) -> None:
    with app.app_context():
        db.session.add_all(
            AuditLog(
                created_at=ts,
                asset_id=asset_id,
                endpoint_id=endpoint,
                method="GET",
                status=status,
                latency_ms=latency,
            )
            for ts, endpoint, status, latency in rows
        )
        db.session.commit()


def test_stats_buckets_error_rates_and_percentiles(app, client, admin, service):  # noqa: F811
    now = datetime.now(UTC)
    since, until, seconds, count = window_bounds("hour", now)
    last = until - timedelta(seconds=seconds)  # the bucket holding now
    # "top": 100 calls in the current bucket, latencies 1..100 ms, 10 of them errors; 2 calls a bucket earlier.
    rows = [(last + timedelta(seconds=1), "top", 500 if i % 10 == 0 else 200, float(i)) for i in range(1, 101)]
    rows += [(last - timedelta(seconds=10), "top", 200, 7.0), (last - timedelta(seconds=20), "top", 404, 9.0)]
    rows += [(now - timedelta(hours=3), "top", 200, 1000.0)]  # outside the hour
    rows += [(last + timedelta(seconds=2), "customer", 200, 3.5)]
    _rows(app, service, rows)
    _rows(app, service + 1, [(last + timedelta(seconds=3), "top", 500, 1.0)] * 5)  # another service's calls

    body = client.get(f"/api/api-services/{service}/stats", headers=admin.headers, query_string={"window": "hour"})
    assert body.status_code == 200, body.get_json()
    stats = body.get_json()
    assert stats["window"] == "hour" and stats["bucket_seconds"] == 300
    by_id = {e["endpoint_id"]: e for e in stats["endpoints"]}
    assert list(by_id) == ["customer", "top", "by_region"]  # the config's order, endpoints without calls too
    top = by_id["top"]
    assert top["calls"] == 102 and top["errors"] == 11
    assert top["error_rate"] == round(11 / 102, 4)
    assert len(top["buckets"]) == count == 12
    current, previous = top["buckets"][-1], top["buckets"][-2]
    assert current["calls"] == 100 and current["errors"] == 10 and current["error_rate"] == 0.1
    assert current["p50_ms"] == 50.0 and current["p99_ms"] == 99.0  # nearest rank
    assert previous["calls"] == 2 and previous["p50_ms"] == 7.0 and previous["p99_ms"] == 9.0
    assert all(b["calls"] == 0 and b["p50_ms"] is None for b in top["buckets"][:-2])
    assert by_id["customer"]["p99_ms"] == 3.5 and by_id["by_region"]["calls"] == 0
    assert top["buckets"][-1]["start"] == (until - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")

    week = client.get(f"/api/api-services/{service}/stats", headers=admin.headers, query_string={"window": "week"})
    assert {e["endpoint_id"]: e["calls"] for e in week.get_json()["endpoints"]}["top"] == 103

    one = client.get(
        f"/api/api-services/{service}/stats", headers=admin.headers, query_string={"endpoint_id": "customer"}
    ).get_json()
    assert [e["endpoint_id"] for e in one["endpoints"]] == ["customer"] and one["window"] == "day"


def test_stats_and_histogram_permissions_and_bad_input(app, client, admin, service):  # noqa: F811
    _rows(app, service, [(datetime.now(UTC), "top", 200, 4.0)])
    stats_url, hist_url = f"/api/api-services/{service}/stats", f"/api/api-services/{service}/logs/histogram"
    bad = client.get(stats_url, headers=admin.headers, query_string={"window": "year"})
    assert bad.status_code == 422 and "window" in bad.get_json()["error"]["details"]["fields"]
    bad = client.get(hist_url, headers=admin.headers, query_string={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.get_json()["error"]["details"]["fields"]
    viewer = add_user(client, admin, "viewer")
    assert client.get(stats_url, headers=viewer.headers).status_code == 200
    assert client.get(hist_url, headers=viewer.headers).status_code == 200
    # Another organization learns nothing, not even that the service exists.
    stranger = sign_up(client)
    for url in (stats_url, hist_url):
        resp = client.get(url, headers=stranger.headers)
        assert resp.status_code == 404 and "top" not in resp.get_data(as_text=True)
    assert client.get(stats_url).status_code == 401


def test_latency_histogram_counts_the_filtered_calls(app, client, admin, service):  # noqa: F811
    now = datetime.now(UTC)
    latencies = [0.5, 1.0, 1.5, 4.0, 30.0, 30.0, 250.0, 15000.0]
    _rows(app, service, [(now, "top", 200, ms) for ms in latencies] + [(now, "customer", 503, 2.0)])
    url = f"/api/api-services/{service}/logs/histogram"
    body = client.get(url, headers=admin.headers, query_string={"endpoint_id": "top"}).get_json()
    assert body["total"] == 8
    counts = {b["le_ms"]: b["count"] for b in body["bins"]}
    assert counts[1] == 2 and counts[2] == 1 and counts[5] == 1 and counts[50] == 2 and counts[500] == 1
    assert counts[None] == 1 and sum(counts.values()) == 8
    errors = client.get(url, headers=admin.headers, query_string={"errors_only": "true"}).get_json()
    assert errors["total"] == 1 and {b["le_ms"]: b["count"] for b in errors["bins"]}[2] == 1
    logs = client.get(f"/api/api-services/{service}/logs", headers=admin.headers).get_json()
    everything = client.get(url, headers=admin.headers).get_json()
    assert everything["total"] == logs["total"] == 9


def test_a_deleted_service_keeps_its_stats_for_org_admins(app, client, admin, service):  # noqa: F811
    _rows(app, service, [(datetime.now(UTC), "top", 200, 4.0), (datetime.now(UTC), "top", 503, 8.0)])
    viewer = add_user(client, admin, "viewer")
    assert client.delete(f"/api/publish/assets/{service}?force=true", headers=admin.headers).status_code == 204
    stats = client.get(f"/api/api-services/{service}/stats", headers=admin.headers).get_json()
    (top,) = stats["endpoints"]  # no config left: the endpoints that were called
    assert top["endpoint_id"] == "top" and top["calls"] == 2 and top["errors"] == 1 and top["p99_ms"] == 8.0
    assert client.get(f"/api/api-services/{service}/stats", headers=viewer.headers).status_code == 403
    assert client.get(f"/api/api-services/{service}/stats", headers=sign_up(client).headers).status_code == 404
