"""Several hosts on one machine: web servers and Celery workers, each with a var/ directory of its own, sharing only
the session's database (and, on SQLite, its warehouse files), the model store and a Redis of their own that a test
may stop and start again on the same port.

The session fixtures (`worker`, `two_web_processes`) run on the session's Redis and var/; these hosts need their
own var/ each and a Redis that can be restarted without harming other tests, hence this helper.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.redis_server import free_port, start_private_redis

ROOT = Path(__file__).resolve().parents[2]


class Http:
    """An httpx client shaped like Flask's test client (`open`, `get_json`), so the suite's helpers drive a real
    server over HTTP."""

    def __init__(self, base: str, timeout: float = 30):
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=timeout)

    def open(self, url, method="GET", headers=None, json=None, query_string=None, **_kwargs):
        resp = self.client.request(method, url, headers=headers, json=json, params=query_string)
        resp.get_json = resp.json
        return resp

    def get(self, url, **kwargs):
        return self.open(url, "GET", **kwargs)

    def post(self, url, **kwargs):
        return self.open(url, "POST", **kwargs)

    def put(self, url, **kwargs):
        return self.open(url, "PUT", **kwargs)

    def patch(self, url, **kwargs):
        return self.open(url, "PATCH", **kwargs)

    def delete(self, url, **kwargs):
        return self.open(url, "DELETE", **kwargs)

    def close(self) -> None:
        self.client.close()


class Cluster:
    def __init__(self, app, test_env: dict[str, str], tmp: Path):
        self.tmp = tmp
        self.redis_port = free_port()
        self.redis_proc, self.redis_url = start_private_redis(str(tmp / "redis"), port=self.redis_port)
        self.env = {
            **os.environ,
            **test_env,
            "REDIS_URL": self.redis_url,
            # Shared storage, as a volume (or PostgreSQL for the warehouse) would be between real hosts.
            "MODEL_STORE": app.config["MODEL_STORE"],
            "WAREHOUSE_DIR": app.config["WAREHOUSE_DIR"],
            "LOG_LEVEL": "INFO",
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.http: list[Http] = []
        self.web_count = 0

    # --- hosts --------------------------------------------------------------------------------------------------

    def host_env(self, host: str, **extra: str) -> dict[str, str]:
        var = self.tmp / host / "var"
        var.mkdir(parents=True, exist_ok=True)
        return {**self.env, "APIARY_VAR_DIR": str(var), **extra}

    def _spawn(self, name: str, host: str, cmd: list[str], **extra: str) -> subprocess.Popen:
        log_path = self.tmp / host / f"{name}.log"
        env = self.host_env(host, **extra)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs[name], self.logs[name] = proc, log_path
        return proc

    def start_web(self, host: str, threads: int = 16) -> Http:
        port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        self._spawn(f"web-{host}", host, [*cmd, "--threads", str(threads), "--graceful-timeout", "1", "wsgi:app"])
        http = Http(f"http://127.0.0.1:{port}")
        self.http.append(http)
        return http

    def start_worker(self, host: str, name: str, queues: str, concurrency: int = 1) -> subprocess.Popen:
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_worker",
            "worker",
            "-Q",
            queues,
            "-n",
            f"{name}@{host}",
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        return self._spawn(f"{name}@{host}", host, cmd)

    def log(self, name: str, tail: int = 4000) -> str:
        return self.logs[name].read_text(errors="replace")[-tail:]

    # --- waiting ------------------------------------------------------------------------------------------------

    def wait_web(self, http: Http, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{http.base}/healthz", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"{http.base} did not start"
            time.sleep(0.2)

    def wait_workers(self, ops_app, nodes: set[str], timeout: float = 60) -> None:
        """Until every node in `nodes` announces itself through its heartbeat."""
        from app.ops.health import worker_processes

        deadline = time.monotonic() + timeout
        while True:
            with ops_app.app_context():
                seen = {w["node"] for w in worker_processes(ops_app)}
            if nodes <= seen:
                return
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"only {sorted(seen)} of {sorted(nodes)} announced themselves"
            time.sleep(0.2)

    # --- faults -------------------------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything it started (its pool), as the OOM killer or a lost host would."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_redis(self) -> None:
        self.redis_proc.kill()
        self.redis_proc.wait(timeout=10)

    def start_redis(self) -> None:
        self.redis_proc, url = start_private_redis(str(self.tmp / "redis"), port=self.redis_port)
        assert url == self.redis_url

    def close(self) -> None:
        for http in self.http:
            http.close()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.redis_proc.terminate()
        self.redis_proc.wait(timeout=10)
