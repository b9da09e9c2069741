"""Seeing what services do: Server-Timing on every keyed call, audit records with the caller and the timing, payload
logging masked as the caller saw it, refused keys recorded (bounded), the log exported as a stream."""

from __future__ import annotations

import csv
import io
import json
import time

from prometheus_client.parser import text_string_to_metric_families

from app.ops.timing import PARTS
from tests.conftest import add_user, sign_up
from tests.serving.test_end_to_end import seed_service  # noqa: F401 - fixture
from tests.serving.test_serving_data import call, mint

FEATURES = {"tenure": 8, "plan": "basic", "monthly": 20.0}


def timing_of(resp) -> dict[str, float]:
    header = resp.headers.get("Server-Timing")
    assert header, f"no Server-Timing on a {resp.status_code}"
    parts = {}
    for item in header.split(","):
        name, _, dur = item.strip().partition(";dur=")
        parts[name] = float(dur)
    assert set(parts) <= {*PARTS, "cpu", "total"}, parts
    assert all(0 <= ms <= parts["total"] for ms in parts.values()), parts
    # The web thread's own CPU time: on every call, never more than the call took (waits are not CPU).
    assert "cpu" in parts and parts["cpu"] > 0, parts
    return parts


def logged(app, client, admin, asset_id: int, n: int, **query) -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        flush_on_worker(app)
        body = client.get(
            f"/api/api-services/{asset_id}/logs", headers=admin.headers, query_string={"limit": 1000, **query}
        ).get_json()
        if body["total"] >= n or time.monotonic() > deadline:
            assert body["total"] == n, body
            return body["items"]
        time.sleep(0.3)


def test_server_timing_for_every_kind_and_in_the_audit_record(app, client, admin, seed_service):  # noqa: F811
    asset_id = seed_service["asset_id"]
    key = mint(client, admin, asset_id, rate_limit=1000)["key"]
    agent = {"User-Agent": "observability-test/1.0", "X-Request-Id": "req-observe-1"}

    lookup = client.get(
        "/api/service/sales-serving/customer", query_string={"id": "42"}, headers={"X-API-Key": key, **agent}
    )
    assert lookup.status_code == 200
    parts = timing_of(lookup)
    assert {"auth", "ratelimit", "query", "total"} <= set(parts)

    top = call(client, key, "top")
    assert top.headers["X-Cache"] == "MISS" and "query" in timing_of(top)
    again = call(client, key, "top")
    assert again.headers["X-Cache"] == "HIT"
    hit = timing_of(again)
    assert "query" not in hit and {"auth", "ratelimit"} <= set(hit)

    model = call(client, key, "churn_risk", method="POST", json={"features": FEATURES})
    assert model.status_code == 200, model.get_json()
    scored = timing_of(model)
    # Measured on the worker and carried back: the wait in the queue and the scoring itself.
    assert {"auth", "ratelimit", "queue", "score"} <= set(scored) and scored["score"] > 0
    assert scored["queue"] + scored["score"] <= scored["total"]
    assert "timing" not in model.get_json()

    function = call(client, key, "score", method="POST", json={"tenure": 5})
    assert function.get_json() == {"result": {"risk": "high"}}
    ran = timing_of(function)
    assert {"queue", "function"} <= set(ran) and ran["function"] > 0
    assert ran["queue"] + ran["function"] <= ran["total"]

    refused = call(client, key, "churn_risk", method="POST", json={"features": {**FEATURES, "tenure": "x"}})
    assert refused.status_code == 422 and "auth" in timing_of(refused)
    assert set(timing_of(call(client, "dk_" + "x" * 43, "top"))) <= {"auth", "cpu", "total"}  # a 401 is timed too

    records = logged(app, client, admin, asset_id, 6)
    by_endpoint = {}
    for record in records:
        by_endpoint.setdefault(record["endpoint_id"], []).append(record)
    first = by_endpoint["customer"][0]
    assert first["request_id"] == "req-observe-1" and first["user_agent"] == "observability-test/1.0"
    assert first["client_ip"] == "127.0.0.1" and first["version"] == 1
    assert set(first["timing"]) == set(parts) and first["timing"]["total"] == first["latency_ms"]
    model_record = next(r for r in by_endpoint["churn_risk"] if r["status"] == 200)
    assert {"queue", "score"} <= set(model_record["timing"])
    assert all(ms <= model_record["timing"]["total"] for ms in model_record["timing"].values())
    assert {"queue", "function"} <= set(by_endpoint["score"][0]["timing"])
    # Metadata mode (the default) keeps no payload.
    assert all(r["request_payload"] is None and r["response_payload"] is None for r in records)


