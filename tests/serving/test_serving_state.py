"""Issue 15: serving data is cached per process, and every change that alters an answer reaches the next call on
every server (two gunicorns here) through the serving generation; a cached call issues no SQL."""

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import two_web_processes  # noqa: F401 - fixture
from tests.publishing.test_assets import LOOKUP, TOP
from tests.serving.test_serving_data import FILTERED, call, mint, service  # noqa: F401 - fixture

PATH = "/api/service/sales-serving"


@pytest.fixture()
def servers(two_web_processes):  # noqa: F811
    return [f"http://127.0.0.1:{port}" for port in two_web_processes]


def get(base, key, endpoint, **params):
    return httpx.get(f"{base}{PATH}/{endpoint}", headers={"X-API-Key": key}, params=params, timeout=10)


def warm(servers, key, endpoint, **params):
    """Both servers serve (and cache: key, published config, prepared query) the call, twice each."""
    answers = [get(base, key, endpoint, **params) for base in servers for _ in range(2)]
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    return answers[0].json()


def test_revocation_reaches_the_other_server_at_once(client, admin, service, servers):  # noqa: F811
    key = mint(client, admin, service)
    warm(servers, key["key"], "top")
    revoked = httpx.delete(f"{servers[1]}/api/publish/assets/{service}/api-keys/{key['id']}", headers=admin.headers)
    assert revoked.status_code in (200, 204), revoked.text
    resp = get(servers[0], key["key"], "top")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "key_revoked", resp.text


def test_key_policy_change_reaches_the_other_server_at_once(app, client, admin, service, servers):  # noqa: F811
    key = mint(client, admin, service)
    assert warm(servers, key["key"], "customer", id="3")["rows"][0]["email"] == "[BLOCKED]"
    from app.db import ApiKey
    from app.extensions import db
    from app.keys.service import bump_serving_generation

    with app.app_context():
        row = db.session.get(ApiKey, key["id"])
        row.masking_level, row.sensitivity_max = "unmasked", "high"
        db.session.commit()
        bump_serving_generation()
    resp = get(servers[0], key["key"], "customer", id="3")
    assert resp.status_code == 200 and resp.json()["rows"][0]["email"] == "grace@example.com", resp.text
    with app.app_context():
        db.session.get(ApiKey, key["id"]).allowed_endpoints = ["top"]
        db.session.commit()
        bump_serving_generation()
    resp = get(servers[1], key["key"], "customer", id="3")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "endpoint_not_allowed", resp.text
    # Through the service: PATCH on one server, the next call on the other.
    url = f"{servers[1]}/api/publish/assets/{service}/api-keys/{key['id']}"
    patched = httpx.patch(url, headers=admin.headers, json={"allowed_endpoints": None})
    assert patched.status_code == 200, patched.text
    assert get(servers[0], key["key"], "customer", id="3").status_code == 200
    rotated = httpx.post(f"{url}/rotate", headers=admin.headers, json={"grace_seconds": 0})
    assert rotated.status_code == 200, rotated.text
    assert get(servers[0], key["key"], "customer", id="3").status_code == 401
    assert get(servers[0], rotated.json()["key"], "customer", id="3").status_code == 200


def test_masking_change_reaches_the_other_server_at_once(client, admin, project, service, servers):  # noqa: F811
    key = mint(client, admin, service, sensitivity_max="high")
    before = warm(servers, key["key"], "customer", id="3")["rows"][0]["email"]
    assert before.endswith("@example.com") and before != "grace@example.com"  # high: masked, not blocked
    put = httpx.put(
        f"{servers[1]}/api/datasets/marts.dim_customer/settings",
        headers=admin.project_headers(project["project_id"]),
        json={"masking": {"email": {"sensitivity": "critical", "strategy": "full"}}},
    )
    assert put.status_code == 200, put.text
    resp = get(servers[0], key["key"], "customer", id="3")
    assert resp.status_code == 200 and resp.json()["rows"][0]["email"] == "[BLOCKED]", resp.text


def test_publish_unpublish_and_rollback_reach_the_other_server_at_once(client, admin, service, servers):  # noqa: F811
    key = mint(client, admin, service)["key"]
    url = f"{servers[1]}/api/publish/assets/{service}"
    assert warm(servers, key, "top")["rows"][0]["tenure"] == 30
    changed = {**TOP, "query": {**TOP["query"], "order_by": [{"column": "tenure", "dir": "asc"}]}}
    extra = {**LOOKUP, "id": "customer2"}
    put = httpx.put(url, headers=admin.headers, json={"config": {"endpoints": [LOOKUP, changed, FILTERED, extra]}})
    assert put.status_code == 200, put.text
    assert get(servers[0], key, "customer2", id="1").status_code == 404  # a draft is not served
    assert httpx.post(f"{url}/publish", headers=admin.headers).status_code == 200
    resp = get(servers[0], key, "top")
    assert resp.status_code == 200 and resp.json()["rows"][0]["tenure"] == 3, resp.text
    assert get(servers[0], key, "customer2", id="1").status_code == 200  # the 404 was not remembered

    assert httpx.post(f"{url}/rollback/1", headers=admin.headers).status_code == 200
    resp = get(servers[0], key, "top")
    assert resp.status_code == 200 and resp.json()["rows"][0]["tenure"] == 30, resp.text
    assert get(servers[0], key, "customer2", id="1").status_code == 404

    assert httpx.post(f"{url}/unpublish", headers=admin.headers).status_code == 200
    resp = get(servers[0], key, "top")
    assert resp.status_code == 404, resp.text


