"""Admission control through HTTP with real workers: an endpoint's pool is exact across two web servers, a slot held
by a killed web process frees itself, a call given up at its queue timeout never runs, named queues run on their own
workers (a 503 naming the queue without one), and one organization's flood leaves room for another's calls."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.conftest import sign_up, start_worker, stop_worker, two_web_processes  # noqa: F401 - fixture
from tests.models.test_scoring import insert_model
from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import mint

SLOW = "import time\n\ndef handler(payload):\n    time.sleep(payload.get('s', 1.0))\n    return 'slept'\n"
ECHO = "def handler(payload):\n    return payload\n"
DEDICATED = "functions.dedicated,predict.fraud"


def publish(client, account, project_id: int, endpoints: list[dict], asset_key: str = "pools") -> str:
    """Publish an API service with `endpoints`; returns a minted key."""
    created = _create(client, account, project_id, key=asset_key, endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=account.headers).status_code == 200
    return mint(client, account, asset_id, rate_limit=10_000)["key"]


def post(client, key: str, endpoint: str, body, asset_key: str = "pools"):
    return client.post(f"/api/service/{asset_key}/{endpoint}", headers={"X-API-Key": key}, json=body)


def wait_for_queue(app, queue: str) -> None:
    from tasks.calls import queue_has_worker

    deadline = time.monotonic() + 15
    with app.app_context():
        while not queue_has_worker(queue):
            assert time.monotonic() < deadline, f"no heartbeat on {queue}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def dedicated_worker(app, test_env, tmp_path_factory):
    """A worker of one process for the named queues functions.dedicated and predict.fraud only."""
    log_path = tmp_path_factory.mktemp("dedicated") / "worker.log"
    proc = start_worker(app, test_env, log_path, DEDICATED, f"dedicated-{uuid.uuid4().hex[:6]}@%h", concurrency=1)
    yield log_path
    stop_worker(proc)


# --- saving -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pool,field",
    [
        ({"max_in_flight": 0}, "pool.max_in_flight"),
        ({"max_in_flight": "8"}, "pool.max_in_flight"),
        ({"max_in_flight": True}, "pool.max_in_flight"),
        ({"max_queued": -1}, "pool.max_queued"),
        ({"queue_timeout_ms": 0}, "pool.queue_timeout_ms"),
        ({"queue_timeout_ms": 10**9}, "pool.queue_timeout_ms"),
        ({"queue": "predict"}, "pool.queue"),  # a function's work never goes to the predict workers
        ({"queue": "functions.Billing"}, "pool.queue"),
        ({"queue": "functions."}, "pool.queue"),
        ({"queue": "functions.a/../b"}, "pool.queue"),
        ({"queue": "functions.x y"}, "pool.queue"),
        ({"queue": "default"}, "pool.queue"),
        ({"queue": 7}, "pool.queue"),
        ({"burst": 4}, "pool.burst"),
        ("fast", "pool"),
    ],
)
def test_a_bad_pool_is_422_naming_the_field(client, admin, project, pool, field):
    endpoint = {"id": "f", "kind": "function", "handler": ECHO, "pool": pool}
    resp = _create(client, admin, project["project_id"], key="pools", endpoints=[endpoint])
    assert resp.status_code == 422, resp.get_json()
    assert list(resp.get_json()["error"]["details"]["fields"]) == [f"config.endpoints[0].{field}"]


def test_a_pool_is_saved_with_its_defaults_and_only_on_model_and_function_endpoints(app, client, admin, project):
    pid = project["project_id"]
    model_id = insert_model(app, pid, _regressor())
    endpoints = [
        {"id": "f", "kind": "function", "handler": ECHO, "pool": {"queue": "functions.billing"}},
        {"id": "m", "kind": "model", "model_id": model_id, "pool": {"max_in_flight": 2}},
    ]
    created = _create(client, admin, pid, key="pools", endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    saved = created.get_json()["config"]["endpoints"]
    assert saved[0]["pool"] == {
        "max_in_flight": 8,
        "max_queued": 32,
        "queue_timeout_ms": 2000,
        "queue": "functions.billing",
    }
    assert saved[1]["pool"] == {"max_in_flight": 2, "max_queued": 32, "queue_timeout_ms": 2000, "queue": "predict"}

    for bad, field in [
        ({"id": "m", "kind": "model", "model_id": model_id, "pool": {"queue": "functions.x"}}, "pool.queue"),
        ({"id": "m", "kind": "model", "model_id": model_id, "pool": {"queue": "predict.Fraud"}}, "pool.queue"),
        (
            {"id": "s", "kind": "lookup", "dataset": "marts.x", "key_column": "id", "pool": {"max_in_flight": 1}},
            "pool",
        ),
    ]:
        resp = _create(client, admin, pid, key=f"bad-{uuid.uuid4().hex[:6]}", endpoints=[bad])
        assert resp.status_code == 422, resp.get_json()
        assert list(resp.get_json()["error"]["details"]["fields"]) == [f"config.endpoints[0].{field}"]


def _regressor():
    from tests.models.slow_estimator import SlowRegressor

    return SlowRegressor(seconds=0).fit([[0.0]], [0.0])


# --- the pool, across web servers -------------------------------------------------------------------------------


def test_pool_limits_are_exact_across_two_web_servers(client, admin, project, live_worker, two_web_processes):  # noqa: F811
    pool = {"max_in_flight": 2, "max_queued": 2, "queue_timeout_ms": 30_000}
    key = publish(
        client, admin, project["project_id"], [{"id": "slow", "kind": "function", "handler": SLOW, "pool": pool}]
    )
    urls = [f"http://127.0.0.1:{port}/api/service/pools/slow" for port in two_web_processes]
    for url in urls * 2:  # each server warmed up: its caches, its first audit flush (which imports task modules)
        assert httpx.post(url, headers={"X-API-Key": key}, json={"s": 0}, timeout=60).status_code == 200
    go = threading.Barrier(12)
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=12))

    def hit(i: int):
        go.wait()
        started = time.monotonic()
        resp = http.post(urls[i % 2], headers={"X-API-Key": key}, json={"s": 3})
        return resp, time.monotonic() - started

    with http, ThreadPoolExecutor(max_workers=12) as threads:
        results = list(threads.map(hit, range(12)))
    answered = [resp for resp, _ in results if resp.status_code == 200]
    refused = [(resp, took) for resp, took in results if resp.status_code == 503]
    assert len(answered) == 4 and len(refused) == 8, [r.status_code for r, _ in results]
    assert all(resp.json() == {"result": "slept"} for resp in answered)
    for resp, took in refused:
        error = resp.json()["error"]
        assert error["code"] == "overloaded" and error["details"] == {"reason": "full"}, error
        assert resp.headers["Retry-After"] == "1"
        # The first slot frees after 3 s: a refusal answered sooner did not wait for one.
        assert took < 2.5, f"a refusal took {took:.2f} s: refused at once, not after waiting"


def _kill_web_server(port: int) -> None:
    """SIGKILL the gunicorn server bound to `port`, its master and its worker at once: a web host that dies."""
    bind = f"127.0.0.1:{port}"
    victims = [p for p in psutil.Process().children(recursive=True) if bind in " ".join(_cmdline(p))]
    assert len(victims) >= 2, f"expected a gunicorn master and worker on {bind}, found {victims}"
    for proc in victims:
        proc.kill()
    gone, alive = psutil.wait_procs(victims, timeout=10)
    assert not alive, alive


def _cmdline(proc: psutil.Process) -> list[str]:
    """A process's command line; none for one that exited meanwhile (another test's child not yet reaped)."""
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def pool_held(app, asset_key: str, endpoint_id: str) -> int:
    """Slots of the endpoint's pool held now, as Redis counts them."""
    from app.db import PublishedAsset
    from app.extensions import db, redis_store
    from app.serving.admission import pool_key
    from tasks.leases import LeasedSemaphore

    with app.app_context():
        asset_id = db.session.query(PublishedAsset.id).filter_by(asset_key=asset_key).scalar()
        return LeasedSemaphore(redis_store.get(), pool_key(asset_id, endpoint_id)).held()


