"""Shared fixtures: a real Redis, databases, the app, a live Celery worker, users and projects.

The suite runs on SQLite; with TEST_DATABASE_URL set (a PostgreSQL URL) the metadata and the warehouse live there
instead, each run in schemas of its own that are dropped at the end.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.redis_server import free_port, redis_answers, start_private_redis
from app.warehouse.engine import create_warehouse_engine

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> str:
    """REDIS_URL when it answers (database 15, so nothing else is touched), else a private redis-server."""
    env_url = os.environ.get("REDIS_URL")
    if redis_answers(env_url):
        base = env_url.rsplit("/", 1)[0] if env_url.count("/") > 2 else env_url
        url = f"{base}/15"
        import redis

        redis.Redis.from_url(url).flushdb()
        yield url
        return
    proc, url = start_private_redis(str(tmp_path_factory.mktemp("redis")))
    yield url
    # Celery task results unsubscribe from Redis when collected; collect them while it still answers, or each
    # one retries against the stopped server for 20 s at exit.
    gc.collect()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    _forget_apiary_keys(client)
    yield client
    client.close()


def _postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def metadata_schema():
    """On PostgreSQL, a private schema for this run's metadata tables (dropped at the end)."""
    pg = _postgres_url()
    if not pg:
        yield None
        return
    schema = f"apiary_test_{RUN_ID}"
    engine = sa.create_engine(pg)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield schema
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        for (name,) in conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %(p)s", {"p": f"w{RUN_ID}%"}
        ):
            conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
    engine.dispose()


@pytest.fixture(scope="session")
def test_env(tmp_path_factory, redis_url, metadata_schema) -> dict[str, str]:
    """The environment the app and the worker share; also exported to os.environ for create_app."""
    var = tmp_path_factory.mktemp("var")
    pg = _postgres_url()
    env = {
        "APP_CONFIG": "testing",
        "APIARY_VAR_DIR": str(var),
        "REDIS_URL": redis_url,
        "MODEL_STORE": str(var / "models"),
        "LOG_LEVEL": "WARNING",
        "PREDICT_TIMEOUT_SECONDS": "10",
        # Secrets the app and the worker really hold, so the sandbox tests show a handler never sees them.
        "SECRET_KEY": f"test-secret-key-{RUN_ID}-{uuid.uuid4().hex}",
        "JWT_SECRET_KEY": f"test-jwt-secret-key-{RUN_ID}-{uuid.uuid4().hex}",
    }
    if pg:
        sep = "&" if "?" in pg else "?"
        env["DATABASE_URL"] = f"{pg}{sep}options=-csearch_path%3D{metadata_schema}"
        env["WAREHOUSE_URL"] = pg
        env["WAREHOUSE_SCHEMA_PREFIX"] = f"w{RUN_ID}_"
    else:
        env["DATABASE_URL"] = f"sqlite:///{var / 'apiary.db'}"
        env["WAREHOUSE_URL"] = f"sqlite:///{var / 'warehouse' / 'main.db'}"
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY", "JWT_SECRET_KEY", "WAREHOUSE_DIR"):
        os.environ.pop(name, None)
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def app(test_env):
    from flask_migrate import upgrade

    from app import create_app

    application = create_app("testing")
    with application.app_context():
        upgrade()
    _SUITE_APP.append(application)
    return application


_SUITE_APP: list = []  # the session's app, once made


@pytest.fixture(autouse=True)
def _clean_state(request):
    """After each test: give the suite's app its Celery app back as the current and default one; after each test
    that used the app, empty every metadata table and the Redis database."""
    yield
    if _SUITE_APP:
        # Making another app (create_app) makes its Celery app the current and default one, and a test that made
        # one to point at a dead Redis would leave every later send on that broker: give the suite's app its place.
        _SUITE_APP[0].extensions["celery"].set_current()
        _SUITE_APP[0].extensions["celery"].set_default()
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    from app.extensions import db, redis_store

    with application.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        from app.serving.audit_outbox import audit_outbox

        audit_outbox(application).flush()  # this test's records in flight, before its Redis state goes
        _forget_apiary_keys(redis_store.get(application))


def _forget_apiary_keys(client) -> None:
    """Drop Apiary's own Redis state (cache, rate limits, audit buffer); keep Celery's broker state and the
    workers' heartbeats, which belong to the session-long worker."""
    for key in client.scan_iter(match="apiary:*", count=1000):
        keep = (b"apiary:queue_alive:", b"apiary:worker:", b"apiary:node_alive:", b"apiary:queue_capacity:")
        if not key.startswith(keep):
            client.delete(key)


@pytest.fixture()
def client(app):
    return app.test_client()


