"""`flask services publish --inactive`, `flask services route`, `flask services compare`, `flask services logs
--version` and `flask keys mint --can-force-version`, checked against what serving answers."""

from __future__ import annotations

from tests.publishing.test_routing import TOP_V2, flushed_logs, served_version
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixture
from tests.test_cli_lifecycle import _fails, _json, _ok


def test_publish_inactive_route_and_compare_from_the_cli(app, client, admin, service, runner):  # noqa: F811
    key = mint(client, admin, service, rate_limit=1000)["key"]
    asset = client.get(f"/api/publish/assets/{service}", headers=admin.headers).get_json()
    endpoints = [TOP_V2 if ep["id"] == "top" else ep for ep in asset["config"]["endpoints"]]
    client.put(f"/api/publish/assets/{service}", headers=admin.headers, json={"config": {"endpoints": endpoints}})

    published = _ok(runner.invoke(args=["services", "publish", "sales-serving", "--inactive"]))
    assert "version 2 without traffic" in published.stdout
    assert served_version(call(client, key, "top")) == 1
    assert _ok(runner.invoke(args=["services", "route", "sales-serving"])).stdout.strip() == (
        "sales-serving: single v1 100%"
    )

    canary = _ok(runner.invoke(args=["services", "route", "sales-serving", "--weight", "1=90", "--weight", "2=10"]))
    assert canary.stdout.strip() == "sales-serving: random v1 90%, v2 10%"
    _fails(runner.invoke(args=["services", "route", "sales-serving", "--weight", "1=90", "--weight", "2=5"]), "100")
    _fails(runner.invoke(args=["services", "route", "sales-serving", "--weight", "one=100"]), "VERSION=WEIGHT")
    _fails(runner.invoke(args=["services", "route", "sales-serving", "--weight", "7=100"]), "version 7")

    full = _json(runner.invoke(args=["services", "route", "sales-serving", "--weight", "2=100", "--json"]))
    assert full["strategy"] == "single" and full["entries"] == [{"version": 2, "weight": 100}]
    assert full["changes"][0]["after"]["entries"] == [{"version": 2, "weight": 100}]
    assert [served_version(call(client, key, "top")) for _ in range(3)] == [2, 2, 2]

    flushed_logs(app, client, admin, service)
    logs = _ok(runner.invoke(args=["services", "logs", "sales-serving", "--version", "2"])).stdout.splitlines()
    assert len(logs) == 4 and all(line.endswith("\t2") for line in logs[1:])
    report = _json(runner.invoke(args=["services", "compare", "sales-serving", "1", "2", "--json"]))
    assert [(v["version"], v["calls"]) for v in report["versions"]] == [(1, 1), (2, 3)]
    text = _ok(runner.invoke(args=["services", "compare", "sales-serving", "1", "2"])).stdout.splitlines()
    assert text[0].startswith("version\tcalls") and text[2].startswith("2\t3\t0.00%")
    _fails(runner.invoke(args=["services", "compare", "sales-serving", "1", "9"]), "version 9")


def test_keys_mint_can_force_version(app, client, admin, service, runner):  # noqa: F811
    minted = _json(
        runner.invoke(args=["keys", "mint", "sales-serving", "--name", "ops", "--can-force-version", "--json"])
    )
    assert minted["can_force_version"] is True
    forced = client.get(
        "/api/service/sales-serving/top", headers={"X-API-Key": minted["key"], "X-Service-Version": "1"}
    )
    assert served_version(forced) == 1
    updated = _json(
        runner.invoke(args=["keys", "update", "sales-serving", str(minted["id"]), "--cannot-force-version", "--json"])
    )
    assert updated["can_force_version"] is False
    refused = client.get(
        "/api/service/sales-serving/top", headers={"X-API-Key": minted["key"], "X-Service-Version": "1"}
    )
    assert refused.status_code == 403