def test_a_slot_held_by_a_killed_web_process_frees_itself(app, client, admin, project, live_worker, two_web_processes):  # noqa: F811
    pool = {"max_in_flight": 1, "max_queued": 0, "queue_timeout_ms": 1000}
    key = publish(
        client, admin, project["project_id"], [{"id": "slow", "kind": "function", "handler": SLOW, "pool": pool}]
    )
    doomed, survivor = (f"http://127.0.0.1:{port}/api/service/pools/slow" for port in two_web_processes)
    headers = {"X-API-Key": key}

    def hold() -> None:
        try:
            httpx.post(doomed, headers=headers, json={"s": 4}, timeout=30)
        except httpx.HTTPError:
            pass  # the server is killed under it

    holder = threading.Thread(target=hold)
    holder.start()
    deadline = time.monotonic() + 10
    while pool_held(app, "pools", "slow") < 1:  # until the doomed server's call holds the only slot
        assert time.monotonic() < deadline and holder.is_alive(), "the call on the doomed server never took the slot"
        time.sleep(0.02)
    probe = httpx.post(survivor, headers=headers, json={"s": 0}, timeout=30)
    assert probe.status_code == 503 and probe.json()["error"]["details"] == {"reason": "full"}, probe.text
    _kill_web_server(two_web_processes[0])
    killed = time.monotonic()
    holder.join(timeout=30)
    assert httpx.post(survivor, headers=headers, json={"s": 0}, timeout=30).status_code == 503  # still leased
    # The lease: queue_timeout_ms + the function's deadline and the jail's grace + 2 s (1 + 10 + 2 s here).
    while True:
        resp = httpx.post(survivor, headers=headers, json={"s": 0}, timeout=30)
        if resp.status_code == 200:
            break
        assert resp.status_code == 503 and time.monotonic() - killed < 20, resp.text
        time.sleep(0.25)
    assert resp.json() == {"result": "slept"}