@dataclass
class Account:
    user_id: int
    org_id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def project_headers(self, project_id: int) -> dict[str, str]:
        return {**self.headers, "X-Project-Id": str(project_id)}


def sign_up(client, org_name: str | None = None, username: str | None = None) -> Account:
    """Register a new organization through the API and log its admin in."""
    suffix = uuid.uuid4().hex[:8]
    username = username or f"admin_{suffix}"
    password = "correct horse battery staple"
    resp = client.post(
        "/api/auth/register",
        json={
            "org_name": org_name or f"Org {suffix}",
            "username": username,
            "email": f"{username}@example.com",
            "password": password,
        },
    )
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    return Account(body["user_id"], body["org_id"], username, password, log_in(client, username, password))


def log_in(client, username: str, password: str) -> str:
    resp = client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["access_token"]


def add_user(client, admin: Account, role: str) -> Account:
    suffix = uuid.uuid4().hex[:8]
    username, password = f"{role}_{suffix}", "another long password"
    resp = client.post(
        "/api/users",
        headers=admin.headers,
        json={"username": username, "email": f"{username}@example.com", "password": password, "role": role},
    )
    assert resp.status_code == 201, resp.get_json()
    return Account(resp.get_json()["user_id"], admin.org_id, username, password, log_in(client, username, password))


@pytest.fixture()
def admin(client) -> Account:
    return sign_up(client)


@pytest.fixture()
def project(client, admin) -> dict:
    resp = client.post("/api/projects", headers=admin.headers, json={"name": "Sales", "slug": "sales"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture()
def runner(app):
    """Flask's CLI runner for the app (every command group registered)."""
    return app.test_cli_runner()


WAREHOUSE_BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(params=WAREHOUSE_BACKENDS)
def scratch_warehouse(request, tmp_path):
    """(engine, schema) of a warehouse for this test alone, without the app: SQLite files under tmp_path (schema
    `marts`), or, with TEST_DATABASE_URL, a PostgreSQL schema named for this test and dropped afterwards. The
    schema is not created (the loader creates it; `ensure_schema` where a test needs it first)."""
    if request.param == "sqlite":
        engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'main.db'}", str(tmp_path / "schemas"))
        yield engine, "marts"
        engine.dispose()
        return
    engine = create_warehouse_engine(os.environ["TEST_DATABASE_URL"])
    schema = f"t_wh_{uuid.uuid4().hex[:12]}"
    yield engine, schema
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def start_worker(app, test_env, log_path: Path, queues: str, hostname: str, concurrency: int = 2):
    """A real Celery worker process consuming `queues`, against the session's database, warehouse and Redis;
    returned once it answers a ping. The caller stops it (`stop_worker`)."""
    env = {**os.environ, **test_env}
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_worker",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--hostname",
        hostname,
        "--without-gossip",
        "--without-mingle",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    celery = app.extensions["celery"]
    name = hostname.split("@", 1)[0] + "@"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-4000:]}")
            if any(node.startswith(name) for reply in celery.control.ping(timeout=0.5) for node in reply):
                return proc
        raise RuntimeError(f"worker did not answer within 60 s:\n{log_path.read_text()[-4000:]}")
    except BaseException:
        stop_worker(proc)  # a failed start (the ping itself may raise) leaves no worker behind for later tests
        raise


def stop_worker(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def worker(app, test_env, tmp_path_factory):
    """A real Celery worker process consuming every queue, against the same database, warehouse and Redis."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(app, test_env, log_path, "predict,train,functions,default", f"test-{RUN_ID}@%h")
    proc.log_path = log_path  # what the worker printed, for tests of what its log may hold
    yield proc
    stop_worker(proc)


@pytest.fixture()
def live_worker(app, worker):
    """The session's worker, once its heartbeats are back (every test that uses `app` starts with Redis flushed)."""
    from tasks.calls import queue_has_worker

    deadline = time.monotonic() + 15
    with app.app_context():
        while not all(queue_has_worker(queue) for queue in ("train", "predict", "functions")):
            assert time.monotonic() < deadline, "the worker's heartbeat did not come back"
            time.sleep(0.1)
    return worker


@pytest.fixture()
def two_web_processes(test_env, tmp_path):
    """Two gunicorn servers (one process, 16 threads each) on the session's database and Redis: two web hosts."""
    procs, ports = [], []
    for i in range(2):
        port = free_port()
        log = open(tmp_path / f"web{i}.log", "wb")  # owned by the child
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--threads",
                    "16",
                    "wsgi:app",
                ],
                cwd=ROOT,
                env={**os.environ, **test_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        ports.append(port)
    deadline = time.monotonic() + 60
    for port in ports:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "web processes did not start"
            time.sleep(0.2)
    yield ports
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