def _set_log_mode(client, admin, asset_id: int, modes: dict[str, str]):
    asset = client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()
    endpoints = [{**ep, "log": modes[ep["id"]]} if ep["id"] in modes else ep for ep in asset["config"]["endpoints"]]
    return client.put(
        f"/api/publish/assets/{asset_id}",
        headers=admin.headers,
        json={"config": {"endpoints": endpoints}, "change_note": "log payloads"},
    )


def test_payload_records_are_masked_as_the_caller_saw_them_and_clipped(app, client, admin, seed_service):  # noqa: F811
    asset_id = seed_service["asset_id"]
    bad = _set_log_mode(client, admin, asset_id, {"customer": "everything"})
    assert bad.status_code in (400, 422)
    assert "config.endpoints[0].log" in json.dumps(bad.get_json())
    saved = _set_log_mode(client, admin, asset_id, {"customer": "payload", "churn_risk": "payload", "top": "payload"})
    assert saved.status_code == 200, saved.get_json()
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    key = mint(client, admin, asset_id, rate_limit=1000)["key"]  # default: masked, sensitivity_max medium

    seen = call(client, key, "customer", query_string={"id": "42"})
    assert seen.status_code == 200
    row = seen.get_json()["rows"][0]
    assert row["email"] != "c42@example.com"
    body = {"features": FEATURES, "context": {"ticket": "T-1"}}
    scored = call(client, key, "churn_risk", method="POST", json=body)
    assert scored.status_code == 200
    twice = [call(client, key, "top", query_string={"limit": "10"}) for _ in range(2)]
    assert [r.headers["X-Cache"] for r in twice] == ["MISS", "HIT"]
    app.config["AUDIT_PAYLOAD_MAX_BYTES"] = 120
    try:
        clipped = call(client, key, "top", query_string={"limit": "9"})
    finally:
        app.config["AUDIT_PAYLOAD_MAX_BYTES"] = 8192
    assert clipped.status_code == 200
    missing = call(client, key, "customer")  # a 400: the error the caller got is what is kept
    assert missing.status_code == 400
    call(client, key, "score", method="POST", json={"tenure": 5})  # metadata mode
    by_cli = app.test_cli_runner().invoke(
        args=["services", "call", "sales-serving", "customer", "--key", key, "-p", "id=42"]
    )  # the CLI's call keeps what it sent too
    assert by_cli.exit_code == 0, by_cli.output

    records = logged(app, client, admin, asset_id, 8)
    customer = [r for r in records if r["endpoint_id"] == "customer"]
    ok = next(r for r in customer if r["status"] == 200)
    assert json.loads(ok["request_payload"]) == {"id": "42"}
    assert json.loads(ok["response_payload"]) == seen.get_json()  # exactly what the caller saw
    assert "c42@example.com" not in json.dumps(records)  # the unmasked value is nowhere in the log
    failed = next(r for r in customer if r["status"] == 400)
    assert json.loads(failed["response_payload"]) == missing.get_json()
    model = next(r for r in records if r["endpoint_id"] == "churn_risk")
    assert json.loads(model["request_payload"]) == body
    assert json.loads(model["response_payload"]) == scored.get_json()
    assert model["context"] == {"ticket": "T-1"}
    tops = sorted((r for r in records if r["endpoint_id"] == "top"), key=lambda r: r["id"])
    assert [json.loads(r["response_payload"]) for r in tops[:2]] == [t.get_json() for t in twice]  # hits too
    assert len(tops[2]["response_payload"].encode()) <= 120 and tops[2]["response_payload"].endswith("[truncated]")
    from_cli = next(r for r in customer if r["user_agent"] == "flask services call")
    assert json.loads(from_cli["request_payload"]) == {"id": "42"}
    assert json.loads(from_cli["response_payload"]) == seen.get_json()
    function = next(r for r in records if r["endpoint_id"] == "score")
    assert function["request_payload"] is None and function["response_payload"] is None


def flush_on_worker(app) -> None:
    """What celery beat does every minute: a refusal after the last scheduled flush waits for it."""
    app.extensions["celery"].send_task("tasks.maintenance.flush_serving_records", queue="default").get(timeout=30)


