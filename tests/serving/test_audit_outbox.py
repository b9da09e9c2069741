"""A served call's audit record leaves with the next keyed call's round trip (or the outbox's writer when none
comes): no call waits for its own bookkeeping, and no record is lost on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.extensions import redis_store
from app.keys.usage import LAST_USED_KEY
from app.namespace import namespaced_redis
from app.redis_server import free_port
from app.serving import audit_outbox as outbox_module
from app.serving.audit import AuditBuffer
from app.serving.audit_outbox import AUDIT_KEY, AuditOutbox, audit_outbox
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


@pytest.fixture()
def quiet_writer(app):
    """The writer thread waits a minute: only keyed calls (and explicit flushes) move records."""
    with app.app_context():
        outbox = audit_outbox(app)
    outbox.set_tick(60.0)
    yield
    outbox.set_tick(outbox_module.WRITER_TICK_S)


def _buffered(app) -> list[dict]:
    with app.app_context():
        return [json.loads(raw) for raw in redis_store.get(app).lrange(AUDIT_KEY, 0, -1)]


def test_a_calls_record_goes_out_with_the_next_keyed_call(app, client, admin, service, quiet_writer):  # noqa: F811
    key = mint(client, admin, service)
    with app.app_context():
        outbox = audit_outbox(app)
    assert call(client, key["key"], "customer").status_code == 400  # no id: refused after the rate limit
    assert outbox.pending() == 1 and _buffered(app) == []  # answered without a round trip of its own

    assert call(client, key["key"], "customer", query_string={"id": "999"}).status_code in (200, 404)
    carried = _buffered(app)
    assert [(r["status"], r["error_code"]) for r in carried[:1]] == [(400, "validation_error")]
    assert carried[0]["key_id"] == key["id"] and carried[0]["endpoint_id"] == "customer"
    with app.app_context():
        assert redis_store.get(app).hget(LAST_USED_KEY, str(key["id"])) is not None  # the key's last use went too


def test_records_no_call_carries_are_sent_by_the_writer(app, client, admin, service):  # noqa: F811
    key = mint(client, admin, service)
    assert call(client, key["key"], "customer").status_code == 400
    deadline = time.monotonic() + 5
    while not _buffered(app) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["status"] for r in _buffered(app)] == [400]


def test_the_flush_task_sends_this_processs_records_first(app, client, admin, service, quiet_writer):  # noqa: F811
    from app.db import AuditLog
    from app.extensions import db
    from app.serving.audit import flush_serving_records

    key = mint(client, admin, service)
    for _ in range(3):
        assert call(client, key["key"], "customer").status_code == 400
    with app.app_context():
        assert audit_outbox(app).pending() == 1  # the first two went out with the calls after them
        assert flush_serving_records() == 3
        assert db.session.query(AuditLog).filter_by(key_id=key["id"], status=400).count() == 3
        assert audit_outbox(app).pending() == 0


def test_records_redis_cannot_take_are_dropped_and_counted(app):
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    outbox = AuditOutbox(app, down)
    outbox.set_tick(60.0)
    outbox.put('{"key_id": 1}', 1)
    outbox.put('{"key_id": 2}', 2)
    outbox.flush()  # never raises
    assert outbox.pending() == 0 and outbox.dropped == 2


def test_a_flush_without_redis_tries_once_and_drops_the_rest(app, monkeypatch):
    """A process exiting while Redis is away waits one connect timeout, not one per batch."""
    monkeypatch.setattr(outbox_module, "BATCH", 1)
    tries = []
    original = outbox_module.run_script

    def counted(*args, **kwargs):
        tries.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(outbox_module, "run_script", counted)
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    outbox = AuditOutbox(app, down)
    outbox.set_tick(60.0)
    for n in range(3):
        outbox.put(json.dumps({"key_id": n}), n)
    outbox.flush()
    assert len(tries) == 1 and outbox.pending() == 0 and outbox.dropped == 3


def test_the_pending_records_are_capped_oldest_first(app, redis_client, monkeypatch):
    monkeypatch.setattr(outbox_module, "MAX_PENDING", 3)
    outbox = AuditOutbox(app, redis_client)
    outbox.set_tick(60.0)
    for n in range(5):
        outbox.put(json.dumps({"key_id": n}), n)
    assert outbox.pending() == 3 and outbox.dropped == 2
    outbox.flush()
    assert [e["key_id"] for e in AuditBuffer(redis_client).drain()] == [2, 3, 4]
    assert set(redis_client.hgetall(LAST_USED_KEY)) == {b"2", b"3", b"4"}


def test_a_call_carries_a_bounded_number_of_records(app, redis_client):
    outbox = AuditOutbox(app, redis_client)
    outbox.set_tick(60.0)
    for n in range(outbox_module.CARRIED + 5):
        outbox.put(json.dumps({"key_id": n}), n)
    assert len(outbox.take()) == outbox_module.CARRIED and outbox.pending() == 5


def test_a_process_that_exits_normally_sends_what_is_left(app):
    """A gunicorn worker's graceful stop: records still in the outbox reach Redis before the process ends.

    Under a Redis namespace of its own: under the suite's, the session's worker may run a flush that an earlier
    test's calls scheduled and take the record to the database before it is looked for (a full run showed it)."""
    namespace = f"exit-{uuid.uuid4().hex[:8]}"
    script = (
        "import sys; from app import create_app; from app.serving import audit_outbox as m\n"
        "app = create_app('testing')\n"
        "with app.app_context():\n"
        "    m.audit_outbox(app).set_tick(600.0)\n"
        "    m.audit_outbox(app).put('{\"key_id\": 77}', 77)\n"
        "    assert m.audit_outbox(app).pending() == 1\n"
        "sys.exit(0)\n"
    )
    env = {**os.environ, "REDIS_URL": app.config["REDIS_URL"], "APIARY_NAMESPACE": namespace}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    buffered = namespaced_redis(app.config["REDIS_URL"], namespace).lrange(AUDIT_KEY, 0, -1)
    assert [json.loads(raw)["key_id"] for raw in buffered] == [77]
