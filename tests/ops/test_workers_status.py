"""`flask workers status` with per-queue workers that share a node name (no `-n`, or the same one): every process
is listed with its own queues, every time, and each queue's consumers are counted right."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def own_namespace_app(app):
    """The session's databases and Redis under a namespace of its own, so only this test's workers are seen."""
    from app import create_app

    namespace = f"status-{uuid.uuid4().hex[:8]}"
    return create_app("testing", {"APIARY_NAMESPACE": namespace}), namespace


def test_status_is_right_when_two_workers_share_a_node_name(own_namespace_app, test_env, tmp_path):
    from app.ops.health import heartbeat_workers, worker_processes

    status_app, namespace = own_namespace_app
    env = {**os.environ, **test_env, "APIARY_NAMESPACE": namespace}
    procs = {}
    try:
        for queue in ("predict", "train"):
            cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_worker",
                "worker",
                "-Q",
                queue,
                "-n",
                "same@%h",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
            ]
            with open(tmp_path / f"{queue}.log", "wb") as log:
                procs[queue] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while len(worker_processes(status_app)) < 2:
            assert all(p.poll() is None for p in procs.values()), (tmp_path / "predict.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers never announced themselves"
            time.sleep(0.3)

        runner = status_app.test_cli_runner()
        for _ in range(3):  # the broadcast-based status flipped between the two from one call to the next
            result = runner.invoke(args=["workers", "status"])
            assert result.exit_code == 0, result.output
            assert "2 live worker(s)" in result.output
            assert f"(pid {procs['predict'].pid}) on {socket.gethostname()}: predict; concurrency 1" in result.output
            assert f"(pid {procs['train'].pid}) on {socket.gethostname()}: train; concurrency 1" in result.output
            assert "predict: 0 waiting, 1 consumer(s)" in result.output
            assert "train: 0 waiting, 1 consumer(s)" in result.output
            assert "functions: 0 waiting, 0 consumer(s)" in result.output
            time.sleep(1)
        seen = heartbeat_workers(status_app)
        assert sorted(seen.values()) == [["predict"], ["train"]]
        assert all(name.startswith("same@") and "(pid " in name for name in seen)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
