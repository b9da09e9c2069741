"""The README's promises about model calls, observed where they happen: on the worker, on a second web server.

- a model task past its deadline expires unrun (the worker never scores it);
- concurrent requests for one model reach the worker as fewer scoring calls;
- a revocation made on one web server is effective on the next call on another;
- a dead worker turns /readyz and model calls into 503 within the heartbeat window.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.redis_server import free_port, start_private_redis
from app.serving.dispatch import model_for_endpoint
from tests.models.slow_estimator import RecordingRegressor, recorded_calls
from tests.models.test_scoring import insert_model, predict, publish_models
from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
ONE_ROW = {"features": {"x": 1.0}}
# The README: 503 "when no worker beat in the last 6 s"; workers beat every 2 s; 2 s of slack for the test.
HEARTBEAT_WINDOW_S = 6 + 2 + 2


def _recording_model(app, project_id: int, marker: Path, name: str, seconds: float = 0.0) -> int:
    return insert_model(app, project_id, RecordingRegressor(str(marker), seconds).fit([[0.0]], [0.0]), name=name)


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_model_task_past_its_deadline_never_runs_on_the_worker(
    app, client, admin, project, live_worker, tmp_path, monkeypatch
):
    pid = project["project_id"]
    busy_a, busy_b, late = tmp_path / "busy_a", tmp_path / "busy_b", tmp_path / "late"
    models = {
        "busy_a": _recording_model(app, pid, busy_a, "busy_a", seconds=3),
        "busy_b": _recording_model(app, pid, busy_b, "busy_b", seconds=3),
        "late": _recording_model(app, pid, late, "late"),
    }
    key = publish_models(client, admin, pid, models)
    # Both pool processes of the worker (concurrency 2) are kept busy by two tasks sent straight to the queue, as
    # another web server's calls would be: through this one, the organization's fair share (one of the two slots)
    # would hold the late call back before its task was ever sent, and the expiry would go untested.
    with app.app_context():
        for name in ("busy_a", "busy_b"):
            model = model_for_endpoint(models[name], pid)
            payload = {f: getattr(model, f) for f in ("id", "artifact_path", "artifact_sha256", "sklearn_version")}
            payload["input_schema"] = model.input_schema
            app.extensions["celery"].send_task(
                "tasks.predict.score", args=[payload, [ONE_ROW["features"]]], queue="predict"
            )
    _wait_for(lambda: recorded_calls(busy_a) and recorded_calls(busy_b), 15, "both pool processes to be busy")

    monkeypatch.setitem(app.config, "PREDICT_TIMEOUT_SECONDS", 1)
    started = time.monotonic()
    resp = predict(client, key, "late", ONE_ROW)
    assert resp.status_code == 504, resp.get_json()
    assert time.monotonic() - started < 3
    # The worker is free again and has had time to take the queued task: it must have dropped it, unrun.
    time.sleep(3)
    assert recorded_calls(late) == [], "the worker scored a task whose caller had already been answered 504"

    # The marker does record a call that runs: the same model answers once the worker is free.
    monkeypatch.setitem(app.config, "PREDICT_TIMEOUT_SECONDS", 10)
    assert predict(client, key, "late", ONE_ROW).status_code == 200
    assert recorded_calls(late) == [1]


def test_concurrent_http_calls_for_one_model_reach_the_worker_as_fewer_tasks(
    app, client, admin, project, live_worker, two_web_processes, tmp_path
):
    pid = project["project_id"]
    marker = tmp_path / "grouped"
    key = publish_models(client, admin, pid, {"grouped": _recording_model(app, pid, marker, "grouped", 0.5)})
    url = f"http://127.0.0.1:{two_web_processes[0]}/api/service/models-serving/grouped"
    calls = 12

    def call(i: int) -> httpx.Response:
        return httpx.post(url, headers={"X-API-Key": key}, json={"features": {"x": float(i)}}, timeout=20)

    with ThreadPoolExecutor(max_workers=calls) as pool:
        answers = list(pool.map(call, range(calls)))
    assert [a.status_code for a in answers] == [200] * calls, [a.text for a in answers if a.status_code != 200]
    assert all(a.json()["count"] == 1 and len(a.json()["predictions"]) == 1 for a in answers)
    tasks = recorded_calls(marker)
    assert sum(tasks) == calls, tasks
    assert len(tasks) < calls / 2, f"{calls} calls were scored as {len(tasks)} tasks: {tasks}"


def test_a_call_queued_behind_another_for_its_model_is_answered_by_its_own_deadline(
    app, client, admin, project, live_worker, tmp_path, monkeypatch
):
    """PREDICT_TIMEOUT_SECONDS bounds the whole call: a call grouped behind one in flight for the same model is sent
    with what is left of its time, and is a 504 at its deadline (it used to get a fresh deadline once sent: up to
    twice the configured one)."""
    pid = project["project_id"]
    marker = tmp_path / "queued"
    key = publish_models(client, admin, pid, {"queued": _recording_model(app, pid, marker, "queued", seconds=1.5)})
    monkeypatch.setitem(app.config, "PREDICT_TIMEOUT_SECONDS", 2)
    # About 1.4 s in line behind the first call, then 1.5 s of scoring: past its 2 s.
    _second_call_is_a_504_at_its_deadline(app, client, key, ("queued", marker), "queued")


def _second_call_is_a_504_at_its_deadline(app, client, key: str, first: tuple[str, Path], second: str) -> None:
    """Call endpoint `first[0]` (its model writes marker `first[1]`) from a thread; once it is scoring, call `second`,
    which must be a 504 at its 2 s deadline while the first is answered."""
    answered: list[int] = []
    holder = threading.Thread(
        target=lambda: answered.append(predict(app.test_client(), key, first[0], ONE_ROW).status_code)
    )
    holder.start()
    _wait_for(lambda: recorded_calls(first[1]), 15, "the first call to be scoring")
    started = time.monotonic()
    resp = predict(client, key, second, ONE_ROW)
    waited = time.monotonic() - started
    holder.join(timeout=20)
    assert answered == [200]
    assert resp.status_code == 504 and resp.get_json()["error"]["code"] == "timeout", resp.get_json()
    assert resp.get_json()["error"]["message"] == "no answer within 2 s"
    assert 1.8 < waited < 2.6, waited


def test_a_call_waiting_for_its_organizations_share_is_answered_by_its_own_deadline(
    app, client, admin, project, live_worker, tmp_path, monkeypatch
):
    """Without a pool, PREDICT_TIMEOUT_SECONDS bounds the call's wait for a slot of its organization's fair share too
    (FAIR_SHARE 0.5 of the session worker's 2 processes: one call at a time): it used to wait up to its deadline for
    the slot, then a whole deadline more for the answer."""
    pid = project["project_id"]
    first_marker, second_marker = tmp_path / "first", tmp_path / "second"
    key = publish_models(
        client,
        admin,
        pid,
        {
            "first": _recording_model(app, pid, first_marker, "first", seconds=1.5),
            "second": _recording_model(app, pid, second_marker, "second", seconds=1.5),
        },
    )
    monkeypatch.setitem(app.config, "PREDICT_TIMEOUT_SECONDS", 2)
    # About 1.4 s for the organization's one slot, then 1.5 s of scoring: past its 2 s.
    _second_call_is_a_504_at_its_deadline(app, client, key, ("first", first_marker), "second")


def test_a_pooled_call_is_never_grouped_behind_a_call_of_another_pool(
    app, client, admin, project, live_worker, tmp_path
):
    """Two endpoints on one model, one with a pool: a call of the pooled endpoint that arrives while the other's call
    is scoring is not queued behind it (grouped calls go out with their leader's route), so its pool's
    queue_timeout_ms holds: a 503 in about 0.3 s, not after the other call's 5 s of scoring."""
    from tests.publishing.test_assets import _create

    pid = project["project_id"]
    marker = tmp_path / "shared"
    model_id = _recording_model(app, pid, marker, "shared", seconds=5)
    pool = {"max_in_flight": 2, "max_queued": 8, "queue_timeout_ms": 300}
    endpoints = [
        {"id": "free", "kind": "model", "model_id": model_id},
        {"id": "pooled", "kind": "model", "model_id": model_id, "pool": pool},
    ]
    created = _create(client, admin, pid, key="models-serving", endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    key = mint(client, admin, asset_id, rate_limit=1000)["key"]

    answered: list[int] = []
    holder = threading.Thread(
        target=lambda: answered.append(predict(app.test_client(), key, "free", ONE_ROW).status_code)
    )
    holder.start()
    _wait_for(lambda: recorded_calls(marker), 15, "the free endpoint's call to be scoring")
    started = time.monotonic()
    # The organization's one slot of the shared queue is the free call's: the pooled call waits for it until its
    # queue timeout.
    resp = predict(client, key, "pooled", ONE_ROW)
    waited = time.monotonic() - started
    holder.join(timeout=20)
    assert answered == [200]
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "overloaded", resp.get_json()
    assert waited < 3, waited


def test_a_revocation_on_one_server_is_effective_on_the_next_call_on_another(client, admin, service, two_web_processes):  # noqa: F811
    key = mint(client, admin, service)
    first, second = (f"http://127.0.0.1:{port}" for port in two_web_processes)
    for base in (first, second):  # both servers have served (and could have remembered) the key
        assert httpx.get(f"{base}/api/service/sales-serving/top", headers={"X-API-Key": key["key"]}).status_code == 200
    revoked = httpx.delete(f"{second}/api/publish/assets/{service}/api-keys/{key['id']}", headers=admin.headers)
    assert revoked.status_code in (200, 204), revoked.text
    resp = httpx.get(f"{first}/api/service/sales-serving/top", headers={"X-API-Key": key["key"]})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "key_revoked", resp.text


@pytest.fixture()
def own_stack(test_env, tmp_path):
    """A web server and a worker with a Redis of their own (so the session's worker is not theirs), on the
    session's database: the worker can be killed without harming other tests."""
    redis_proc, redis_url = start_private_redis(str(tmp_path / "redis"))
    env = {**os.environ, **test_env, "REDIS_URL": redis_url}
    port = free_port()
    web_log, worker_log = open(tmp_path / "web.log", "wb"), open(tmp_path / "worker.log", "wb")
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=web_log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_worker",
            "worker",
            "-Q",
            "predict",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"doomed-{port}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        yield base, worker
    finally:
        for proc in (web,):
            proc.terminate()
            proc.wait(timeout=10)
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        web_log.close()
        worker_log.close()


def _scores(url: str, key: str) -> int:
    try:
        return httpx.post(url, headers={"X-API-Key": key}, json=ONE_ROW, timeout=30).status_code
    except httpx.HTTPError:
        return 0


def test_a_killed_worker_turns_readyz_and_model_calls_into_503_within_the_heartbeat_window(
    app, client, admin, project, own_stack, tmp_path
):
    base, worker = own_stack
    pid = project["project_id"]
    marker = tmp_path / "scored"
    key = publish_models(client, admin, pid, {"risk": _recording_model(app, pid, marker, "risk")})

    def ready() -> httpx.Response | None:
        try:
            return httpx.get(f"{base}/readyz", timeout=5)
        except httpx.HTTPError:
            return None

    _wait_for(lambda: (r := ready()) is not None and r.status_code == 200, 60, "the own stack to be ready")
    url = f"{base}/api/service/models-serving/risk"
    # The first call loads the model on the worker: on a loaded machine that may take a few tries.
    _wait_for(lambda: _scores(url, key) == 200, 60, "the worker to score a first call")
    scored = len(recorded_calls(marker))

    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, as the OOM killer would
    worker.wait(timeout=10)
    killed = time.monotonic()
    _wait_for(lambda: (r := ready()) is not None and r.status_code == 503, HEARTBEAT_WINDOW_S, "/readyz to be 503")
    assert time.monotonic() - killed <= HEARTBEAT_WINDOW_S
    started = time.monotonic()
    resp = httpx.post(url, headers={"X-API-Key": key}, json=ONE_ROW, timeout=10)
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "no_worker", resp.text
    assert time.monotonic() - started < 2, "a call with no live worker must be refused at once"
    assert len(recorded_calls(marker)) == scored
