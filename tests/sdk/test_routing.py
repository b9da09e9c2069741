"""Issue 16 in the SDK against a live server: publish(activate=False), set_routing, forced versions, compare."""

from __future__ import annotations

import time

import pytest

import apiary
from apiary import sql_endpoint

TOP = sql_endpoint(
    "top",
    {
        "source": {"schema": "marts", "table": "customers"},
        "columns": ["customer_key", "plan"],
        "order_by": [{"column": "customer_key", "dir": "asc"}],
        "pagination": {"default_limit": 5, "max_limit": 50},
    },
)


def test_publish_inactive_route_force_and_compare(api, churn_csv):
    project = api.create_project("Sales", "sales")
    project.upload_file("marts.customers", churn_csv)
    svc = project.create_api_service("sales-serving", "Sales", [TOP], publish=True)
    key = svc.create_key("app", rate_limit=1000, can_force_version=True)
    assert key.can_force_version is True

    svc.add_endpoint({**TOP, "query": {**TOP["query"], "pagination": {"default_limit": 7, "max_limit": 50}}})
    svc.publish("seven rows", activate=False)
    assert svc.published_version == 1 and [v.version for v in svc.versions()] == [2, 1]
    assert svc.call("top", api_key=key, method="GET")["count"] == 5  # still version 1

    routing = svc.set_routing({1: 50, 2: 50}, strategy="hash")
    assert routing.strategy == "hash" and routing.entries == {1: 50, 2: 50}
    assert routing.changes[0]["after"]["strategy"] == "hash"
    sticky = {svc.call("top", api_key=key, method="GET", dispatch_key="customer-7")["count"] for _ in range(5)}
    assert len(sticky) == 1
    assert svc.call("top", api_key=key, method="GET", version=2)["count"] == 7
    with pytest.raises(apiary.ValidationError) as bad:
        svc.set_routing({1: 50, 2: 40})
    assert "entries" in str(bad.value.details)

    svc.set_routing(2)
    assert svc.routing().entries == {2: 100} and svc.published_version == 2
    assert svc.call("top", api_key=key, method="GET")["count"] == 7

    deadline = time.monotonic() + 20
    while svc.logs(version=2).total < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    report = svc.compare(1, 2)
    v1, v2 = report["versions"]
    assert v1["calls"] == 1 and v2["calls"] >= 2 and v2["error_rate"] == 0
    assert all(entry.version == 2 for entry in svc.logs(version=2).items)
