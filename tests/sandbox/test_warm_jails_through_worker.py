"""Warm jails through the real path: function endpoints called over HTTP, run by the session's Celery worker (two
pool processes, each with its own pool of warm jails)."""

from __future__ import annotations

import os
import signal
import uuid
from collections import defaultdict

import psutil
import pytest

from app.sandbox.jail import UID_RANGE
from tests.conftest import sign_up
from tests.publishing.test_assets import _create
from tests.sandbox.test_warm_jails import STATE

ENDPOINTS = [{"id": name, "kind": "function", "handler": STATE} for name in ("a", "b")]


def publish_service(client, account, project_id: int) -> dict:
    asset_key = f"warm-{uuid.uuid4().hex[:8]}"
    created = _create(client, account, project_id, key=asset_key, endpoints=ENDPOINTS)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    published = client.post(f"/api/publish/assets/{asset_id}/publish", headers=account.headers)
    assert published.status_code == 200, published.get_json()
    minted = client.post(
        f"/api/publish/assets/{asset_id}/api-keys", headers=account.headers, json={"name": "k", "rate_limit": 1000}
    )
    assert minted.status_code == 201, minted.get_json()
    return {"asset_key": asset_key, "asset_id": asset_id, "key": minted.get_json()["key"], "account": account}


def post(client, service: dict, endpoint: str, payload=None):
    return client.post(
        f"/api/service/{service['asset_key']}/{endpoint}", headers={"X-API-Key": service["key"]}, json=payload or {}
    )


def served(client, service: dict, endpoint: str, payload=None) -> dict:
    resp = post(client, service, endpoint, payload)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["result"]


def calls_by_jail(results: list[dict]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for result in results:
        found[result["token"]].append(result["calls"])
    return dict(found)


def warm_up(client, service: dict, endpoint: str, payload=None) -> list[dict]:
    """Calls until both pool processes hold a warm jail of the endpoint (two tokens seen), 20 calls at most: later
    calls then land on a warm jail whichever process Celery hands them to."""
    results = []
    while len(results) < 20 and len({r["token"] for r in results}) < 2:
        results.append(served(client, service, endpoint, payload))
    return results


@pytest.fixture()
def service(client, admin, project, worker) -> dict:
    return publish_service(client, admin, project["project_id"])


def test_consecutive_calls_of_an_endpoint_reuse_a_warm_jail(client, service):
    results = [served(client, service, "a") for _ in range(8)]
    jails = calls_by_jail(results)
    # At most one warm jail per pool process, and each counts only this endpoint's calls, one after the other.
    assert len(jails) <= 2, jails
    for calls in jails.values():
        assert calls == list(range(1, len(calls) + 1)), jails
    assert max(len(calls) for calls in jails.values()) >= 4, jails


def test_another_endpoint_version_or_organization_never_sees_the_state_left_behind(client, service):
    a_tokens = {r["token"] for r in warm_up(client, service, "a", {"do": "leave"})}
    for result in served_n(client, service, "a", 4):  # the state is really there, for the same endpoint
        assert result["env"] == result["token"] and result["tmp"] == ["left-by"], result
        a_tokens.add(result["token"])
    post(client, service, "a", {"do": "spawn"})

    def assert_clean(results: list[dict]) -> set[str]:
        for result in results:
            assert result["env"] is None and result["tmp"] == [], result
            assert not [p for p in result["processes"] if "sleep" in p], result
        for calls in calls_by_jail(results).values():
            assert calls == list(range(1, len(calls) + 1))
        tokens = {r["token"] for r in results}
        assert not tokens & a_tokens
        return tokens

    # Another endpoint of the same service, with the same source.
    assert_clean(served_n(client, service, "b", 6))
    # The next published version of the same endpoint, same source.
    url = f"/api/publish/assets/{service['asset_id']}"
    edited = client.put(
        url, headers=service["account"].headers, json={"config": {"endpoints": ENDPOINTS}, "change_note": "same again"}
    )
    assert edited.status_code == 200, edited.get_json()
    assert client.post(f"{url}/publish", headers=service["account"].headers).get_json()["version"] == 2
    assert_clean(served_n(client, service, "a", 6))
    # Another organization's service, same endpoint id, same source.
    other = sign_up(client)
    project = client.post("/api/projects", headers=other.headers, json={"name": "Other", "slug": "other"}).get_json()
    assert_clean(served_n(client, publish_service(client, other, project["project_id"]), "a", 6))


def served_n(client, service: dict, endpoint: str, count: int, payload=None) -> list[dict]:
    return [served(client, service, endpoint, payload) for _ in range(count)]


def test_a_failed_call_ends_its_warm_jail(client, service):
    before = calls_by_jail(warm_up(client, service, "a"))
    failed = post(client, service, "a", {"do": "raise"})
    assert failed.status_code == 422, failed.get_json()
    message = failed.get_json()["error"]["message"]
    token, calls = message.split("ValueError: ")[1].split(" ")[:2]
    after = calls_by_jail(served_n(client, service, "a", 8))
    assert token not in after, (token, after)
    # The jail that failed was warm: it had served calls before this one (which pool process Celery handed each
    # call to is its own choice: warm-up's 20 calls may all have gone to one of them).
    assert int(calls) > 1, (message, before)


def jailed_bootstraps(worker) -> list[psutil.Process]:
    below = psutil.Process(worker.pid).children(recursive=True)
    return [p for p in below if p.uids().real >= UID_RANGE[0]]


def test_a_warm_jail_killed_from_outside_is_replaced_transparently(client, service, worker):
    before = calls_by_jail(warm_up(client, service, "a"))
    victims = jailed_bootstraps(worker)
    assert victims
    for victim in victims:
        os.kill(victim.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=5)
    after = served_n(client, service, "a", 4)
    assert not {r["token"] for r in after} & set(before)
    for calls in calls_by_jail(after).values():
        assert calls == list(range(1, len(calls) + 1))


def test_limits_still_hold_on_warm_jails_through_the_worker(client, service):
    warm_up(client, service, "a")
    for payload, status, code in [
        ({"do": "fork_hoard"}, 422, "function_resource_limit"),
        ({"do": "sleep"}, 504, "function_timeout"),
        ({"do": "huge"}, 422, "function_result_too_large"),
    ]:
        served_n(client, service, "a", 2)
        resp = post(client, service, "a", payload)
        assert (resp.status_code, resp.get_json()["error"]["code"]) == (status, code), resp.get_json()
    assert served(client, service, "a")["env"] is None


def test_the_test_pane_never_uses_or_leaves_a_warm_jail(client, service):
    published = {r["token"] for r in warm_up(client, service, "a")}
    url = f"/api/api-services/{service['asset_id']}/endpoints/a/test"
    dry = []
    for _ in range(3):
        resp = client.post(url, headers=service["account"].headers, json={})
        assert resp.status_code == 200, resp.get_json()
        dry.append(resp.get_json()["result"])
    assert [r["calls"] for r in dry] == [1, 1, 1]
    dry_tokens = {r["token"] for r in dry}
    assert len(dry_tokens) == 3 and not dry_tokens & published
    # Nor did a dry run leave its jail for live calls.
    assert not {r["token"] for r in served_n(client, service, "a", 4)} & dry_tokens


MEMFD = """
import os

TOKEN = os.urandom(8).hex()
CALLS = 0
KEEP = []


def handler(payload):
    global CALLS
    CALLS += 1
    for i in range(payload.get("files", 0)):
        try:
            fd = os.memfd_create(f"hoard{i}")
        except OSError as exc:
            if payload.get("catch"):
                return {"token": TOKEN, "calls": CALLS, "held_mb": len(KEEP) * payload["mb"], "refused": repr(exc)}
            raise RuntimeError(f"{TOKEN} {CALLS} {exc!r}") from None
        for _ in range(payload["mb"]):
            os.write(fd, b"y" * (1 << 20))
        KEEP.append(fd)
    return {"token": TOKEN, "calls": CALLS, "held_mb": len(KEEP) * payload.get("mb", 0)}
"""


def host_shmem_mb() -> int:
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) // 1024 for line in handle if line.startswith("Shmem:"))


