"""`make run`'s supervisor as a real subprocess: restarts what crashes, stops cleanly and fast, takes its children
with it when killed, refuses a busy port; and the CLI finds the system it started through var/run.env."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from app.namespace import namespaced_redis
from app.redis_server import free_port, redis_answers
from config import RUN_FILE, default_namespace, read_run_file

ROOT = Path(__file__).resolve().parent.parent
# What the test session exported for its own app; a `make run` of the checkout has none of it.
_SESSION_ONLY = (
    "REDIS_URL",
    "DATABASE_URL",
    "WAREHOUSE_URL",
    "APIARY_NAMESPACE",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "MODEL_STORE",
    "WAREHOUSE_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    "APP_CONFIG",
    "SECRET_KEY",
    "JWT_SECRET_KEY",
)


def _checkout_env(var: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SESSION_ONLY}
    env.update(APIARY_VAR_DIR=str(var), LOG_LEVEL="WARNING", **extra)
    return env


class RunningSupervisor:
    def __init__(self, var: Path, **extra: str):
        self.var = var
        self.port = free_port()
        self.out = var / "supervisor.out"
        var.mkdir(parents=True, exist_ok=True)
        env = _checkout_env(
            var, PORT=str(self.port), APIARY_DEMO="false", APIARY_ADMIN_PASSWORD="a long enough test password", **extra
        )
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.supervisor"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.out.read_text()

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output())
            if found:
                return found
            assert self.proc.poll() is None, f"the supervisor exited ({self.proc.returncode}):\n{self.output()}"
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n{self.output()}"
            time.sleep(0.2)

    def pid_of(self, name: str) -> int:
        return int(re.findall(rf"started {name} \(pid (\d+)\)", self.output())[-1])

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=3) as resp:
                return resp.status
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.readyz() != 200:
            assert time.monotonic() < deadline, f"/readyz not green within {timeout} s:\n{self.output()}"
            time.sleep(0.3)

    def heartbeats(self) -> list[dict]:
        chosen = read_run_file(self.var)
        client = namespaced_redis(chosen["REDIS_URL"], default_namespace(chosen["DATABASE_URL"]))
        records = [client.get(key) for key in client.scan_iter(match="apiary:worker:*")]
        return [json.loads(raw) for raw in records if raw]

    def heartbeat_pids(self) -> set[int]:
        return {record["pid"] for record in self.heartbeats()}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture()
def supervisor(tmp_path):
    running = RunningSupervisor(tmp_path / "var")
    yield running
    running.kill()
    # Whatever a failed test left behind: the children die with the supervisor; give them a moment.
    time.sleep(0.5)


@pytest.mark.timeout(420)  # three start-ups of the whole system on a shared machine
def test_supervisor_restarts_a_killed_worker_and_web_then_stops_cleanly(supervisor):
    supervisor.wait_for(r"Apiary is up\.")
    supervisor.wait_ready()
    # Bound to loopback by default (HOST unset).
    assert any(
        c.laddr.port == supervisor.port and c.laddr.ip == "127.0.0.1"
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    )

    # The Procfile's processes, each under its own name.
    assert [supervisor.pid_of(name) for name in ("web", "beat", "serving", "background")]
    old_worker = supervisor.pid_of("serving")
    os.kill(old_worker, signal.SIGKILL)
    supervisor.wait_for(rf"serving \(pid {old_worker}\) exited with code -9; restarting in 1 s", timeout=30)
    new_worker = int(supervisor.wait_for(rf"started serving \(pid (?!{old_worker}\))(\d+)\)", timeout=30)[1])
    deadline = time.monotonic() + 60
    while new_worker not in supervisor.heartbeat_pids():
        assert time.monotonic() < deadline, "the restarted worker never announced itself"
        time.sleep(0.3)
    supervisor.wait_ready()

    old_web = supervisor.pid_of("web")
    os.kill(old_web, signal.SIGKILL)
    supervisor.wait_for(rf"web \(pid {old_web}\) exited with code -9; restarting in", timeout=30)
    supervisor.wait_for(rf"started web \(pid (?!{old_web}\))\d+\)", timeout=30)
    supervisor.wait_ready()

    children = [supervisor.pid_of(name) for name in ("web", "beat", "serving", "background")]
    redis_url = read_run_file(supervisor.var)["REDIS_URL"]
    started = time.monotonic()
    supervisor.proc.send_signal(signal.SIGTERM)
    code = supervisor.proc.wait(timeout=30)
    took = time.monotonic() - started
    assert code == 0, supervisor.output()
    assert took < 10, f"stopping took {took:.1f} s"
    out = supervisor.output()
    order = [
        out.index(f"{name} did not stop in time") if f"{name} did not stop" in out else out.index(f"stopped {name}")
        for name in ("web", "beat", "serving", "background", "redis")
    ]
    assert order[0] < min(order[1:4]) and max(order[1:4]) < order[4], out
    assert all(_gone(pid) for pid in children)
    assert not redis_answers(redis_url)
    assert _port_free(supervisor.port)
    assert not (supervisor.var / RUN_FILE).exists()


@pytest.mark.timeout(300)
def test_children_die_with_a_killed_supervisor(supervisor):
    supervisor.wait_for(r"started web \(pid \d+\)")
    deadline = time.monotonic() + 120
    while _port_free(supervisor.port):
        assert time.monotonic() < deadline, supervisor.output()
        time.sleep(0.3)
    children = [supervisor.pid_of(name) for name in ("web", "beat", "serving", "background")]
    descendants = [p.pid for p in psutil.Process(supervisor.proc.pid).children(recursive=True)]
    redis_url = read_run_file(supervisor.var)["REDIS_URL"]
    supervisor.proc.kill()  # SIGKILL: no handler runs, no stop() is called
    supervisor.proc.wait()
    deadline = time.monotonic() + 15
    while not (all(_gone(pid) for pid in children + descendants) and _port_free(supervisor.port)):
        assert time.monotonic() < deadline, [p for p in children + descendants if not _gone(p)]
        time.sleep(0.2)
    assert not redis_answers(redis_url)


# A parent like the supervisor: its own SIGTERM handler, and a child whose death signal arrives after the prctl but
# before the exec (the window a SIGKILLed supervisor hits when it dies while starting a child, as under load). The
# child sends it to itself there, deterministically. Prints the child's exit code once it ended or was killed.
_DEATH_SIGNAL_BEFORE_EXEC = """
import os, signal, subprocess, sys
sys.path.insert(0, {root!r})
from app.supervisor import die_with_parent

