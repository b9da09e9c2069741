"""16 clients on two web servers while a new version is published without traffic, routed 90/10, then 100 %, then
rolled back: every answer is a 200 naming the version that made it, and each phase holds from the next call on."""

from __future__ import annotations

import threading
import time

import httpx

from tests.publishing.test_routing import flushed_logs, publish_v2, route
from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture

# What each version answers `top` with: version 3 is the rollback to version 1's config.
LIMIT_OF = {1: 100, 2: 2, 3: 100}
CLIENTS = 16


def test_sixteen_clients_through_a_canary_a_switch_and_a_rollback(app, client, admin, service, two_web_processes):  # noqa: F811
    key = mint(client, admin, service, rate_limit=1_000_000)["key"]
    urls = [f"http://127.0.0.1:{port}/api/service/sales-serving/top" for port in two_web_processes]
    # (sent at, status, version, body matches version, answered at)
    answers: list[tuple[float, int, int | None, bool, float]] = []
    lock, stop = threading.Lock(), threading.Event()

    def hammer(i: int) -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                sent = time.monotonic()
                resp = http.get(urls[i % 2], headers={"X-API-Key": key, "X-Dispatch-Key": f"user-{i}"})
                version = int(resp.headers["X-Service-Version"]) if "X-Service-Version" in resp.headers else None
                matches = resp.status_code == 200 and resp.json().get("limit") == LIMIT_OF.get(version)
                with lock:
                    answers.append((sent, resp.status_code, version, matches, time.monotonic()))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    phases = []  # (change began, change returned, versions allowed from then on)

    def change(action, allowed: set[int]) -> None:
        began = time.monotonic()
        action()
        phases.append((began, time.monotonic(), allowed))
        time.sleep(1.5)

    def canary() -> None:
        body = {"strategy": "random", "entries": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}
        assert route(client, admin, service, body).status_code == 200

    def switch() -> None:
        body = {"strategy": "single", "entries": [{"version": 2, "weight": 100}]}
        assert route(client, admin, service, body).status_code == 200

    def rollback() -> None:
        rolled = client.post(f"/api/publish/assets/{service}/rollback/1", headers=admin.headers)
        assert rolled.status_code == 200 and rolled.get_json()["version"] == 3

    try:
        time.sleep(1)
        change(lambda: publish_v2(client, admin, service, activate=False), {1})
        change(canary, {1, 2})
        change(switch, {2})
        change(rollback, {3})
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)

    assert len(answers) > 200, len(answers)
    assert [a for a in answers if a[1] != 200] == []
    assert all(a[3] for a in answers)
    for (_, returned, allowed), next_began in zip(phases, [p[0] for p in phases[1:]] + [float("inf")], strict=True):
        # A call sent after a change returned (and answered before the next began) follows it, on either server.
        seen = [a[2] for a in answers if returned < a[0] and a[4] < next_began]
        assert seen and set(seen) <= allowed, (allowed, set(seen))
        if allowed == {1, 2}:
            assert seen.count(2) > 0 and seen.count(1) > seen.count(2)

    # The audit log names the same versions, as many times as they answered.
    deadline = time.monotonic() + 20
    while True:
        logs = flushed_logs(app, client, admin, service, limit=1)
        if logs["total"] >= len(answers) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for version in (1, 2, 3):
        counted = flushed_logs(app, client, admin, service, version=version, limit=1)["total"]
        assert counted == sum(1 for a in answers if a[2] == version), version