# --- queue timeouts and named queues ----------------------------------------------------------------------------


def test_a_call_past_its_queue_timeout_is_503_and_its_task_never_runs(
    app, client, admin, project, dedicated_worker, redis_client
):
    wait_for_queue(app, "functions.dedicated")
    pool = {"max_in_flight": 3, "max_queued": 0, "queue_timeout_ms": 800, "queue": "functions.dedicated"}
    key = publish(
        client, admin, project["project_id"], [{"id": "slow", "kind": "function", "handler": SLOW, "pool": pool}]
    )
    # One call first: its jail, and the web process's first audit flush (which imports the task modules), are ready.
    assert post(client, key, "slow", {"s": 0}).status_code == 200
    go = threading.Barrier(3)

    def hit(_):
        go.wait()
        started = time.monotonic()
        resp = post(client, key, "slow", {"s": 2})
        return resp.status_code, resp.get_json(), time.monotonic() - started

    # One worker process: the first call runs for 2 s, the other two sit in the broker past their 0.8 s.
    with ThreadPoolExecutor(max_workers=3) as threads:
        results = list(threads.map(hit, range(3)))
    assert sorted(status for status, _, _ in results) == [200, 503, 503], results
    for status, body, took in results:
        if status == 503:
            assert body["error"]["code"] == "overloaded" and body["error"]["details"] == {"reason": "queue_timeout"}
            assert took < 2, f"given up after {took:.2f} s, not at its queue timeout"

    # Every task sent carries a claim: the two that ran are `started`; the two given up are `skipped` once the
    # worker reaches them, the work not done.
    deadline = time.monotonic() + 20
    while True:
        claims = sorted(redis_client.get(k).decode() for k in redis_client.scan_iter(match="*apiary:claim:*"))
        if claims == ["skipped", "skipped", "started", "started"]:
            break
        assert time.monotonic() < deadline, claims
        time.sleep(0.2)


def test_a_named_queue_runs_on_its_own_workers_and_without_one_is_503_naming_it(
    app, client, admin, project, dedicated_worker
):
    wait_for_queue(app, "predict.fraud")
    model_id = insert_model(app, project["project_id"], _regressor())
    endpoints = [
        {"id": "fraud", "kind": "model", "model_id": model_id, "pool": {"queue": "predict.fraud"}},
        {"id": "orphan", "kind": "model", "model_id": model_id, "pool": {"queue": "predict.nobody"}},
    ]
    key = publish(client, admin, project["project_id"], endpoints)
    resp = post(client, key, "fraud", {"features": {"x": 1.0}})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["count"] == 1
    # The shared workers do not consume predict.fraud: the dedicated worker scored it.
    assert "tasks.predict.score" in dedicated_worker.read_text()
    # Each worker announces its pool size per queue with its heartbeat: the capacity the fair share divides.
    from app.extensions import redis_store
    from tasks.leases import queue_capacity

    with app.app_context():
        assert queue_capacity(redis_store.get(), "predict.fraud") == 1
        assert queue_capacity(redis_store.get(), "predict.nobody") == 0

    started = time.monotonic()
    orphan = post(client, key, "orphan", {"features": {"x": 1.0}})
    assert orphan.status_code == 503, orphan.get_json()
    error = orphan.get_json()["error"]
    assert error["code"] == "no_worker" and "predict.nobody" in error["message"]
    assert error["details"] == {"queue": "predict.nobody"} and orphan.headers["Retry-After"]
    assert time.monotonic() - started < 2