def _refusals(app, client, account, n_attempts: int, **query) -> dict:
    deadline = time.monotonic() + 20
    while True:
        flush_on_worker(app)
        body = client.get("/api/auth/audit", headers=account.headers, query_string=query).get_json()
        if body["attempts"] >= n_attempts or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def refused_count(client, reason: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        if family.name == "apiary_auth_failures":
            return sum(s.value for s in family.samples if s.labels == {"reason": reason})
    return 0.0


def test_refused_keys_are_recorded_for_the_targeted_org_without_secrets(app, client, admin, seed_service):  # noqa: F811
    asset_id = seed_service["asset_id"]
    revoked = mint(client, admin, asset_id)
    revoke = client.delete(f"/api/publish/assets/{asset_id}/api-keys/{revoked['id']}", headers=admin.headers)
    assert revoke.status_code in (200, 204)
    expired = mint(client, admin, asset_id)
    from app.db import ApiKey
    from app.db.columns import utcnow
    from app.extensions import db

    with app.app_context():
        db.session.get(ApiKey, expired["id"]).expires_at = utcnow()
        db.session.commit()
    unknown = "dk_" + "Q" * 43
    invalid_before, wrong_before = refused_count(client, "invalid_key"), refused_count(client, "wrong_asset")
    attempts = [
        (unknown, "invalid_key"),
        (unknown, "invalid_key"),
        (unknown, "invalid_key"),
        (revoked["key"], "key_revoked"),
        (expired["key"], "key_expired"),
        (None, "missing_key"),
    ]
    for presented, _ in attempts:
        headers = {"X-API-Key": presented} if presented else {}
        resp = client.get("/api/service/sales-serving/top", headers=headers)
        assert resp.status_code in (401, 403) and resp.headers.get("Server-Timing")
    # A valid key of another org's service, used on this one: the attacked org sees it.
    stranger = sign_up(client)
    project = client.post("/api/projects", headers=stranger.headers, json={"name": "S", "slug": "s"}).get_json()
    from tests.publishing.test_assets import _create

    theirs = _create(client, stranger, project["project_id"], key="their-serving", endpoints=[])
    assert theirs.status_code == 201, theirs.get_json()
    client.post(f"/api/publish/assets/{theirs.get_json()['id']}/publish", headers=stranger.headers)
    foreign = mint(client, stranger, theirs.get_json()["id"])
    assert client.get("/api/service/sales-serving/top", headers={"X-API-Key": foreign["key"]}).status_code == 404

    body = _refusals(app, client, admin, len(attempts) + 1)
    assert body["attempts"] == len(attempts) + 1, body
    by_reason = {}
    for item in body["items"]:
        by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + item["count"]
    assert by_reason == {"invalid_key": 3, "key_revoked": 1, "key_expired": 1, "missing_key": 1, "wrong_asset": 1}
    invalid = [i for i in body["items"] if i["reason"] == "invalid_key"]
    assert len(invalid) <= 2  # the same address, prefix and route in a minute is one record
    assert all(i["key_prefix"] == unknown[:10] for i in invalid)
    assert all(
        i["client_ip"] == "127.0.0.1" and i["route"] == "/api/service/<asset_key>/<endpoint_id>" for i in invalid
    )
    text = json.dumps(body)
    for secret in (unknown, revoked["key"], expired["key"], foreign["key"]):
        assert secret not in text and secret[10:20] not in text
    assert {i["key_prefix"] for i in body["items"] if i["reason"] == "key_revoked"} == {revoked["prefix"]}
    only = client.get("/api/auth/audit", headers=admin.headers, query_string={"reason": "key_expired"}).get_json()
    assert [i["reason"] for i in only["items"]] == ["key_expired"]
    assert client.get("/api/auth/audit", headers=admin.headers, query_string={"reason": "x"}).status_code == 422

    # Org admins only, and only their own organization's.
    viewer = add_user(client, admin, "viewer")
    assert client.get("/api/auth/audit", headers=viewer.headers).status_code == 403
    assert client.get("/api/auth/audit", headers=stranger.headers).get_json()["attempts"] == 0

    assert refused_count(client, "invalid_key") - invalid_before == 3
    assert refused_count(client, "wrong_asset") - wrong_before == 1


def test_a_flood_of_bad_keys_makes_a_bounded_number_of_records(app, client, admin, seed_service):  # noqa: F811
    app.config["AUTH_FAILURE_MAX_RECORDS_PER_MINUTE"] = 10
    try:
        for i in range(60):  # every attempt a different key prefix: no aggregation helps, the cap does
            client.get("/api/service/sales-serving/top", headers={"X-API-Key": f"dk_{i:07d}" + "A" * 36})
    finally:
        app.config["AUTH_FAILURE_MAX_RECORDS_PER_MINUTE"] = 120
    from app.db import AuthFailure
    from app.extensions import db

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        flush_on_worker(app)
        with app.app_context():
            rows = db.session.scalars(db.select(AuthFailure)).all()
            total = sum(r.count for r in rows)
        if total >= 60:
            break
        time.sleep(0.3)
    assert total == 60
    # At most the cap per minute (the run may straddle two minutes), plus one `suppressed` record per minute.
    assert len(rows) <= 2 * 10 + 2
    suppressed = [r for r in rows if r.reason == "suppressed"]
    assert suppressed and sum(r.count for r in suppressed) >= 60 - 2 * 10
    assert all(r.key_prefix is None and r.client_ip is None for r in suppressed)


def test_export_streams_the_log_as_jsonl_and_csv(app, client, admin, seed_service):  # noqa: F811
    from datetime import timedelta

    from app.db import AuditLog
    from app.db.columns import utcnow
    from app.extensions import db

    asset_id = seed_service["asset_id"]
    start = utcnow() - timedelta(hours=1)
    with app.app_context():
        db.session.execute(
            AuditLog.__table__.insert(),
            [
                {
                    "created_at": start + timedelta(seconds=i),
                    "asset_id": asset_id,
                    "endpoint_id": "top" if i % 2 else "customer",
                    "method": "GET",
                    "status": 200 if i % 5 else 500,
                    "latency_ms": float(i),
                    "version": 1,
                    "timing": {"auth": 0.1, "total": float(i)},
                }
                for i in range(2500)
            ],
        )
        db.session.commit()
    url = f"/api/api-services/{asset_id}/logs/export"
    resp = client.get(url, headers=admin.headers)
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "application/x-ndjson"
    chunks = list(resp.response)
    assert len(chunks) >= 3  # written a batch at a time, never as one body
    lines = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks).decode().splitlines()
    assert len(lines) == 2500
    first = json.loads(lines[0])
    assert first["latency_ms"] == 0.0 and first["endpoint_id"] == "customer" and first["version"] == 1
    assert {"endpoint_id", "status", "latency_ms", "version", "timing", "request_id"} <= set(first)
    assert [json.loads(line)["latency_ms"] for line in lines[:3]] == [0.0, 1.0, 2.0]  # oldest first

    since = (start + timedelta(seconds=100)).isoformat()
    until = (start + timedelta(seconds=200)).isoformat()
    filtered = client.get(
        url, headers=admin.headers, query_string={"format": "csv", "endpoint_id": "top", "since": since, "until": until}
    )
    assert filtered.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(filtered.get_data(as_text=True))))
    assert len(rows) == 50 and {r["endpoint_id"] for r in rows} == {"top"}
    assert json.loads(rows[0]["timing"]) == {"auth": 0.1, "total": 101.0}

    bad = client.get(url, headers=admin.headers, query_string={"format": "xml"})
    assert bad.status_code == 422 and "format" in bad.get_json()["error"]["details"]["fields"]
    viewer = add_user(client, admin, "viewer")
    assert client.get(url, headers=viewer.headers).status_code == 200
    assert client.get(url, headers=sign_up(client).headers).status_code == 404
    assert client.get(url).status_code == 401


def test_server_timing_on_the_data_api(app, client, admin, project):
    from tests.serving.test_serving_data import FILTERED
    from tests.warehouse_tables import create_dataset

    create_dataset(app, project["project_id"])
    created = client.post(
        "/api/publish/assets",
        headers=admin.project_headers(project["project_id"]),
        json={"asset_type": "data_api", "asset_key": "customers", "title": "Customers", "config": FILTERED["query"]},
    )
    assert created.status_code == 201, created.get_json()
    client.post(f"/api/publish/assets/{created.get_json()['id']}/publish", headers=admin.headers)
    key = mint(client, admin, created.get_json()["id"])["key"]
    first = client.get("/api/data/customers", headers={"X-API-Key": key}, query_string={"region": "US"})
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS"
    assert {"auth", "ratelimit", "query"} <= set(timing_of(first))
    hit = client.get("/api/data/customers", headers={"X-API-Key": key}, query_string={"region": "US"})
    assert hit.headers["X-Cache"] == "HIT" and "query" not in timing_of(hit)
    bad = client.get("/api/data/customers", headers={"X-API-Key": key}, query_string={"min_tenure": "lots"})
    assert bad.status_code == 400 and "total" in timing_of(bad)
