"""A private Apiary stack for benchmarks: its own temp var dir, Redis, ports, worker and gunicorn servers.

Every process it starts runs in its own process group (and dies with the benchmark if that is killed outright);
`stop()` signals each group, TERM then KILL, and is safe to call twice.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.cpu import process_stats, tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The web process exactly as `make run` starts it (app/supervisor.py), bound to the loopback: every server of the
# benchmark, Apiary's and the reference apps, runs with these settings. tests/bench checks they match.
GUNICORN_SETTINGS = ("--workers", "2", "--threads", "8", "--graceful-timeout", "1", "--access-logfile", "-")
# One setting the benchmark adds to every server it starts (Apiary's and the references alike): at most 12 client
# connections per gunicorn worker. hey opens its 16 keep-alive connections at once and gunicorn hands each to whichever
# worker wakes first; a worker that got 15 of them serves the whole load on one core (one GIL) while the other idles,
# for the whole measurement. The same call measured 875 and 1,961 req/s in consecutive runs that way, and bare hello
# 2,030 and 4,769. With the cap the second worker takes the rest, so every measurement is of two workers. Not a
# production default: a worker holding only 12 connections is easy to starve with idle ones (behind a proxy or with
# many clients, connections spread across workers anyway).
BALANCE_SETTINGS = ("--worker-connections", "12")
# The workers are the Procfile's worker lines, as `make run` starts them (make run's beat, which only reaps stale runs
# and purges old audit records, is not started: it plays no part in a call).
# The plain Celery reference (bench/celery_app.py): its own queue on its own database of the stack's Redis.
CELERY_REFERENCE_QUEUE = "bench_ref"
CELERY_REFERENCE_WORKER = "celery-worker"  # the reference worker's name among the stack's children
CELERY_REFERENCE_DB = 1
# The plain Redis reference (bench/redis_app.py): its answer on another database of the stack's Redis than Apiary's.
REDIS_REFERENCE_DB = 2
# The serve script reference (bench/script_app.py): Apiary's one round trip, on a database of its own.
SCRIPT_REFERENCE_DB = 4
# Settings Apiary reads from the environment that must not leak in from the caller's shell.
_OWN_SETTINGS = (
    "APIARY_",
    "APP_CONFIG",
    "DATABASE_URL",
    "WAREHOUSE_",
    "REDIS_URL",
    "CELERY_",
    "MODEL_STORE",
    "PROMETHEUS_MULTIPROC_DIR",
    "PORT",
)


def gunicorn_command(port: int, app_spec: str) -> list[str]:
    return [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", *GUNICORN_SETTINGS, *BALANCE_SETTINGS, app_spec]


def procfile_workers() -> dict[str, list[str]]:
    """Name -> command of every worker process of the Procfile (the serving worker's threads pool included)."""
    from app.procfile import load_processes

    workers = {}
    for process in load_processes(ROOT / "Procfile"):
        if process.is_worker:
            argv = process.argv({})
            workers[process.name] = [str(BIN / argv[0]), *argv[1:]]
    return workers


def function_worker_pool() -> tuple[str, ...]:
    """The pool kind and size of the Procfile worker that runs function calls, as celery flags."""
    for argv in procfile_workers().values():
        if "functions" in argv[argv.index("-Q") + 1].split(","):
            pool = argv[argv.index("--pool") + 1] if "--pool" in argv else "prefork"  # celery's default
            return ("--pool", pool, "--concurrency", argv[argv.index("--concurrency") + 1])
    raise RuntimeError("no Procfile worker consumes the functions queue")


def celery_reference_worker_command() -> list[str]:
    """The reference's worker, with the pool of the worker that runs Apiary's function calls."""
    return [
        str(BIN / "celery"),
        "-A",
        "bench.celery_app",
        "worker",
        "-Q",
        CELERY_REFERENCE_QUEUE,
        "-n",
        f"{CELERY_REFERENCE_QUEUE}@%h",
        *function_worker_pool(),
        "--loglevel",
        "INFO",
    ]


def redis_database(url: str, db: int) -> str:
    return urlsplit(url)._replace(path=f"/{db}").geturl()


class Stack:
    def __init__(self, keep: bool = False):
        self.tmp = Path(tempfile.mkdtemp(prefix="apiary-bench-"))
        self.keep = keep
        self.children: list[tuple[str, subprocess.Popen]] = []
        # The caller's environment without any Apiary setting: the stack points every process at its own.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_SETTINGS)}
        self.env["PYTHONPATH"] = str(ROOT)
        self.ports: dict[str, int] = {}
        self.redis_url: str | None = None
        self.stopped = False

    # --- starting ------------------------------------------------------------------------------------------------

    def start_redis(self) -> str:
        """The stack's private Redis; returns its URL."""
        from app.redis_server import start_private_redis

        redis_proc, self.redis_url = start_private_redis(str(self.tmp / "redis"))
        self.children.append(("redis", redis_proc))
        return self.redis_url

    def start_apiary(self) -> None:
        """Redis, migrations, the workers and Apiary's web process; returns once /readyz is green."""
        redis_url = self.start_redis()
        var = self.tmp / "var"
        metrics = self.tmp / "prometheus"  # as `make run`: gunicorn runs several workers
        metrics.mkdir(parents=True)
        self.env.update(
            {
                "APP_CONFIG": "development",
                "APIARY_VAR_DIR": str(var),
                "REDIS_URL": redis_url,
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            }
        )
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask db upgrade failed:\n{done.stderr[-2000:]}")
        for name, command in procfile_workers().items():
            self.spawn(name, command)
        self.serve("apiary", "wsgi:app")
        self.wait_until("apiary", "/readyz", timeout=180)

    def serve(self, name: str, app_spec: str, extra_env: dict[str, str] | None = None) -> int:
        """Start gunicorn for `app_spec` on a free loopback port with Apiary's settings; returns the port."""
        from app.redis_server import free_port

        port = free_port()
        self.ports[name] = port
        self.spawn(name, gunicorn_command(port, app_spec), extra_env)
        return port

    def start_celery_reference(self) -> None:
        """bench/celery_app.py's worker and web process, on another database of the stack's Redis than Apiary's.

        Wait for `/ready` on server "celery": it answers 200 once the worker does."""
        env = {"BENCH_CELERY_URL": redis_database(self.redis_url or self.start_redis(), CELERY_REFERENCE_DB)}
        self.spawn(CELERY_REFERENCE_WORKER, celery_reference_worker_command(), env)
        self.serve("celery", "bench.celery_app:create_app()", env)

    def start_redis_reference(self, answers: dict[str, bytes]) -> None:
        """bench/redis_app.py's web process, its `answers` (Redis key -> JSON text) stored first on its own database
        of the stack's Redis. Wait for it on server "redis_ref" (the stack's Redis itself is its child "redis")."""
        import redis

        url = redis_database(self.redis_url or self.start_redis(), REDIS_REFERENCE_DB)
        client = redis.Redis.from_url(url)
        try:
            client.mset(answers)
        finally:
            client.close()
        self.serve("redis_ref", "bench.redis_app:create_app()", {"BENCH_REDIS_URL": url})

    def start_script_reference(self, answer: bytes, api_key: str) -> None:
        """bench/script_app.py's web process on its own database of the stack's Redis, answering `answer` to
        `api_key`. Wait for it on server "script_ref"."""
        url = redis_database(self.redis_url or self.start_redis(), SCRIPT_REFERENCE_DB)
        answer_file = self.tmp / "script_ref_answer.json"
        answer_file.write_bytes(answer)
        env = {"BENCH_REDIS_URL": url, "BENCH_API_KEY": api_key, "BENCH_ANSWER": str(answer_file)}
        self.serve("script_ref", "bench.script_app:create_app()", env)

    def spawn(self, name: str, cmd: list[str], extra_env: dict[str, str] | None = None) -> None:
        from app.supervisor import die_with_parent  # SIGKILL when the benchmark dies, even by SIGKILL

        log = open(self.tmp / f"{name}.log", "wb")  # the child owns it for its lifetime
        try:
            # Own session and process group: Ctrl-C reaches only the benchmark, and stop() signals the whole group.
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        finally:
            log.close()
        self.children.append((name, proc))

    def wait_until(self, name: str, path: str, timeout: float = 90, statuses: tuple[int, ...] = (200,)) -> None:
        """Poll `path` on server `name` until it answers one of `statuses` (a worker of it has booted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.get(name, path) in statuses:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} did not answer {statuses} on {path} within {timeout:g} s; logs in {self.tmp}")

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.tmp / (name + '.log')}")

    def get(self, name: str, path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[name], timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of each child the stack started, its own children included (bench/cpu.py)."""
        return tree_cpu_seconds({name: proc.pid for name, proc in self.children})

    # --- stopping ------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        # Servers and the worker first, Redis last: they still talk to it while they shut down.
        groups = [proc for name, proc in reversed(self.children) if name != "redis"]
        for proc in groups:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in groups:
            _wait(proc, max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # whatever of the group is left (forked workers included)
            _wait(proc, 5)
            settled = time.monotonic() + 5
            while live_group_members(proc.pid) and time.monotonic() < settled:
                time.sleep(0.05)  # a killed process lingers until the kernel has torn it down
        for name, proc in self.children:
            if name == "redis":
                proc.terminate()
                if not _wait(proc, 10):
                    proc.kill()
                    _wait(proc, 5)
        if self.keep:
            print(f"kept the stack's files (logs, databases) in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def live_group_members(pgid: int) -> list[int]:
    """Pids of the processes of group `pgid` that still run (zombies, already dead, are not counted)."""
    return [pid for pid, fields in process_stats().items() if int(fields[2]) == pgid and fields[0] not in ("Z", "X")]


def _wait(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """The whole group of a child spawn() started (it leads its own group), forked children included."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):  # nothing of the group is left
        pass
