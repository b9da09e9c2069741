"""`make run`: bring the whole system up locally (Redis, migrations, first admin, gunicorn, a Celery worker).

Every process it starts is stopped on Ctrl-C or SIGTERM, and running it again reuses what is already there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.redis_server import redis_answers, start_private_redis
from config import ROOT, load_config


def web_bind(environ) -> str:
    """gunicorn's --bind: loopback unless HOST says otherwise (the development config is not for a network)."""
    return f"{environ.get('HOST') or '127.0.0.1'}:{int(environ.get('PORT') or 8000)}"


def _log(message: str) -> None:
    print(f"[apiary] {message}", flush=True)


class Supervisor:
    def __init__(self) -> None:
        self.config = load_config()
        self.var = Path(self.config.VAR_DIR)
        self.var.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False

    def start_redis(self) -> None:
        url = os.environ.get("REDIS_URL") or self.config.REDIS_URL
        if redis_answers(url):
            _log(f"using Redis at {url}")
        else:
            proc, url = start_private_redis(str(self.var / "redis"))
            self.children.append(("redis", proc))
            _log(f"started a private Redis at {url} (data under var/redis, not persisted)")
        self.env["REDIS_URL"] = url

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=self.env, check=True, text=True
        )

    def ensure_admin(self) -> tuple[str, str | None]:
        email = os.environ.get("APIARY_ADMIN_EMAIL") or "admin@example.com"
        password = os.environ.get("APIARY_ADMIN_PASSWORD")
        stored = self.var / "admin_password"
        if not password:
            if not stored.exists():
                stored.write_text(secrets.token_urlsafe(12))
                stored.chmod(0o600)
            password = stored.read_text().strip()
        self.flask("users", "create", "--email", email, "--password", password, "--org", "Apiary", "--role", "admin",
                   "--if-missing")  # fmt: skip
        return email, password

    def spawn(self, name: str, cmd: list[str]) -> None:
        log_path = self.var / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append((name, proc))
        _log(f"started {name} (pid {proc.pid}), log: {log_path}")

    def wait_ready(self, port: int, timeout: float = 90) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            with contextlib.suppress(OSError):  # not listening or not ready yet: poll again
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
                    if resp.status == 200:
                        return True
            self.check_children()
            time.sleep(0.5)
        return False

    def check_children(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None and not self.stopping:
                _log(f"{name} exited with code {proc.returncode}; see var/logs/{name}.log. Stopping everything.")
                self.stop()
                sys.exit(1)

    def stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        _log("stopping...")
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.killpg(proc.pid, signal.SIGTERM) if _name != "redis" else proc.terminate()
        deadline = time.monotonic() + 20
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        _log("stopped")

    def run(self) -> None:
        signal.signal(signal.SIGINT, lambda *_: (self.stop(), sys.exit(0)))
        signal.signal(signal.SIGTERM, lambda *_: (self.stop(), sys.exit(0)))
        port = int(os.environ.get("PORT") or 8000)
        self.start_redis()
        metrics_dir = self.var / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        _log("applying database migrations")
        self.flask("db", "upgrade")
        email, password = self.ensure_admin()
        bin_dir = Path(sys.executable).parent
        self.spawn("worker", [str(bin_dir / "celery"), "-A", "celery_worker", "worker", "-Q",
                              "predict,train,functions,default", "--concurrency", "2", "--loglevel", "INFO"])  # fmt: skip
        self.spawn("web", [str(bin_dir / "gunicorn"), "--bind", web_bind(os.environ), "--workers", "2", "--threads", "8",
                           "--access-logfile", "-", "wsgi:app"])  # fmt: skip
        if not self.wait_ready(port):
            _log("the system did not become ready within 90 s; see var/logs/. Stopping.")
            self.stop()
            sys.exit(1)
        base = f"http://127.0.0.1:{port}"
        if os.environ.get("APIARY_DEMO", "true").lower() not in ("0", "false", "no"):
            # First start only: the seed example (dataset, model, service, key); later starts leave it alone.
            self.flask("demo", "--if-missing", "--org", "Apiary", "--base-url", base)
        print(
            f"""
Apiary is up.
  Console:    {base}/
  API:        {base}/api
  OpenAPI:    {base}/api/openapi.json
  Health:     {base}/readyz   Metrics: {base}/metrics
  Admin:      {email} / {password}

Try it:
  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'Content-Type: application/json' \\
      -d '{{"username": "{email}", "password": "{password}"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/api/projects -H "Authorization: Bearer $TOKEN"

Ctrl-C stops every process started here.
""",
            flush=True,
        )
        while True:
            self.check_children()
            time.sleep(1)


if __name__ == "__main__":
    Supervisor().run()
