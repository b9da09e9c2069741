"""Probe round 3 (attacker's view of the serving fast path: cache hits sent as stored text, query templates, the
pooled Redis script runner, several warm jails per endpoint version, Server-Timing's cpu, metrics labels).

Tests that held are kept as regression tests; those that got through name the hole (see /work/notes/probe3.md)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import redis
import sqlalchemy as sa

from app.namespace import NamespacedRedis, run_script
from app.query import KeyPolicy
from app.query.cache import ResultCache
from app.sandbox.warm_pool import Slot, WarmKey, WarmPool
from tests.query.conftest import warehouse  # noqa: F401 - fixture
from tests.query.test_query_templates import ADMIN, MASKED_HIGH, Prepared
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture


def _entries(app) -> list[str]:
    """The result cache's entries (not its generation counters) under the test installation's namespace."""
    from app.extensions import redis_store

    with app.app_context():
        client = redis_store.get()
        keys = [k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match="apiary:rc:*")]
    return [k for k in keys if k.split(":")[2].isdigit()]


# 1. Result-cache hits sent as the stored JSON text.


def test_a_cache_hit_is_only_ever_the_bytes_cached_for_the_same_policy(client, admin, service):  # noqa: F811
    """The clear key caches first; every other policy (masked, blocked, column-restricted, row-scoped) must miss
    on its first call and then hit only its own answer."""
    clear = mint(client, admin, service, masking_level="unmasked", sensitivity_max="critical")["key"]
    first = call(client, clear, "customer", query_string={"id": "3"})
    assert first.headers["X-Cache"] == "MISS" and first.get_json()["rows"][0]["ssn"] == "333-44-5555"
    assert call(client, clear, "customer", query_string={"id": "3"}).headers["X-Cache"] == "HIT"

    keys = {
        "masked": mint(client, admin, service)["key"],
        "narrow": mint(client, admin, service, masking_level="unmasked", allowed_columns=["customer_key", "region"])[
            "key"
        ],
        "eu_only": mint(client, admin, service, masking_level="unmasked", row_scope={"region": ["EU"]})["key"],
        "high": mint(client, admin, service, masking_level="unmasked", sensitivity_max="high")["key"],
    }
    for name, key in keys.items():
        miss = call(client, key, "customer", query_string={"id": "3"})
        hit = call(client, key, "customer", query_string={"id": "3"})
        assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT"), name
        assert hit.get_data() == miss.get_data(), name  # the hit is the very text the miss answered
        text = hit.get_data(as_text=True)
        assert "333-44-5555" not in text, (name, text)
        assert name == "high" or "Grace Hopper" not in text, (name, text)
        body = hit.get_json()
        if name == "masked":
            assert body["rows"][0]["ssn"] == "[BLOCKED]" and body["rows"][0]["email"] == "[BLOCKED]"
        elif name == "narrow":
            assert set(body["rows"][0]) == {"customer_key", "region"}
        elif name == "eu_only":
            assert body["rows"] == []
        else:
            assert body["rows"][0]["email"] == "grace@example.com" and body["rows"][0]["ssn"] == "[BLOCKED]"
    # And the clear key still gets its own answer, not the last one cached.
    again = call(client, clear, "customer", query_string={"id": "3"})
    assert again.headers["X-Cache"] == "HIT" and again.get_json()["rows"][0]["ssn"] == "333-44-5555"


def test_a_lookup_hit_has_no_paging_keys_and_a_sql_hit_has_them(client, admin, service):  # noqa: F811
    key = mint(client, admin, service)["key"]
    for endpoint, params, keys in (
        ("customer", {"id": "1", "limit": "1"}, {"rows", "count"}),
        ("top", {"limit": "2", "offset": "1"}, {"rows", "count", "limit", "offset"}),
    ):
        miss = call(client, key, endpoint, query_string=params)
        hit = call(client, key, endpoint, query_string=params)
        assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT"), endpoint
        assert set(hit.get_json()) == keys and set(miss.get_json()) == keys, endpoint
        assert hit.mimetype == "application/json" and hit.get_data() == miss.get_data(), endpoint
    assert call(client, key, "top", query_string={"limit": "2", "offset": "1"}).get_json()["offset"] == 1


@pytest.mark.parametrize("planted", [b"[1, 2]", b'"text"', b"null", b"42", b"{oops", b"<html>{}</html>", b""])
def test_an_entry_that_is_not_a_json_object_is_never_served(app, client, admin, service, planted):  # noqa: F811
    """Whatever lands in an entry (an older layout, a bad write, someone else's bytes in the same Redis), only a
    JSON object is sent as a hit; anything else is a miss answered from the warehouse."""
    from app.extensions import redis_store

    key = mint(client, admin, service)["key"]
    assert call(client, key, "customer", query_string={"id": "2"}).headers["X-Cache"] == "MISS"
    entries = _entries(app)
    assert len(entries) == 1, entries
    with app.app_context():
        redis_store.get().set(entries[0], planted, ex=60)
    answer = call(client, key, "customer", query_string={"id": "2"})
    assert answer.status_code == 200 and answer.headers["X-Cache"] == "MISS"
    assert answer.get_json()["rows"][0]["customer_key"] == 2


def test_served_text_accepts_json_objects_only():
    assert ResultCache.served_text(b'{"rows":[]}') == b'{"rows":[]}'
    assert ResultCache.served_text('{"rows":[]}') == b'{"rows":[]}'
    for raw in (None, 5, b"[]", b" {}", b"{} ", b"", b"{", b"}", ["{}"]):
        assert ResultCache.served_text(raw) is None, raw
    # The stored text: compact, sorted, ASCII only (never a raw control or non-ASCII byte sent as is).
    text = ResultCache.encode({"rows": [{"name": "Zoë\u2028</script>"}], "count": 1})
    assert text.isascii() and "\u2028" not in text and json.loads(text)["rows"][0]["name"] == "Zoë\u2028</script>"


# 2. Query templates: one shape per policy, the masked-column rule, read-only guarantees.


def test_the_masked_column_rule_holds_whichever_key_built_the_template_first(warehouse):  # noqa: F811
    """A clear key builds the templates (like on the name, sorting by it) first; a masked key calling the very same
    shapes afterwards is still refused, and an optional param absent then present does not carry a shape across."""
    config = warehouse.config(
        columns=["customer_key", "name"],
        filters=[
            {"column": "name", "op": "like", "param": "name"},
            {"column": "region", "op": "eq", "param": "region"},
        ],
        order_by=[{"column": "name", "dir": "asc"}],
    )
    prepared = Prepared(warehouse, config)
    assert prepared.check({"region": "EU"}, ADMIN)["count"] == 2
    assert prepared.check({"name": "A%"}, ADMIN)["count"] == 1
    for params in ({"region": "EU"}, {"name": "A%"}, {"name": "A%", "region": "EU"}, {}):
        refused = prepared.check(params, MASKED_HIGH)
        assert refused[:2] == (400, "column_masked"), (params, refused)
    assert prepared.check({"name": "A%"}, ADMIN)["rows"][0]["name"] == "Alice Smith"


def test_an_eq_on_a_masked_column_is_one_guess_not_a_pattern(warehouse):  # noqa: F811
    """`eq` is the one operator allowed on a masked column; its value is bound, never read as a pattern (`%`, `_`,
    GLOB's `*`/`?` on SQLite), so it confirms a value the caller already knows and nothing more."""
    config = warehouse.config(columns=["customer_key", "name"], filters=[{"column": "name", "op": "eq", "param": "n"}])
    prepared = Prepared(warehouse, config)
    for guess in ("A%", "A*", "Alice Smit_", "Alice Smit?", "[A]lice Smith", "alice smith"):
        assert prepared.check({"n": guess}, MASKED_HIGH)["rows"] == [], guess
    assert [r["customer_key"] for r in prepared.check({"n": "Alice Smith"}, MASKED_HIGH)["rows"]] == [1]


@pytest.mark.parametrize(
    "value",
    ["EU' OR '1'='1", "EU'); DELETE FROM customers; --", "EU%' --", '"; DROP TABLE orders; --', "%(x)s", "?", "\\'"],
)
def test_a_param_value_is_data_in_every_shape(warehouse, value):  # noqa: F811
    config = warehouse.config(
        columns=["customer_key"],
        filters=[
            {"column": "region", "op": "eq", "param": "r"},
            {"column": "region", "op": "in", "param": "rs"},
            {"column": "notes", "op": "like", "param": "n"},
        ],
    )
    prepared = Prepared(warehouse, config)
    before = warehouse.row_counts()
    for params in ({"r": value}, {"rs": f"{value},{value},US"}, {"n": value}):
        answer = prepared.check(params, ADMIN)
        assert isinstance(answer, dict), (params, answer)
        assert all(r["customer_key"] in (2, 5) for r in answer["rows"]) if "rs" in params else answer["rows"] == []
    assert warehouse.row_counts() == before


def test_a_row_scope_shares_no_template_with_an_unscoped_key_of_the_same_shape(warehouse):  # noqa: F811
    prepared = Prepared(warehouse, warehouse.config(filters=[{"column": "region", "op": "in", "param": "r"}]))
    scoped = KeyPolicy.from_key_fields(masking_level="unmasked", sensitivity_max="critical", row_scope={"region": "US"})
    assert {r["region"] for r in prepared.check({"r": "EU,US,APAC"}, ADMIN)["rows"]} == {"EU", "US", "APAC"}
    assert {r["region"] for r in prepared.check({"r": "EU,US,APAC"}, scoped)["rows"]} == {"US"}
    # A longer list of the same power-of-two size reuses the scoped template, and still cannot widen it.
    assert {r["region"] for r in prepared.check({"r": "EU,APAC,EU,US"}, scoped)["rows"]} == {"US"}
    assert prepared.check({"r": "EU,APAC"}, scoped)["rows"] == []


# 4. run_script on a pooled connection.


def _namespaced(redis_url: str, **kwargs) -> NamespacedRedis:
    client = NamespacedRedis.from_url(redis_url, **kwargs)
    client.key_prefix = "probe3ns:"
    return client


def test_run_script_keeps_every_key_in_the_namespace(redis_url, redis_client):
    client = _namespaced(redis_url)
    script = client.register_script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
    for name in ("plain", "../escape", "*", "other:apiary:rc:1", "{G}"):
        assert run_script(client, script, [name], ["v"]) == b"v"
        assert redis_client.get(f"probe3ns:{name}") == b"v"
        assert redis_client.exists(name) == 0
    client.close()


def test_an_error_or_a_timeout_leaves_no_reply_behind_for_the_next_call(redis_url):
    """A script error, and a reply that arrives after the caller gave up, must never be read by the next call
    that takes the same pooled connection (it would get another call's answer: a cached body, a budget)."""
    client = _namespaced(redis_url, socket_timeout=0.2, max_connections=1)
    failing = client.register_script("return redis.error_reply('boom')")
    failing.sha = client.script_load(failing.script)  # loaded: every call below runs on the pool's one connection
    with pytest.raises(redis.ResponseError):
        run_script(client, failing, ["k"], [])
    mine = client.register_script("return ARGV[1]")
    mine.sha = client.script_load(mine.script)
    assert run_script(client, mine, ["k"], ["first"]) == b"first"

    slow = client.register_script(
        "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] "
        "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - s > 400000 return 'late'"
    )
    slow.sha = client.script_load(slow.script)
    with pytest.raises(redis.TimeoutError):
        run_script(client, slow, ["k"], [])
    time.sleep(1.2)  # the slow script has ended on the server
    for n in range(5):
        assert run_script(client, mine, ["k"], [f"mine-{n}"]) == f"mine-{n}".encode()
    client.close()


def test_run_script_is_safe_from_many_threads_at_once(redis_url):
    """Every thread gets its own reply, also while the server does not know the script yet (NOSCRIPT, as after a
    Redis restart): the recovery loaded it on a second pooled connection while holding the first, so with as many
    calls as connections (a bounded pool) every one of them failed for want of a connection."""
    client = _namespaced(redis_url, max_connections=4)
    # A script the server has never seen: each thread's first call meets NOSCRIPT.
    echo = client.register_script(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}")
    wrong: list = []
    ready = threading.Barrier(4)

    def worker(n: int) -> None:
        ready.wait()
        for i in range(50):
            try:
                reply = run_script(client, echo, [f"t{n}"], [str(i)])
            except Exception as exc:  # noqa: BLE001 - recorded: the assertion names it
                wrong.append((n, i, repr(exc)))
                continue
            if reply != [f"probe3ns:t{n}".encode(), str(i).encode()]:
                wrong.append((n, i, reply))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    client.close()


# 5. Several warm jails per endpoint version.


class _FakeJail:
    def __init__(self, started_at: float) -> None:
        self.started_at, self.calls, self.killed = started_at, 1, False

    def alive(self) -> bool:
        return not self.killed

    def settled(self) -> bool:
        return True

    def kill(self) -> None:
        self.killed = True

    def forget(self) -> None:
        pass


def _slot(endpoint_id: str = "f", org_id: int = 1) -> Slot:
    key = WarmKey.for_endpoint({"org_id": org_id, "asset_id": 1, "version": 1, "endpoint_id": endpoint_id}, "x")
    return Slot(key, None, "python3")


def test_the_reaper_never_drops_a_jail_without_killing_it(monkeypatch):
    """The reaper asked `_expired` twice per jail (once to pick the jails to kill, once to pick those to keep): a
    jail crossing its age between the two was taken out of the pool and never killed, a live jail nobody owns."""
    pool = WarmPool(size=4, max_calls=100, max_age_s=10.0)
    jail = _FakeJail(started_at=100.0)
    clock = iter([109.0] + [110.5] * 50)  # checkin's own look, then the reaper's
    monkeypatch.setattr("app.sandbox.warm_pool.time.monotonic", lambda: next(clock))
    monkeypatch.setattr(pool, "_reaper", threading.current_thread())  # no reaper thread: this test runs its pass
    pool.checkin(_slot(), jail)
    pool._stop.set()
    first = {"calls": 0}
    expired = WarmPool._expired

    def crossing(self, j) -> bool:  # the jail's age crosses max_age_s between the reaper's two looks
        first["calls"] += 1
        return False if first["calls"] == 1 else expired(self, j)

    monkeypatch.setattr(WarmPool, "_expired", crossing)
    pool._reap()
    kept = [j for _, j in pool.jails()]
    assert first["calls"] >= 1  # the reaper looked at the jail
    assert jail.killed or jail in kept, "the jail left the pool alive and unowned"


def test_jails_of_one_slot_never_serve_another_slot():
    pool = WarmPool(size=8, max_calls=100, max_age_s=600)
    mine, theirs, other_org = _slot("f"), _slot("g"), _slot("f", org_id=2)
    jails = [_FakeJail(time.monotonic()) for _ in range(3)]
    for jail in jails:
        pool.checkin(mine, jail)
    assert pool.checkout(theirs) is None and pool.checkout(other_org) is None
    taken = [pool.checkout(mine) for _ in range(4)]
    assert taken[:3] == jails[::-1] and taken[3] is None
    pool.close()


def test_the_pool_bound_counts_every_idle_jail_of_every_slot():
    pool = WarmPool(size=3, max_calls=100, max_age_s=600)
    jails = [_FakeJail(time.monotonic()) for _ in range(5)]
    for i, jail in enumerate(jails):
        pool.checkin(_slot("f" if i < 3 else "g"), jail)
    assert len(pool.jails()) == 3
    assert [j.killed for j in jails] == [True, True, False, False, False]
    pool.close()
    assert all(j.killed for j in jails)


# 6. Server-Timing's cpu; 7. metrics labels.


def _timing(response) -> dict[str, float]:
    parts = {}
    for item in response.headers["Server-Timing"].split(","):
        name, _, dur = item.strip().partition(";dur=")
        parts[name] = float(dur)
    return parts


def test_server_timing_names_only_the_calls_own_parts(client, admin, service):  # noqa: F811
    from app.ops.timing import PARTS

    key = mint(client, admin, service)["key"]
    answers = [
        call(client, key, "customer", query_string={"id": "1"}),
        call(client, key, "customer", query_string={"id": "1"}),  # a hit
        call(client, key, "nope"),
        client.get("/api/service/no-such-asset/x", headers={"X-API-Key": key}),
    ]
    for answer in answers:
        parts = _timing(answer)
        assert set(parts) <= {*PARTS, "cpu", "total"}, parts
        assert 0 <= parts["cpu"] <= parts["total"], parts


def test_a_made_up_method_or_path_mints_no_metric_series(app, client):
    metrics = app.extensions["apiary_metrics"]
    assert metrics["registry"] is not None  # the test app keeps its metrics in a registry of its own
    for method in ("BREW", "X" * 40, "get", "PROPFIND"):
        client.open("/api/health", method=method)
    for path in ("/api/service/zz-made-up-1/ep", "/api/service/zz-made-up-2/ep"):
        client.get(path, headers={"X-API-Key": "dk_" + "x" * 43})
    labels = set()
    for family in metrics["registry"].collect():
        for sample in family.samples:
            labels.update(sample.labels.values())
    assert not {"BREW", "X" * 40, "get", "PROPFIND"} & labels
    assert not any("zz-made-up" in value for value in labels), labels


# 3. Composite indexes.


def test_index_targets_name_only_the_assets_own_tables_and_reflected_columns(app, client, admin, project):
    """A sorted eq query of project B naming project A's (or another organization's) physical table, or columns
    that are no column of its table, never becomes an index target: every name is resolved through B's catalog."""
    from app.datasets.index_builds import IndexTarget, index_targets
    from app.db import Dataset, PublishedAsset
    from app.extensions import db
    from tests.conftest import sign_up
    from tests.warehouse_tables import create_dataset

    theirs = create_dataset(app, project["project_id"])  # project A's table
    other = sign_up(client, "probe3-other-org")
    created = client.post("/api/projects", headers=other.headers, json={"name": "B", "slug": "b"})
    assert created.status_code == 201, created.get_json()
    other_project = created.get_json()
    mine = create_dataset(app, other_project["project_id"], "marts.own")

    def query(source: dict, order: str = "tenure", eq: str = "region") -> dict:
        return {
            "source": source,
            "columns": ["customer_key"],
            "filters": [{"column": eq, "op": "eq", "param": "r"}],
            "order_by": [{"column": order, "dir": "asc"}],
        }

    endpoints = [
        {"id": "own", "kind": "sql", "query": query({"schema": "marts", "table": "own"})},
        {"id": "physical", "kind": "sql", "query": query({"schema": theirs["schema"], "table": theirs["table"]})},
        {"id": "logical", "kind": "sql", "query": query({"schema": "marts", "table": "dim_customer"})},
        {"id": "quoted", "kind": "sql", "query": query({"schema": "marts", "table": "own"}, order='tenure"); --')},
    ]
    with app.app_context():
        asset = PublishedAsset(
            org_id=other.org_id,
            project_id=other_project["project_id"],
            asset_type="api_service",
            asset_key="probe3-index",
            title="t",
            config={"endpoints": endpoints},
        )
        targets = index_targets(asset, {"endpoints": endpoints})
        own = db.session.scalar(sa.select(Dataset.id).where(Dataset.table_name == mine["table"]))
        db.session.rollback()
    assert targets == {own: {IndexTarget(("region",)), IndexTarget(("region",), ("tenure",))}}, targets