class StatementCounter:
    """The SQL a call sends: through SQLAlchemy's cursor events on `engines`, and through the served queries' fast
    path (`run_readonly_sql` runs their precompiled SQL on the DBAPI connection, beneath those events)."""

    def __init__(self, engines):
        self.statements: list[str] = []
        self.engines = engines

    def _count(self, conn, cursor, statement, *args):
        if statement.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):  # the read-only transaction's frame
            self.statements.append(statement)

    def __enter__(self):
        from app.query import executor

        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._count)
        self._fast_path = executor.run_readonly_sql

        def run_readonly_sql(engine, sql, args, timeout_s):
            self.statements.append(sql)
            return self._fast_path(engine, sql, args, timeout_s)

        executor.run_readonly_sql = run_readonly_sql
        return self

    def __exit__(self, *exc):
        from app.query import executor

        executor.run_readonly_sql = self._fast_path
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._count)


def test_a_cached_call_issues_no_sql(app, client, admin, service):  # noqa: F811
    from app.extensions import db, warehouse

    key = mint(client, admin, service)["key"]
    with app.app_context():
        engines = [db.engine, warehouse.get()]
    for _ in range(2):
        assert call(client, key, "customer", query_string={"id": "2"}).status_code == 200
    with StatementCounter(engines) as counter:
        hit = call(client, key, "customer", query_string={"id": "2"})
    assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT"
    assert counter.statements == []
    # A result-cache miss reads the warehouse once and nothing else: no key, config, catalog or reflection.
    with StatementCounter(engines) as counter:
        miss = call(client, key, "customer", query_string={"id": "4"})
    assert miss.status_code == 200 and miss.headers["X-Cache"] == "MISS"
    # PostgreSQL's read-only transaction and deadline (SET ...) and the pool's liveness ping are not reads.
    reads = [sql for sql in counter.statements if not sql.lstrip().upper().startswith(("SET ", "SELECT 1"))]
    assert len(reads) == 1 and "dim_customer" in reads[0], counter.statements


class RoundTrips:
    """Counts what the process's namespaced Redis client sends: each command outside a pipeline, each pipeline
    execution and each serve script run on a pooled connection (`run_script`) is one round trip."""

    def __init__(self, monkeypatch):
        from app import namespace
        from app.namespace import NamespacedPipeline, NamespacedRedis

        self.sent: list[str] = []
        plain, piped, script = NamespacedRedis.execute_command, NamespacedPipeline.execute, namespace.run_script

        def run_script(*args, **kwargs):
            self.sent.append("EVALSHA")
            return script(*args, **kwargs)

        def execute_command(this, *args, **options):
            self.sent.append(str(args[0]))
            return plain(this, *args, **options)

        def execute(this, *args, **kwargs):
            self.sent.append("PIPELINE " + " ".join(str(c[0][0]) for c in this.command_stack))
            return piped(this, *args, **kwargs)

        monkeypatch.setattr(NamespacedRedis, "execute_command", execute_command)
        monkeypatch.setattr(NamespacedPipeline, "execute", execute)
        for module in ("app.keys.ratelimit", "app.serving.audit"):
            monkeypatch.setattr(f"{module}.run_script", run_script)

    def during(self, fn):
        self.sent.clear()
        result = fn()
        return result, list(self.sent)


def test_one_redis_round_trip_per_cached_call(app, client, admin, service, monkeypatch):  # noqa: F811
    began = datetime.now(UTC)
    key = mint(client, admin, service)
    for _ in range(2):
        assert call(client, key["key"], "customer", query_string={"id": "2"}).status_code == 200
    trips = RoundTrips(monkeypatch)
    hit, sent = trips.during(lambda: call(client, key["key"], "customer", query_string={"id": "2"}))
    assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT"
    assert sent == ["EVALSHA"], sent  # rate limit + generations + cache read + audit record
    miss, sent = trips.during(lambda: call(client, key["key"], "customer", query_string={"id": "5"}))
    assert miss.status_code == 200 and miss.headers["X-Cache"] == "MISS"
    # The serve script, then the record script: audit record, last use, the new entry and the flush flag.
    assert sent == ["EVALSHA", "EVALSHA"], sent
    again, sent = trips.during(lambda: call(client, key["key"], "customer", query_string={"id": "5"}))
    assert again.headers["X-Cache"] == "HIT" and again.get_json() == miss.get_json() and sent == ["EVALSHA"]

    from app.serving.audit import flush_serving_records

    with app.app_context():
        flush_serving_records()
    # This test's calls only: the suite clears its tables between tests, so ids start again at 1 and a late record of
    # the test before names the same asset and key (the flush's own guard: test_delete_asset.py).
    since = began.isoformat()
    logs = client.get(
        f"/api/api-services/{service}/logs", headers=admin.headers, query_string={"since": since}
    ).get_json()
    mine = [e for e in logs["items"] if e["key_id"] == key["id"]]
    assert len(mine) == 5 and {(e["status"], e["endpoint_id"]) for e in mine} == {(200, "customer")}, logs


