"""`make run`: bring the whole system up locally (Redis, migrations, first admin, then every Procfile process).

A crashed web, worker or beat process is restarted with backoff; Ctrl-C or SIGTERM stops everything in dependency
order (web, beat, worker, then Redis) within 10 s and exits 0. Every child dies with the supervisor, even when it
is SIGKILLed (PR_SET_PDEATHSIG), so nothing is left holding the port. The URLs it chose go to var/run.env, where
every `flask` command run from the checkout finds them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from app.procfile import Process, ProcfileError, load_processes, missing_queues, parse_worker_spec
from app.redis_server import redis_answers, start_private_redis
from config import ROOT, RUN_FILE, load_config

PR_SET_PDEATHSIG = 1
READY_TIMEOUT_S = 90
BACKOFF_MAX_S = 30
STABLE_AFTER_S = 60  # a child up this long has its backoff reset


def _log(message: str) -> None:
    print(f"[apiary] {message}", flush=True)


def die_with_parent(sig: int):
    """A preexec_fn: the child gets `sig` when the supervisor dies, however it dies (Linux; elsewhere a no-op)."""
    parent = os.getpid()

    def preexec() -> None:
        if not sys.platform.startswith("linux"):
            return
        # The fork inherited the supervisor's own handler for `sig` (request_stop): a death signal arriving before
        # the exec would be caught by it and lost with it at the exec, and the child would run on with no parent.
        # With the default action the child dies instead. (SIGKILL has no handler to reset.)
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the prctl: nobody would send the signal
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@dataclass
class Child:
    name: str
    cmd: list[str]
    stop_signal: int  # the deliberate stop; the death signal too
    grace_s: float  # how long a deliberate stop waits before SIGKILL
    proc: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    log: Path = field(default=Path("/dev/null"))


class Supervisor:
    def __init__(self) -> None:
        # The supervisor decides afresh what to run; what a previous run chose (var/run.env) is not read.
        self.config = load_config(environ={**os.environ, "APIARY_USE_RUN_FILE": "0"})
        self.var = Path(self.config.VAR_DIR)
        self.env = dict(os.environ)
        self.children: dict[str, Child] = {}
        self.redis_proc: subprocess.Popen | None = None
        self.redis_port: int | None = None
        self.stopping = False
        self.host = os.environ.get("HOST") or "127.0.0.1"
        self.port = int(os.environ.get("PORT") or 8000)
        self.procfile = Path(ROOT) / "Procfile"
        self.processes: list[Process] = []

    # --- start-up -------------------------------------------------------------------------------------------------

    def load_procfile(self) -> None:
        """The Procfile's processes (APIARY_WORKERS replacing its worker lines); a bad one is one line and exit 1."""
        spec = self.config.APIARY_WORKERS
        try:
            self.processes = load_processes(self.procfile, spec)
            lines = parse_worker_spec(spec) if spec.strip() else []
        except ProcfileError as exc:
            print(f"[apiary] {exc}", file=sys.stderr, flush=True)
            sys.exit(1)
        if lines and missing_queues(lines):
            _log(f"note: APIARY_WORKERS starts no worker for {', '.join(missing_queues(lines))} (run one elsewhere)")

    def argv(self, process: Process) -> list[str]:
        """The process's command with the Procfile's variables expanded; its program from this virtualenv."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        argv = process.argv({**self.env, "HOST": host, "PORT": str(self.port), "APIARY_VAR_DIR": str(self.var)})
        local = Path(sys.executable).parent / argv[0]
        if "/" not in argv[0] and local.exists():
            argv[0] = str(local)
        return argv

    @staticmethod
    def stop_policy(process: Process) -> tuple[int, float]:
        # SIGQUIT is Celery's cold shutdown: running tasks are abandoned (a training run is retried or reaped).
        if process.is_worker:
            return signal.SIGQUIT, 2.5
        if process.is_beat:
            return signal.SIGTERM, 2
        return signal.SIGTERM, 2.5

    def check_port(self) -> None:
        with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                print(
                    f"[apiary] cannot listen on {self.host}:{self.port}: {exc.strerror} (is another `make run` "
                    "up? stop it, or set PORT)",
                    file=sys.stderr,
                    flush=True,
                )
                sys.exit(1)

    def start_redis(self) -> None:
        explicit = os.environ.get("REDIS_URL")
        if explicit:
            # Only an explicitly named Redis is shared; the installation namespace keeps the work apart.
            if not redis_answers(explicit, timeout=2):
                print(f"[apiary] REDIS_URL does not answer: {explicit}", file=sys.stderr, flush=True)
                sys.exit(1)
            url = explicit
            _log(f"using Redis at {url} (namespace {self.config.APIARY_NAMESPACE})")
        else:
            url = self._start_private_redis()
            _log(f"started a private Redis at {url} (data under var/redis, not persisted)")
        self.env["REDIS_URL"] = url
        self.env["DATABASE_URL"] = self.config.SQLALCHEMY_DATABASE_URI
        self.env["WAREHOUSE_URL"] = self.config.WAREHOUSE_URL

    def _start_private_redis(self) -> str:
        self.redis_proc, url = start_private_redis(
            str(self.var / "redis"), port=self.redis_port, preexec_fn=die_with_parent(signal.SIGTERM)
        )
        self.redis_port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        return url

    def write_run_file(self) -> None:
        """var/run.env: the URLs this run chose, read by every `flask` command of the checkout (config)."""
        lines = [f"{name}={self.env[name]}" for name in ("REDIS_URL", "DATABASE_URL", "WAREHOUSE_URL")]
        tmp = self.var / (RUN_FILE + ".tmp")
        tmp.write_text("# written by make run: what the running system uses\n" + "\n".join(lines) + "\n")
        tmp.chmod(0o600)
        os.replace(tmp, self.var / RUN_FILE)

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
        self.flask(
            "users",
            "create",
            "--email",
            email,
            "--password",
            password,
            "--org",
            "Apiary",
            "--role",
            "admin",
            "--if-missing",
        )
        return email, password

    def add_child(self, name: str, cmd: list[str], stop_signal: int, grace_s: float) -> None:
        child = Child(name, cmd, stop_signal, grace_s, log=self.var / "logs" / f"{name}.log")
        self.children[name] = child
        self.spawn(child)

    def spawn(self, child: Child) -> None:
        child.log.parent.mkdir(parents=True, exist_ok=True)
        with open(child.log, "ab") as log:
            child.proc = subprocess.Popen(
                child.cmd,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(child.stop_signal),
            )
        child.started, child.restart_at = time.monotonic(), None
        _log(f"started {child.name} (pid {child.proc.pid}), log: {child.log}")

    # --- watching -------------------------------------------------------------------------------------------------

    def check_children(self) -> None:
        """Restart what died, with backoff: 1 s, 2 s, 4 s ... up to 30 s; a child that stayed up a minute starts over."""
        now = time.monotonic()
        if self.redis_proc is not None and self.redis_proc.poll() is not None and not self.stopping:
            _log(f"redis exited with code {self.redis_proc.returncode}; restarting it on port {self.redis_port}")
            self._start_private_redis()
        for child in self.children.values():
            if self.stopping:
                return
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.spawn(child)
                continue
            if child.proc.poll() is None:
                continue
            code = child.proc.returncode
            with contextlib.suppress(ProcessLookupError, PermissionError):  # leftovers (pool, gunicorn workers)
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.failures = 1 if now - child.started >= STABLE_AFTER_S else child.failures + 1
            delay = min(BACKOFF_MAX_S, 2 ** (child.failures - 1))
            child.restart_at = now + delay
            _log(
                f"{child.name} (pid {child.proc.pid}) exited with code {code}; restarting in {delay:g} s "
                f"(restart {child.failures} in a row; see {child.log})"
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            with contextlib.suppress(OSError):  # not listening or not ready yet: poll again
                with urllib.request.urlopen(f"http://{self._local_host()}:{self.port}/readyz", timeout=3) as resp:
                    if resp.status == 200:
                        return True
            self.check_children()
            time.sleep(0.5)
        return False

    def _local_host(self) -> str:
        if self.host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    # --- stopping -------------------------------------------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def stop(self) -> None:
        """Web first (no new work comes in), then beat and the worker, then Redis; each step waits at most its grace,
        then kills, so the whole stop stays under 10 s."""
        self.stopping = True
        _log("stopping...")
        # The web (any process that is not Celery's) first, so no new work comes in; then beat and the workers.
        web_first = [p.name for p in self.processes if not (p.is_worker or p.is_beat) and p.name in self.children]
        for names in (web_first, [name for name in self.children if name not in web_first]):
            step = [self.children[name] for name in names]
            for child in step:
                self._signal(child.proc, child.stop_signal, group=True)
            deadline = time.monotonic() + max((child.grace_s for child in step), default=0)
            for child in step:
                self._reap(child.name, child.proc, deadline, group=True)
        if self.redis_proc is not None:
            self._signal(self.redis_proc, signal.SIGTERM, group=False)
            self._reap("redis", self.redis_proc, time.monotonic() + 1.5, group=False)
        with contextlib.suppress(OSError):
            os.remove(self.var / RUN_FILE)  # the system it names is gone
        _log("stopped")

    @staticmethod
    def _signal(proc: subprocess.Popen | None, sig: int, group: bool) -> None:
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)

    @staticmethod
    def _reap(name: str, proc: subprocess.Popen | None, deadline: float, group: bool) -> None:
        if proc is None:
            return
        try:
            proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            _log(f"stopped {name}")
        except subprocess.TimeoutExpired:
            _log(f"{name} did not stop in time; killed it")
            proc.kill()
            proc.wait()
        if group:  # anything the child left behind (pool processes, gunicorn workers)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    # --- the whole run --------------------------------------------------------------------------------------------

    def run(self) -> int:
        self.load_procfile()
        self.check_port()
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        self.var.mkdir(parents=True, exist_ok=True)
        try:
            return self._run()
        except (subprocess.CalledProcessError, KeyboardInterrupt):
            if self.stopping:
                return 0
            _log("a start-up step failed; see above")
            return 1
        finally:
            self.stop()

    def _run(self) -> int:
        self.start_redis()
        self.write_run_file()
        metrics_dir = self.var / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        _log("applying database migrations")
        self.flask("db", "upgrade")
        email, password = self.ensure_admin()
        if self.stopping:
            return 0
        for process in self.processes:
            self.add_child(process.name, self.argv(process), *self.stop_policy(process))
        if not self.wait_ready():
            if self.stopping:
                return 0
            _log(f"the system did not become ready within {READY_TIMEOUT_S} s; see var/logs/. Stopping.")
            return 1
        base = f"http://{self._local_host()}:{self.port}"
        if os.environ.get("APIARY_DEMO", "true").lower() not in ("0", "false", "no"):
            # First start only: the seed example (dataset, model, service, key); later starts leave it alone.
            self.flask("demo", "--if-missing", "--org", "Apiary", "--base-url", base)
        self.print_banner(base, email, password)
        while not self.stopping:
            self.check_children()
            time.sleep(0.5)
        return 0

    def print_banner(self, base: str, email: str, password: str | None) -> None:
        print(
            f"""
Apiary is up.
  Console:    {base}/
  API:        {base}/api
  OpenAPI:    {base}/api/openapi.json
  Health:     {base}/readyz   Metrics: {base}/metrics
  Admin:      {email} / {password}
  CLI:        flask commands run from this checkout use this system (var/{RUN_FILE}); `flask info` shows it

Try it:
  TOKEN=$(curl -s -X POST {base}/api/auth/login -H 'Content-Type: application/json' \\
      -d '{{"username": "{email}", "password": "{password}"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/api/projects -H "Authorization: Bearer $TOKEN"

Ctrl-C stops every process started here.
""",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(Supervisor().run())
