"""SDK fixtures: the real stack (gunicorn + Celery worker + Redis + database) and a fresh organization per test."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SDK_SRC = ROOT / "sdk" / "src"
# The SDK is a separate distribution; its tests use the source tree so `make test` needs no install step.
if str(SDK_SRC) not in sys.path:
    sys.path.insert(0, str(SDK_SRC))

import apiary  # noqa: E402

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def server_url(app, worker, test_env, tmp_path_factory) -> str:
    """A gunicorn serving the app on a free loopback port, sharing the worker, database and Redis."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "web.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "wsgi:app",
            ],
            cwd=ROOT,
            env={**os.environ, **test_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited early:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gunicorn did not answer /healthz within 30 s:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Login:
    url: str
    username: str
    password: str


@pytest.fixture()
def login(app, server_url) -> Login:
    """A new organization signed up over HTTP (depending on `app` makes the suite wipe the tables afterwards)."""
    username = f"sdk_{uuid.uuid4().hex[:8]}"
    resp = httpx.post(
        f"{server_url}/api/auth/register",
        json={
            "org_name": f"Org {username}",
            "username": username,
            "email": f"{username}@example.com",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 201, resp.text
    return Login(server_url, username, PASSWORD)


@pytest.fixture()
def api(login) -> apiary.Client:
    with apiary.Client(login.url, username=login.username, password=login.password) as client:
        yield client


@pytest.fixture()
def sdk_project(api) -> apiary.Project:
    return api.create_project("Sales", "sales")


def write_churn_csv(path: Path, n: int = 120, seed: int = 3) -> Path:
    """Customers whose short tenure on the basic plan means churn: learnable by a logistic regression."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_key", "name", "tenure", "plan", "monthly", "churned"])
        for i in range(1, n + 1):
            tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
            churned = int(tenure < 20 and plan == "basic")
            writer.writerow([i, f"Customer {i}", tenure, plan, round(rng.uniform(10, 90), 2), churned])
    return path


@pytest.fixture()
def churn_csv(tmp_path) -> Path:
    return write_churn_csv(tmp_path / "customers.csv")