def test_memfd_cannot_hold_memory_past_the_limit_and_a_refused_call_ends_its_warm_jail(client, admin, project, worker):
    # The hole found by probing: 20 memfds of 15 MB held 300 MB per call (600 MB after two) in a warm jail with a
    # 256 MB limit, outside RSS and PSS; the host's Shmem grew from 77 MB to 691 MB until the jail aged out.
    endpoint = [{"id": "m", "kind": "function", "handler": MEMFD}]
    asset_key = f"memfd-{uuid.uuid4().hex[:8]}"
    created = _create(client, admin, project["project_id"], key=asset_key, endpoints=endpoint)
    assert created.status_code == 201, created.get_json()
    asset_id = created.get_json()["id"]
    assert client.post(f"/api/publish/assets/{asset_id}/publish", headers=admin.headers).status_code == 200
    minted = client.post(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers, json={"name": "k"})
    service = {"asset_key": asset_key, "key": minted.get_json()["key"]}
    before = calls_by_jail(warm_up(client, service, "m"))
    shmem_before = host_shmem_mb()
    for _ in range(2):
        caught = served(client, service, "m", {"files": 20, "mb": 15, "catch": True})
        assert caught["held_mb"] == 0 and "PermissionError" in caught["refused"], caught
        assert host_shmem_mb() - shmem_before < 256
    failed = post(client, service, "m", {"files": 20, "mb": 15})
    assert failed.status_code == 422, failed.get_json()
    error = failed.get_json()["error"]
    assert error["code"] == "function_error" and "PermissionError" in error["message"], error
    assert host_shmem_mb() - shmem_before < 256
    # The jail that refused was warm (it had served calls before this one: warm-up's 20 calls may all have gone to
    # one pool process, the two refused ones above to the other); the next calls never land on it again.
    token, calls = error["message"].split("RuntimeError: ")[1].split(" ")[:2]
    assert int(calls) > 1, (error["message"], before)
    after = calls_by_jail(served_n(client, service, "m", 8))
    assert token not in after, (token, after)
