"""The rate limit is atomic across web processes: a burst of 50 concurrent calls on a limit of 10 admits 10."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.redis_server import free_port
from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def two_web_processes(test_env, tmp_path):
    procs, ports = [], []
    for i in range(2):
        port = free_port()
        log = open(tmp_path / f"web{i}.log", "wb")  # noqa: SIM115 - owned by the child
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "16",
             "wsgi:app"],
            cwd=ROOT, env={**os.environ, **test_env}, stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        ports.append(port)
    deadline = time.monotonic() + 30
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


def test_burst_across_two_processes_admits_exactly_the_limit(client, admin, service, two_web_processes):  # noqa: F811
    key = mint(client, admin, service, rate_limit=10)["key"]
    urls = [f"http://127.0.0.1:{port}/api/service/sales-serving/top" for port in two_web_processes]

    def hit(i: int) -> int:
        return httpx.get(urls[i % 2], headers={"X-API-Key": key}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(hit, range(50)))
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 40
