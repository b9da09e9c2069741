"""The jail's guarantees through the real path: a function endpoint called over HTTP, run by the session's Celery
worker, which really holds the platform's secrets in its environment."""

from __future__ import annotations

import psutil
import pytest

from tests.publishing.test_assets import _create
from tests.sandbox.test_escapes import HOARD, SYSCALLS
from tests.sandbox.test_network import TRY_CONNECT, Listener
from tests.serving.test_serving_data import call, mint

SECRET_NAMES = ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "APIARY_VAR_DIR")

READ_ENVIRONMENTS = """
import os

def handler(payload):
    seen = {"os.environ": " ".join(f"{name}={value}" for name, value in os.environ.items())}
    pids = {name for name in os.listdir("/proc") if name.isdigit()} | {"self", "1", str(os.getppid())}
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                seen[pid] = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            seen[pid] = type(exc).__name__
    return seen
"""

NAMESPACES = (
    SYSCALLS
    + """
import subprocess

def handler(payload):
    tool = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /tmp && echo mounted"],
                          capture_output=True, text=True)
    return {
        "unshare -Urm": tool.stdout.strip() or "refused",
        "unshare(CLONE_NEWUSER)": "ok" if in_child(lambda: 0 if syscall("unshare", CLONE_NEWUSER)[0] == 0 else 1) == 0
                                  else "refused",
        "ptrace": errno_or_ok(*syscall("ptrace", 16, 1, 0, 0)),
        "keyctl": errno_or_ok(*syscall("keyctl", 0, -3, 1)),
    }
"""
)

INTERFACES = """
import socket

def handler(payload):
    return [name for _, name in socket.if_nameindex()]
"""

CMDLINE = """
def handler(payload):
    with open("/proc/1/cmdline", "rb") as handle:
        return handle.read().replace(b"\\0", b" ").decode()
"""

HANDLERS = {
    "environments": READ_ENVIRONMENTS,
    "namespaces": NAMESPACES,
    "hoard": HOARD,
    "connect": TRY_CONNECT,
    "interfaces": INTERFACES,
    "cmdline": CMDLINE,
}


@pytest.fixture()
def jail_key(app, client, admin, project, worker):
    endpoints = [{"id": name, "kind": "function", "handler": src} for name, src in HANDLERS.items()]
    created = _create(client, admin, project["project_id"], endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    return mint(client, admin, asset_id, rate_limit=1000)["key"]


def run(client, key, name, payload=None):
    resp = call(client, key, name, method="POST", json=payload if payload is not None else {})
    return resp.status_code, resp.get_json()


def worker_environments(worker) -> list[dict[str, str]]:
    """The environment of the worker and of each of its pool processes, the ones that launch the jail (not the jails:
    warm ones stay alive below the pool processes)."""
    main = psutil.Process(worker.pid)
    return [process.environ() for process in [main, *main.children()] if process.name() != "bwrap"]


def test_the_worker_holds_the_secrets_and_a_handler_sees_none_of_them(client, jail_key, worker, test_env):
    secrets = {name: test_env[name] for name in SECRET_NAMES}
    environments = worker_environments(worker)
    assert len(environments) >= 3  # the worker and its two pool processes
    for environment in environments:
        assert {name: environment.get(name) for name in secrets} == secrets
    status, body = run(client, jail_key, "environments")
    assert status == 200, body
    seen = body["result"]
    assert {"os.environ", "self", "1"} <= set(seen)
    for where, text in seen.items():
        for name, value in secrets.items():
            assert value not in text, (where, name)
            assert f"{name}=" not in text, (where, name)


def test_nested_namespaces_ptrace_and_keyrings_are_refused_through_the_worker(client, jail_key):
    status, body = run(client, jail_key, "namespaces")
    assert status == 200, body
    assert body["result"] == {
        "unshare -Urm": "refused",
        "unshare(CLONE_NEWUSER)": "refused",
        "ptrace": "EPERM",
        "keyctl": "EPERM",
    }


def test_the_jails_total_memory_is_bounded_through_the_worker(client, jail_key):
    # Four children of 100 MB: each under the worker's 256 MB per-process limit, together well past it.
    status, body = run(client, jail_key, "hoard", {"children": 4, "mb": 100, "hold_s": 3})
    assert status == 422, body
    assert body["error"]["code"] == "function_resource_limit"
    status, body = run(client, jail_key, "hoard", {"children": 1, "mb": 20, "hold_s": 0.1})
    assert (status, body) == (200, {"result": "held"})


def test_no_network_and_no_host_path_through_the_worker(client, jail_key):
    listener = Listener("127.0.0.1")
    try:
        assert listener.reachable_from_here("127.0.0.1")
        accepted = listener.accepted
        status, body = run(client, jail_key, "connect", {"hosts": ["127.0.0.1"], "port": listener.port})
        assert (status, body) == (200, {"result": {"127.0.0.1": "ConnectionRefusedError"}})
        assert listener.accepted == accepted
    finally:
        listener.close()
    assert run(client, jail_key, "interfaces") == (200, {"result": ["lo"]})
    status, body = run(client, jail_key, "cmdline")
    assert status == 200 and body["result"].startswith("bwrap --args "), body
    assert "/root" not in body["result"] and "/work" not in body["result"] and "--bind" not in body["result"]