signal.signal(signal.SIGTERM, lambda *_: None)  # as the supervisor's request_stop, inherited by the fork
prepare = die_with_parent(signal.SIGTERM)

def preexec():
    prepare()
    os.kill(os.getpid(), signal.SIGTERM)  # the supervisor dies here: the kernel sends the death signal

child = subprocess.Popen(["sleep", "30"], preexec_fn=preexec)
try:
    print(child.wait(timeout=5))
except subprocess.TimeoutExpired:
    child.kill()
    print("exec'd and outlived its parent")
"""


def test_a_death_signal_arriving_before_the_exec_kills_the_child_not_the_parents_handler():
    """Caught by the handler the child inherited from the supervisor, the signal was lost at exec: after a killed
    supervisor, two workers were found minutes later, retrying a Redis that was gone (and never stopping)."""
    done = subprocess.run(
        [sys.executable, "-c", _DEATH_SIGNAL_BEFORE_EXEC.format(root=str(Path(__file__).resolve().parents[1]))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == str(-signal.SIGTERM), done.stdout + done.stderr


def test_a_second_run_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _checkout_env(tmp_path / "var", PORT=str(port), APIARY_DEMO="false")
        done = subprocess.run(
            [sys.executable, "-m", "app.supervisor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0].lower()
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


def test_a_bad_apiary_workers_is_one_line_and_starts_nothing(tmp_path):
    env = _checkout_env(tmp_path / "var", PORT=str(free_port()), APIARY_WORKERS="predict:2,train:lots")
    done = subprocess.run(
        [sys.executable, "-m", "app.supervisor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [
        "[apiary] APIARY_WORKERS: the concurrency of 'train' must be a whole number from 1 to 64, got 'lots'"
    ]
    assert not (tmp_path / "var" / "redis").exists()  # nothing was started


@pytest.mark.timeout(300)
def test_apiary_workers_replaces_the_procfile_worker_lines(tmp_path):
    running = RunningSupervisor(tmp_path / "var", APIARY_WORKERS="predict:2,train:1,functions+default:1")
    try:
        running.wait_for(r"Apiary is up\.")
        for name in ("web", "beat", "worker-predict", "worker-train", "worker-functions-default"):
            assert running.pid_of(name)
        assert "started serving" not in running.output()
        deadline = time.monotonic() + 30
        while True:
            seen = {(r["node"].split("@")[0], tuple(r["queues"]), r["concurrency"]) for r in running.heartbeats()}
            if len(seen) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert seen == {
            ("predict", ("predict",), 2),
            ("train", ("train",), 1),
            ("functions-default", ("default", "functions"), 1),
        }
    finally:
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(timeout=30) == 0, running.output()


def test_flask_commands_use_the_system_make_run_started(tmp_path, monkeypatch):
    """A private Redis on a random port, its URL written to var/run.env as make run does: a `flask` command run
    from the checkout with no REDIS_URL set connects to it."""
    from app.supervisor import Supervisor

    var = tmp_path / "var"
    for name in _SESSION_ONLY:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APIARY_VAR_DIR", str(var))
    sup = Supervisor()
    try:
        sup.start_redis()
        sup.write_run_file()
        redis_url = sup.env["REDIS_URL"]
        assert redis_url != "redis://127.0.0.1:6379/0"
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "info"],
            cwd=ROOT,
            env=_checkout_env(var),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        lines = {line.split(":", 1)[0]: line for line in done.stdout.splitlines() if ":" in line}
        assert redis_url in lines["redis"] and lines["redis"].endswith(" ok"), done.stdout
        assert f"var/{RUN_FILE}" in lines["redis"]
        assert str(var / "apiary.db") in lines["database"]
        assert default_namespace(sup.config.SQLALCHEMY_DATABASE_URI) in lines["namespace"]
        assert "0 live" in lines["workers"]
    finally:
        sup.stop()
    assert not (var / RUN_FILE).exists()
