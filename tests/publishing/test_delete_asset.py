"""Issue 11: DELETE /api/publish/assets/{id}: 409 while published unless force by an org admin; versions and keys
go in one transaction; the audit log stays readable by org admins."""

import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from tests.conftest import add_user, sign_up
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


def _count(app, model, **where):
    from app.extensions import db

    with app.app_context():
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return db.session.scalar(stmt)


def test_published_asset_is_409_until_unpublished(app, client, admin, service):  # noqa: F811
    from app.db import ApiKey, AssetVersion, PublishedAsset

    key = mint(client, admin, service)["key"]
    assert call(client, key, "top").status_code == 200
    url = f"/api/publish/assets/{service}"
    refused = client.delete(url, headers=admin.headers)
    assert refused.status_code == 409 and "unpublish" in refused.get_json()["error"]["message"]
    assert client.delete(f"{url}?force=false", headers=admin.headers).status_code == 409
    assert _count(app, ApiKey, asset_id=service) == 1 and call(client, key, "top").status_code == 200

    assert client.post(f"{url}/unpublish", headers=admin.headers).status_code == 200
    deleted = client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert client.get(url, headers=admin.headers).status_code == 404
    assert _count(app, PublishedAsset, id=service) == 0
    assert _count(app, AssetVersion, asset_id=service) == 0 and _count(app, ApiKey, asset_id=service) == 0
    assert call(client, key, "top").status_code == 401
    assert client.delete(url, headers=admin.headers).status_code == 404


def test_force_needs_an_org_admin(app, client, admin, service):  # noqa: F811
    designer = add_user(client, admin, "designer")
    url = f"/api/publish/assets/{service}"
    denied = client.delete(f"{url}?force=true", headers=designer.headers)
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "permission_denied"
    assert client.get(url, headers=admin.headers).status_code == 200
    assert client.delete(f"{url}?force=maybe", headers=admin.headers).status_code == 422
    assert client.delete(f"{url}?force=true", headers=admin.headers).status_code == 204
    assert client.get(url, headers=admin.headers).status_code == 404


def test_another_org_cannot_delete(client, admin, service):  # noqa: F811
    other = sign_up(client)
    assert client.delete(f"/api/publish/assets/{service}?force=true", headers=other.headers).status_code == 404
    assert client.get(f"/api/publish/assets/{service}", headers=admin.headers).status_code == 200


def test_audit_log_stays_readable_by_org_admins(app, client, admin, service):  # noqa: F811
    from app.serving.audit import flush_serving_records

    key = mint(client, admin, service)["key"]
    for _ in range(3):
        assert call(client, key, "top").status_code == 200
    with app.app_context():
        flush_serving_records()
    logs_url = f"/api/api-services/{service}/logs"
    assert client.get(logs_url, headers=admin.headers).get_json()["total"] == 3

    analyst = add_user(client, admin, "analyst")
    assert client.delete(f"/api/publish/assets/{service}?force=true", headers=admin.headers).status_code == 204
    after = client.get(logs_url, headers=admin.headers)
    assert after.status_code == 200, after.get_json()
    assert after.get_json()["total"] == 3 and {r["endpoint_id"] for r in after.get_json()["items"]} == {"top"}
    assert client.get(logs_url, headers=analyst.headers).status_code == 403
    assert client.get(logs_url, headers=sign_up(client).headers).status_code == 404

    tombstones = client.get("/api/publish/deleted-assets", headers=admin.headers).get_json()["items"]
    assert [(t["id"], t["asset_key"], t["deleted_by"]) for t in tombstones] == [
        (service, "sales-serving", admin.username)
    ]
    assert client.get("/api/publish/deleted-assets", headers=analyst.headers).status_code == 403

    # A new asset never inherits the deleted one's id (SQLite would hand it out again) and so never its log.
    from tests.publishing.test_assets import _create

    project_id = client.get("/api/projects", headers=admin.headers).get_json()["items"][0]["project_id"]
    fresh = _create(client, admin, project_id).get_json()
    assert fresh["id"] != service
    assert client.get(f"/api/api-services/{fresh['id']}/logs", headers=admin.headers).get_json()["total"] == 0
    assert client.get(logs_url, headers=admin.headers).get_json()["total"] == 3


