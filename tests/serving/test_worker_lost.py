"""A pool process SIGKILLed in the middle of a call (OOM killer, an operator) is a 502 worker_lost the client can
retry, never a 500; the worker replaces the process and the next call works."""

from __future__ import annotations

import signal
import threading
import time

import psutil

from tests.publishing.test_assets import _create
from tests.serving.test_serving_data import call, mint

SLOW = "import time\ndef handler(payload):\n    time.sleep(4)\n    return 'late'\n"
ECHO = "def handler(payload):\n    return payload['x']\n"


def test_a_pool_process_killed_mid_call_is_a_502_worker_lost(app, client, admin, project, worker):
    app.config["FUNCTION_TIMEOUT_SECONDS"] = 8
    endpoints = [
        {"id": "slow", "kind": "function", "handler": SLOW},
        {"id": "echo", "kind": "function", "handler": ECHO},
    ]
    created = _create(client, admin, project["project_id"], endpoints=endpoints)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers)
    key = mint(client, admin, asset_id, rate_limit=1000)["key"]

    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(call(app.test_client(), key, "slow", method="POST", json={}))
    )
    caller.start()
    # The pool process running the call is the one with a child: the sandboxed handler.
    deadline = time.monotonic() + 20
    busy = []
    while not busy:
        assert time.monotonic() < deadline, "the call never reached a pool process"
        busy = [p for p in psutil.Process(worker.pid).children() if p.children()]
        time.sleep(0.05)
    for proc in busy:
        proc.send_signal(signal.SIGKILL)
    caller.join(timeout=30)

    resp = answers[0]
    assert resp.status_code == 502, resp.get_json()
    assert resp.get_json()["error"]["code"] == "worker_lost"
    assert "retry" in resp.get_json()["error"]["message"]
    assert resp.headers["Retry-After"] == "1"
    deadline = time.monotonic() + 30
    while True:  # the worker starts a new pool process; a retry then succeeds
        retry = call(client, key, "echo", method="POST", json={"x": 5})
        if retry.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert retry.get_json() == {"result": 5}
