"""What a handler can see and reach: no secrets, no network, nothing writable outside its private /tmp."""

from __future__ import annotations

import os
import socket

import pytest

from tests.sandbox.conftest import call, failure

SECRETS = {
    "SECRET_KEY": "s3cr3t-key-value",
    "DATABASE_URL": "postgresql://app:hunter2@db/apiary",
    "REDIS_URL": "redis://:hunter2@127.0.0.1:6379/0",
    "JWT_SECRET_KEY": "jwt-s3cr3t-value",
}


@pytest.fixture()
def secrets_in_worker_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def test_environment_secrets_are_invisible(secrets_in_worker_env):
    env = call("import os\n\ndef handler(payload):\n    return dict(os.environ)\n")
    assert not set(secrets_in_worker_env) & set(env)
    assert not any(value in " ".join(env.values()) for value in secrets_in_worker_env.values())
    assert env["HOME"] == "/tmp"


def test_no_process_environment_in_proc_holds_a_secret(secrets_in_worker_env):
    source = """
        import os

        def handler(payload):
            seen = {}
            for pid in [name for name in os.listdir("/proc") if name.isdigit()] + ["1", "self"]:
                try:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        seen[pid] = handle.read().decode("utf-8", "replace")
                except OSError as exc:
                    seen[pid] = type(exc).__name__
            return seen
    """
    seen = call(source)
    # Only the jail's own processes exist (its init and the handler): the host's are not even listed.
    assert len([pid for pid in seen if pid.isdigit()]) <= 3
    joined = " ".join(seen.values())
    for value in secrets_in_worker_env.values():
        assert value not in joined


CONNECT = """
import socket

def handler(payload):
    sock = socket.socket()
    sock.settimeout(1)
    sock.connect((payload["host"], payload["port"]))
    return "connected"
"""


def test_redis_is_unreachable(redis_url):
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # reachable from the worker itself
    err = failure(CONNECT, {"host": "127.0.0.1", "port": port})
    assert err.code == "function_error"
    assert "Error" in err.details["type"]


def test_unix_sockets_of_the_host_are_not_there():
    source = """
        import os

        def handler(payload):
            return [path for path in ("/var/run/postgresql", "/run", "/var", "/tmp/.s.PGSQL.5432") if os.path.exists(path)]
    """
    assert call(source) == []


def test_only_loopback_exists_and_outside_addresses_fail():
    err = failure(CONNECT, {"host": "1.1.1.1", "port": 80})
    assert err.code == "function_error"
    assert err.details["type"] in {"OSError", "TimeoutError", "ConnectionRefusedError"}


WRITE = """
import os

def handler(payload):
    path = payload["path"]
    with open(path, "w") as handle:
        handle.write("pwned")
    return os.path.getsize(path)
"""


@pytest.mark.parametrize(
    "path", ["/work/main/pwned.txt", "/root/pwned", "/etc/pwned", "/usr/pwned", "pwned-in-cwd", "/pwned"]
)
def test_writing_outside_tmp_fails(path):
    err = failure(WRITE, {"path": path})
    assert err.code == "function_error"
    assert err.details["type"] in {"OSError", "PermissionError", "FileNotFoundError"}
    assert not os.path.exists(path)


def test_tmp_is_writable_and_private_to_the_call():
    assert call(WRITE, {"path": "/tmp/scratch.txt"}) == 5
    assert not os.path.exists("/tmp/scratch.txt")
    assert call("import os\n\ndef handler(payload):\n    return os.listdir('/tmp')\n") == []


def test_tmp_is_size_limited():
    source = """
        def handler(payload):
            with open("/tmp/big", "wb") as handle:
                for _ in range(64):
                    handle.write(b"x" * 1024 * 1024)
    """
    err = failure(source, tmp_mb=4)
    assert err.code in {"function_error", "function_resource_limit"}


def test_project_files_and_site_packages_are_not_visible():
    source = """
        import os, sys

        def handler(payload):
            visible = [p for p in ("/work", "/home", "/var", "/srv", "/opt") if os.path.exists(p)]
            sites = [p for p in sys.path if os.path.isdir(p) and "site-packages" in p and os.listdir(p)]
            try:
                import flask  # noqa: F401
                visible.append("flask")
            except ImportError:
                pass
            return visible + sites
    """
    assert call(source) == []


def test_the_handler_does_not_run_as_root():
    source = """
        import os

        def handler(payload):
            status = open("/proc/self/status").read()
            caps = [line.split()[1] for line in status.splitlines() if line.startswith("CapEff")]
            return {"uid": os.getuid(), "cap_eff": caps[0]}
    """
    seen = call(source)
    assert seen["uid"] != 0
    assert int(seen["cap_eff"], 16) == 0