def test_a_record_older_than_the_asset_holding_its_id_never_shows_in_its_log(app, client, admin, service):  # noqa: F811
    """Asset ids are not handed out again while a deleted asset's tombstone lives, but the tombstones go with their
    organization: a record still on its way (buffered in Redis, or in a web process's outbox) from an asset whose id
    a newer asset now holds must not show in the newer asset's log. Its time says which asset it belongs to."""
    from datetime import timedelta

    from app.db import PublishedAsset
    from app.extensions import db, redis_store
    from app.serving.audit import AuditBuffer, audit_entry, flush_serving_records

    key = mint(client, admin, service)
    assert call(client, key["key"], "top").status_code == 200
    with app.app_context():
        created = db.session.get(PublishedAsset, service).created_at
        late = audit_entry(
            asset_id=service,
            endpoint_id="top",
            key_id=key["id"],
            status=500,
            latency_ms=1,
            method="GET",
            ts=created - timedelta(seconds=1),
        )
        AuditBuffer(redis_store.get(app)).record(late)
        flush_serving_records()  # here, or already by the session's worker (the call scheduled a flush)
    url = f"/api/api-services/{service}/logs"
    deadline = time.monotonic() + 10
    while (logs := client.get(url, headers=admin.headers).get_json())["total"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # a worker's flush still running has its batch written by now
    logs = client.get(url, headers=admin.headers).get_json()
    assert [item["status"] for item in logs["items"]] == [200], logs  # the call's own record only


@pytest.fixture()
def flush_app(app):
    """The session's databases and Redis under a Redis namespace of its own: records buffered through it are flushed
    only by the test itself. Under the suite's namespace, the session's worker may run a flush that an earlier test's
    calls scheduled (a second later) in the middle of the test, and take its records: full runs showed it."""
    from app import create_app

    return create_app("testing", {"APIARY_NAMESPACE": f"flush-{uuid.uuid4().hex[:8]}"})


def test_a_record_reaching_the_database_after_its_asset_is_deleted(flush_app, client, admin, service):  # noqa: F811
    """A deleted asset's late record joins its readable log; a record whose asset id names no asset at all (its
    tombstone went with its organization, or the asset never existed) is left out: the next asset given that id on
    SQLite would otherwise inherit it."""
    from app.db import AuditLog
    from app.extensions import db, redis_store
    from app.serving.audit import AuditBuffer, audit_entry, flush_serving_records

    key = mint(client, admin, service)
    assert client.delete(f"/api/publish/assets/{service}?force=true", headers=admin.headers).status_code == 204
    nobody = service + 1000
    with flush_app.app_context():
        for asset_id in (service, nobody):
            record = audit_entry(
                asset_id=asset_id, endpoint_id="top", key_id=key["id"], status=200, latency_ms=1, method="GET"
            )
            AuditBuffer(redis_store.get(flush_app)).record(record)
        flush_serving_records()
        written = dict(
            db.session.execute(
                select(AuditLog.asset_id, func.count())
                .where(AuditLog.asset_id.in_([service, nobody]))
                .group_by(AuditLog.asset_id)
            ).all()
        )
    assert written == {service: 1}, written
    logs = client.get(f"/api/api-services/{service}/logs", headers=admin.headers).get_json()
    assert logs["total"] == 1


def test_records_the_database_could_not_take_wait_for_the_next_flush(flush_app, admin, service, monkeypatch):  # noqa: F811
    """A flush drains a batch from Redis, then writes it: when the database refuses the write (locked, restarting,
    connection lost), the batch goes back to the head of the buffer in its order, and the next flush writes it."""
    from app.db import AuditLog
    from app.extensions import db, redis_store
    from app.serving.audit import AuditBuffer, audit_entry, flush_serving_records

    with flush_app.app_context():
        buffer = AuditBuffer(redis_store.get(flush_app))
        for status in (200, 201, 202):
            buffer.record(
                audit_entry(asset_id=service, endpoint_id="top", key_id=None, status=status, latency_ms=1, method="GET")
            )
        execute = db.session.execute

        def refused(statement, *args, **kwargs):
            if getattr(statement, "table", None) is AuditLog.__table__:
                raise OperationalError(str(statement), {}, Exception("database is locked"))
            return execute(statement, *args, **kwargs)

        monkeypatch.setattr(db.session, "execute", refused)
        with pytest.raises(OperationalError):
            flush_serving_records(batch=2)
        monkeypatch.undo()
        assert flush_serving_records(batch=2) == 3
        stored = db.session.scalars(select(AuditLog.status).where(AuditLog.asset_id == service).order_by(AuditLog.id))
        assert list(stored) == [200, 201, 202]


def test_a_flush_holds_the_sqlite_write_lock_from_its_asset_check_to_its_insert(app, flush_app, service, monkeypatch):  # noqa: F811
    """The check of which asset a record belongs to and the insert are one transaction. SQLite's driver begins one
    only at the first write: an asset deleted between the two (another connection clearing the tables) received
    records its check had let through, and the next asset given its id showed them (a suite run's flake)."""
    import sqlite3

    from app.extensions import db, redis_store
    from app.serving import audit

    check = audit._not_before_their_asset
    interleaved: list[str] = []

    def check_then_delete(rows):
        kept = check(rows)
        if db.session.get_bind().dialect.name == "sqlite":
            other = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), timeout=0.2)
            try:
                other.execute("DELETE FROM published_assets WHERE id = ?", (service,))
                other.commit()
                interleaved.append("deleted")
            except sqlite3.OperationalError as exc:
                interleaved.append(str(exc))
            finally:
                other.close()
        return kept

    monkeypatch.setattr(audit, "_not_before_their_asset", check_then_delete)
    with flush_app.app_context():
        record = audit.audit_entry(
            asset_id=service, endpoint_id="top", key_id=None, status=200, latency_ms=1, method="GET"
        )
        audit.AuditBuffer(redis_store.get(flush_app)).record(record)
        assert audit.flush_serving_records() == 1
    if interleaved:  # SQLite: the other connection could not write between the check and the insert
        assert interleaved == ["database is locked"], interleaved