def test_a_cache_hit_sends_the_bytes_the_miss_sent(client, admin, service):  # noqa: F811
    """A hit is sent as stored, without decoding and encoding it again: the same bytes as the answer that filled the
    entry, the same keys (a lookup never shows paging, a sql endpoint always does)."""
    key = mint(client, admin, service)["key"]
    for endpoint, params, paged in (("customer", {"id": "3"}, False), ("top", {"limit": "2"}, True)):
        miss = call(client, key, endpoint, query_string=params)
        hit = call(client, key, endpoint, query_string=params)
        assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT"), endpoint
        assert hit.data == miss.data and hit.mimetype == miss.mimetype == "application/json", endpoint
        assert ("limit" in hit.get_json() and "offset" in hit.get_json()) is paged, hit.get_json()
        assert hit.get_json()["rows"] and hit.get_json()["count"] == len(hit.get_json()["rows"])


def test_without_redis_the_cache_is_trusted_for_one_second_at_most(app, client, admin, service):  # noqa: F811
    """Redis unreachable: no generation can be read, so a change whose bump never arrived (revoked straight in the
    database here) is effective once the cache is older than TRUST_S."""
    import time

    from app.db import ApiKey
    from app.extensions import db
    from app.keys.ratelimit import RateLimiter
    from app.namespace import namespaced_redis
    from app.serving.state import TRUST_S

    key = mint(client, admin, service)
    for _ in range(2):
        assert call(client, key["key"], "top").status_code == 200
    with app.app_context():
        row = db.session.get(ApiKey, key["id"])
        row.is_active = False
        db.session.commit()  # no bump: as if it was lost
    slot = app.extensions["apiary_rate_limiter"]
    healthy = slot["value"]
    slot["value"] = RateLimiter(namespaced_redis("redis://127.0.0.1:1/0", "dead", socket_connect_timeout=0.2))
    try:
        time.sleep(TRUST_S + 0.2)
        resp = call(client, key["key"], "top")
        assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "key_revoked", resp.get_json()
    finally:
        slot["value"] = healthy


def test_consecutive_model_calls_ask_redis_for_the_heartbeat_once(
    app, client, admin, project, live_worker, monkeypatch
):
    from tests.models.slow_estimator import SlowRegressor
    from tests.models.test_scoring import insert_model, predict, publish_models

    model_id = insert_model(app, project["project_id"], SlowRegressor(seconds=0).fit([[0.0]], [0.0]))
    key = publish_models(client, admin, project["project_id"], {"slow": model_id})
    assert predict(client, key, "slow", {"features": {"x": 1.0}}).status_code == 200
    trips = RoundTrips(monkeypatch)
    resp, sent = trips.during(lambda: predict(client, key, "slow", {"features": {"x": 1.0}}))
    assert resp.status_code == 200, resp.get_json()
    assert "EXISTS" not in sent and sent[0] == "EVALSHA", sent


def test_cached_reads_end_with_the_keyed_call(app, client, admin, service):  # noqa: F811
    """A keyed call reads through the process's cache; once it has ended, the same thread (a gunicorn thread serves
    one request after another: a dry run, the console) reads from the database again, even after a call that
    failed."""
    from app.serving.dispatch import Call
    from app.serving.service import audited_call, serve_endpoint
    from app.serving.state import memo

    key = mint(client, admin, service)["key"]
    loads: list[str] = []

    def load():
        loads.append("db")
        return "fresh"

    with app.test_request_context():
        with audited_call("GET", asset_key="sales-serving") as served:
            serve_endpoint(served, "sales-serving", "top", key, Call("GET", {}, None))
            assert memo("probe", 1, load) == "fresh" and memo("probe", 1, load) == "fresh"
            assert loads == ["db"]  # inside the call: cached
        assert memo("probe", 1, load) == "fresh" and loads == ["db", "db"]  # after it: loaded
        with pytest.raises(Exception):  # noqa: B017,PT011 - any failure of the call
            with audited_call("GET", asset_key="sales-serving") as served:
                serve_endpoint(served, "sales-serving", "top", key, Call("GET", {}, None))
                raise RuntimeError("the call fails after reading")
        assert memo("probe", 1, load) == "fresh" and loads == ["db", "db", "db"]
