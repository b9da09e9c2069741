"""Function endpoints end to end: a real worker runs each call in the sandbox."""

import socket
import time

import pytest

from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import call, mint

ECHO = "def handler(payload):\n    return {'doubled': payload['x'] * 2}\n"
HANDLERS = {
    "echo": ECHO,
    "env": "import os\ndef handler(payload):\n    return sorted(os.environ)\n",
    "net": (
        "import socket\n"
        "def handler(payload):\n"
        "    s = socket.create_connection(('127.0.0.1', payload['port']), timeout=1)\n"
        "    return 'connected'\n"
    ),
    "write": "def handler(payload):\n    open(payload['path'], 'w').write('x')\n    return 'written'\n",
    "tmp": "def handler(payload):\n    open('/tmp/ok.txt', 'w').write('x')\n    return open('/tmp/ok.txt').read()\n",
    "loop": "def handler(payload):\n    while True:\n        pass\n",
    "memory": "def handler(payload):\n    b = []\n    while True:\n        b.append(bytearray(50 * 1024 * 1024))\n",
    "fork": "import os\ndef handler(payload):\n    while True:\n        os.fork()\n",
    "huge": "def handler(payload):\n    return 'x' * (100 * 1024 * 1024)\n",
    "boom": "def handler(payload):\n    raise ValueError('bad input: ' + str(payload.get('x')))\n",
}


@pytest.fixture()
def functions(app, client, admin, project, worker):
    app.config["FUNCTION_TIMEOUT_SECONDS"] = 5
    endpoints = [{"id": name, "kind": "function", "handler": src} for name, src in HANDLERS.items()]
    created = _create(client, admin, project["project_id"], endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    return mint(client, admin, asset_id, rate_limit=1000)["key"]


def run(client, key, name, payload=None):
    return call(client, key, name, method="POST", json=payload if payload is not None else {})


def test_function_result_and_errors(client, functions):
    ok = run(client, functions, "echo", {"x": 21})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json() == {"result": {"doubled": 42}}
    boom = run(client, functions, "boom", {"x": 7})
    assert boom.status_code == 422
    assert "bad input: 7" in boom.get_json()["error"]["message"] and "/work" not in boom.get_json()["error"]["message"]
    assert call(client, functions, "echo").status_code == 405


def test_the_workers_log_names_a_call_but_never_holds_its_answer(client, functions, worker):
    """Answers (function output, predictions, rows) may be personal data: the worker logs the task, not its result."""

    def successes() -> list[str]:
        lines = worker.log_path.read_text().splitlines()
        return [line for line in lines if "tasks.functions.run_function[" in line and "succeeded" in line]

    before = len(successes())
    marker = 424242424242
    ok = run(client, functions, "echo", {"x": marker // 2})
    assert ok.status_code == 200 and ok.get_json() == {"result": {"doubled": marker}}
    deadline = time.monotonic() + 15
    while len(successes()) == before:
        assert time.monotonic() < deadline, "the worker did not log the call"
        time.sleep(0.1)
    assert str(marker) not in worker.log_path.read_text()


def test_sandbox_hides_secrets_network_and_filesystem(client, functions, test_env):
    env = run(client, functions, "env").get_json()["result"]
    assert not {"SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "APIARY_VAR_DIR"} & set(env)
    redis_port = int(test_env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    socket.create_connection(("127.0.0.1", redis_port), timeout=2).close()  # reachable from outside the jail
    assert run(client, functions, "net", {"port": redis_port}).status_code == 422
    for path in ("/work/main/pwned.txt", "/etc/pwned", test_env["APIARY_VAR_DIR"] + "/pwned"):
        assert run(client, functions, "write", {"path": path}).status_code == 422, path
    assert run(client, functions, "tmp").get_json() == {"result": "x"}


@pytest.mark.parametrize(
    "name,statuses", [("loop", {504}), ("memory", {422, 504}), ("fork", {422, 504}), ("huge", {422})]
)
def test_abuse_ends_cleanly_within_the_deadline_and_the_next_call_works(client, functions, name, statuses):
    started = time.monotonic()
    resp = run(client, functions, name)
    assert resp.status_code in statuses, resp.get_json()
    assert time.monotonic() - started < 5 + 5
    assert run(client, functions, "echo", {"x": 1}).get_json() == {"result": {"doubled": 2}}