def test_a_batch_left_out_whole_ends_its_transaction_and_the_next_batch_is_written(app, flush_app, service):  # noqa: F811
    """A flush takes the write lock before its check; a batch whose records all name no asset inserts nothing. It
    must still end its transaction: the next batch's BEGIN IMMEDIATE inside it failed ("cannot start a transaction
    within a transaction"), and the lock stayed held against every other writer until then."""
    import sqlite3

    from app.db import AuditLog
    from app.extensions import db, redis_store
    from app.serving.audit import AuditBuffer, audit_entry, flush_serving_records

    with flush_app.app_context():
        buffer = AuditBuffer(redis_store.get(flush_app))
        for asset_id in (service + 1000, service + 1001, service, service):  # batch 1: nobody's; batch 2: the service's
            buffer.record(
                audit_entry(asset_id=asset_id, endpoint_id="top", key_id=None, status=200, latency_ms=1, method="GET")
            )
        assert flush_serving_records(batch=2) == 2  # raised here, on SQLite, before the fix
        assert db.session.scalar(select(func.count()).where(AuditLog.asset_id == service)) == 2
        if db.session.get_bind().dialect.name == "sqlite":  # nobody holds the write lock once the flush returned
            other = sqlite3.connect(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"), timeout=0.2)
            try:
                other.execute("UPDATE published_assets SET status = status WHERE id = ?", (service,))
                other.commit()
            finally:
                other.close()