# --- the fair share of a shared queue ---------------------------------------------------------------------------


def test_one_organization_flooding_a_shared_queue_leaves_room_for_another(app, client, admin, project, live_worker):
    from app.extensions import redis_store
    from tasks.calls import fair_share_limit
    from tasks.leases import LeasedSemaphore

    flood_key = publish(client, admin, project["project_id"], [{"id": "slow", "kind": "function", "handler": SLOW}])
    other = sign_up(client)
    other_project = client.post("/api/projects", headers=other.headers, json={"name": "B", "slug": "b"}).get_json()
    other_key = publish(
        client, other, other_project["project_id"], [{"id": "echo", "kind": "function", "handler": ECHO}], "other"
    )
    assert post(client, other_key, "echo", {"n": 0}, "other").status_code == 200  # its jail warmed up

    with app.app_context():
        share = fair_share_limit("functions")
        flooder = LeasedSemaphore(redis_store.get(), f"apiary:fair:functions:{admin.org_id}")
    # The session's worker has two processes on the functions queue; half of them is one slot.
    assert share == 1

    held: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with app.app_context():
            while not stop.is_set():
                held.append(flooder.held())
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(max_workers=4) as threads:
        flood = [threads.submit(post, client, flood_key, "slow", {"s": 1.5}) for _ in range(4)]
        time.sleep(0.5)
        took = []
        for n in range(3):
            started = time.monotonic()
            resp = post(client, other_key, "echo", {"n": n}, "other")
            took.append(time.monotonic() - started)
            assert resp.status_code == 200 and resp.get_json() == {"result": {"n": n}}, resp.get_json()
        # Without the fair share, the flood's four 1.5 s calls hold both worker processes: 1.5 s at least.
        assert max(took) < 1.0, took
        flooded = [f.result() for f in flood]
    stop.set()
    watcher.join()
    assert [r.status_code for r in flooded] == [200] * 4, [r.get_json() for r in flooded]
    assert max(held) == share, held


def test_the_worker_gives_the_fair_share_slot_back_with_its_reply(
    app, client, admin, project, live_worker, monkeypatch
):
    """A call answered gives its organization's slot back in the worker's reply round trip, not in one of the web
    process's own; when replies go to another Redis than the slots (CELERY_RESULT_BACKEND elsewhere), the web process
    gives it back, as before."""
    import tasks.calls
    from app.extensions import redis_store
    from tasks.leases import LeasedSemaphore

    key = publish(client, admin, project["project_id"], [{"id": "echo", "kind": "function", "handler": ECHO}])
    assert post(client, key, "echo", {"n": 0}).status_code == 200  # its jail warmed up
    web_releases: list[str] = []
    original = LeasedSemaphore.release

    def counted(self, member: str) -> None:
        web_releases.append(member)
        original(self, member)

    monkeypatch.setattr(LeasedSemaphore, "release", counted)
    with app.app_context():
        fair = LeasedSemaphore(redis_store.get(), f"apiary:fair:functions:{admin.org_id}")
        for n in range(3):
            answer = post(client, key, "echo", {"n": n})
            assert answer.status_code == 200 and answer.get_json() == {"result": {"n": n}}, answer.get_json()
            assert fair.held() == 0  # free as soon as the answer is
        assert web_releases == []

        monkeypatch.setattr(tasks.calls, "_replies_share_redis", lambda: False)
        answer = post(client, key, "echo", {"n": 9})
        assert answer.status_code == 200 and fair.held() == 0
        assert len(web_releases) == 1  # the worker was not asked to: the web process released it
