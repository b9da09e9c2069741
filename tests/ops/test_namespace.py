"""Two installations on one Redis never see each other's work: queues, broadcasts, results and Apiary's keys all
carry the installation's namespace (derived from its metadata database URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from app.namespace import namespaced_redis

ROOT = Path(__file__).resolve().parents[2]


def _installation_env(var: Path, redis_url: str) -> dict[str, str]:
    return {
        "APP_CONFIG": "testing",
        "APIARY_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'apiary.db'}",
        "WAREHOUSE_URL": f"sqlite:///{var / 'warehouse' / 'main.db'}",
        "MODEL_STORE": str(var / "models"),
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
    }


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    # Both workers get the same node name, the harshest case: broadcasts must still never cross installations.
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_worker",
        "worker",
        "-Q",
        "predict,train,functions,default",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "-n",
        "shared@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    env = {**os.environ, **env}
    env.pop("APIARY_NAMESPACE", None)
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for_heartbeat(inst, proc: subprocess.Popen, log: Path) -> None:
    from app.ops.health import worker_processes

    deadline = time.monotonic() + 60
    while not any(w["pid"] == proc.pid for w in worker_processes(inst)):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the worker never announced itself:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture()
def two_installations(app, tmp_path, redis_url, monkeypatch):
    """Two app configs with different DATABASE_URLs on the session's one Redis."""
    from app import create_app

    made = []
    for name in ("a", "b"):
        env = _installation_env(tmp_path / name, redis_url)
        with monkeypatch.context() as patch:
            patch.delenv("APIARY_NAMESPACE", raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            made.append((create_app("testing"), env))
    return made


def test_two_installations_on_one_redis_never_share_work(app, two_installations, redis_url, tmp_path):
    from app.extensions import redis_store
    from app.ops.health import worker_processes
    from app.serving.audit import AuditBuffer

    (app_a, env_a), (app_b, env_b) = two_installations
    ns_a, ns_b = app_a.config["APIARY_NAMESPACE"], app_b.config["APIARY_NAMESPACE"]
    assert ns_a != ns_b and ns_a.startswith("apiary-")
    raw = redis.Redis.from_url(redis_url)
    keys_before = set(raw.keys("*"))
    celery_a, celery_b = app_a.extensions["celery"], app_b.extensions["celery"]

    worker_a = _start_worker(env_a, tmp_path / "a.log")
    worker_b = None
    try:
        _wait_for_heartbeat(app_a, worker_a, tmp_path / "a.log")
        # B has no worker yet: its task waits in B's queue; A's worker, on the same Redis, never takes it.
        pending = celery_b.send_task("tasks.system.ping", queue="default")
        time.sleep(3)
        assert pending.state == "PENDING"
        assert redis_store.get(app_b).llen("default") == 1
        assert redis_store.get(app_a).llen("default") == 0
        assert worker_processes(app_b) == []
        assert [w["pid"] for w in worker_processes(app_a)] == [worker_a.pid]
        # A's work is answered by A's worker.
        answer = celery_a.send_task("tasks.system.ping", queue="default").get(timeout=20)
        assert psutil.Process(answer["pid"]).ppid() == worker_a.pid

        worker_b = _start_worker(env_b, tmp_path / "b.log")
        _wait_for_heartbeat(app_b, worker_b, tmp_path / "b.log")
        # B's waiting task is answered by B's worker, now that it runs.
        assert psutil.Process(pending.get(timeout=20)["pid"]).ppid() == worker_b.pid
        for celery, worker in ((celery_a, worker_a), (celery_b, worker_b)):
            pids = {celery.send_task("tasks.system.ping", queue="default").get(timeout=20)["pid"] for _ in range(6)}
            assert {psutil.Process(pid).ppid() for pid in pids} == {worker.pid}
            # The broadcast (pidbox) reaches only the installation's own worker, though both are "shared@host".
            assert len(celery.control.ping(timeout=1)) == 1
        assert [w["pid"] for w in worker_processes(app_a)] == [worker_a.pid]
        assert [w["pid"] for w in worker_processes(app_b)] == [worker_b.pid]

        # Apiary's own keys: A's audit buffer and rate limits are invisible to B.
        AuditBuffer(redis_store.get(app_a)).record({"key_id": 1, "asset_id": 1})
        assert AuditBuffer(redis_store.get(app_b)).drain() == []
        assert [e["key_id"] for e in AuditBuffer(redis_store.get(app_a)).drain()] == [1]
        AuditBuffer(redis_store.get(app_b)).record({"key_id": 2, "asset_id": 2})
        assert list(redis_store.get(app_a).scan_iter(match="apiary:audit")) == []
        assert list(redis_store.get(app_b).scan_iter(match="apiary:audit")) == [b"apiary:audit"]
    finally:
        for proc in (worker_a, worker_b):
            if proc is not None:
                _stop(proc)

    # Every key these two installations wrote, Celery's included, lies under one of their namespaces.
    session_ns = app.config["APIARY_NAMESPACE"] + ":"  # the session's own worker, if running, beats meanwhile
    new_keys = {key.decode() for key in set(raw.keys("*")) - keys_before}
    assert any(key.startswith(f"{ns_a}:") for key in new_keys)
    assert any(key.startswith(f"{ns_b}:") for key in new_keys)
    stray = {k for k in new_keys if not k.startswith((f"{ns_a}:", f"{ns_b}:", session_ns))}
    assert stray == set(), stray


def test_namespaced_client_prefixes_keys_and_refuses_what_it_cannot_place(redis_url):
    one = namespaced_redis(redis_url, "ns-one")
    two = namespaced_redis(redis_url, "ns-two")
    raw = redis.Redis.from_url(redis_url)
    one.set("apiary:k", "1")
    one.rpush("apiary:list", "x")
    pipe = one.pipeline()
    pipe.hset("apiary:h", "f", "v")
    pipe.mget("apiary:k", "apiary:none")
    assert pipe.execute()[1] == [b"1", None]
    assert raw.get("ns-one:apiary:k") == b"1" and raw.get("apiary:k") is None
    assert two.get("apiary:k") is None and two.exists("apiary:list", "apiary:h") == 0
    assert sorted(one.scan_iter(match="apiary:*")) == [b"apiary:h", b"apiary:k", b"apiary:list"]
    assert list(two.scan_iter()) == []
    script = one.register_script("return redis.call('INCR', KEYS[1])")
    assert script(keys=["apiary:counter"]) == 1
    assert raw.get("ns-one:apiary:counter") == b"1"
    with pytest.raises(redis.RedisError, match="FLUSHDB is not allowed"):
        one.flushdb()
    one.delete("apiary:k", "apiary:list", "apiary:h", "apiary:counter")
    assert raw.keys("ns-one:*") == []
