"""examples/quickstart.py as documented: against a live server, as the admin `make run` creates (username
admin@example.com), twice in a row, then from a second organization, building all four endpoint kinds (and a model
endpoint with enrichment, explanations and a context), while the
demo `make run` builds (project sales, marts.dim_customer, service sales-serving) keeps answering untouched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx

from tests.sdk.conftest import PASSWORD, ROOT, SDK_SRC, Login

ADMIN_EMAIL = "admin@example.com"
DEMO_COLUMNS = ["customer_key", "name", "email", "phone", "region", "plan", "tenure", "monthly_fee", "churned"]


def _run(login: Login, *args: str) -> dict[str, object]:
    env = {
        **os.environ,
        "PYTHONPATH": str(SDK_SRC),
        "APIARY_URL": login.url,
        "APIARY_USERNAME": login.username,
        "APIARY_PASSWORD": login.password,
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    return {label: json.loads(value) for label, value in lines.items()}


def _demo(app, server_url: str) -> tuple[Login, str]:
    """What `make run` does on first start: the admin admin@example.com in organization Apiary, then `flask demo`."""
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["users", "create", "--email", ADMIN_EMAIL, "--password", PASSWORD, "--org", "Apiary", "--role", "admin"]
    )
    assert made.exit_code == 0, made.output
    built = runner.invoke(args=["demo", "--base-url", server_url])
    assert built.exit_code == 0, built.output
    return Login(server_url, ADMIN_EMAIL, PASSWORD), re.search(r"API key \(shown once\): (dk_\S+)", built.output)[1]


_patient = httpx.Client(timeout=120)


def _assert_demo_answers(admin: Login, secret: str) -> None:
    """The curl lines `make run` prints still work, on the demo's own table with its own columns."""
    url = f"{admin.url}/api/service/sales-serving"
    key = {"X-API-Key": secret}
    httpx = _patient  # the first model call loads the model on the worker, slowly on a loaded machine
    customer = httpx.get(f"{url}/customer", params={"id": 42}, headers=key)
    assert customer.status_code == 200 and sorted(customer.json()["rows"][0]) == sorted(DEMO_COLUMNS), customer.text
    risk = httpx.post(
        f"{url}/churn_risk",
        headers=key,
        json={"features": {"tenure": 8, "plan": "basic", "monthly_fee": 20.0, "region": "EU"}},
    )
    assert risk.status_code == 200 and risk.json()["count"] == 1, risk.text
    top = httpx.get(f"{url}/top_tenure", params={"region": "EU", "limit": 3}, headers=key)
    assert top.status_code == 200 and top.json()["count"] == 3, top.text
    segment = httpx.post(f"{url}/segment", headers=key, json={"tenure": 5})
    assert segment.status_code == 200 and segment.json()["result"]["segment"] == "new", segment.text


def _assert_four_kinds(out: dict[str, object]) -> None:
    assert out["service"]["endpoints"] == ["customer", "churn_risk", "churn_by_id", "top_tenure", "segment"]
    assert out["key prefix"].startswith("dk_")
    assert out["predictions"] == [1]
    assert [row["customer_key"] for row in out["customer 42"]] == [42]
    assert len(out["top tenure EU"]) == 3 and {row["region"] for row in out["top tenure EU"]} == {"EU"}
    tenures = [row["tenure"] for row in out["top tenure EU"]]
    assert tenures == sorted(tenures, reverse=True)
    assert out["segment"] == {"segment": "new", "tenure": 5}
    assert out["dry run"]["dry"] is True and out["dry run"]["predictions"] == [1]
    # The model by customer id: features looked up from customer 42's row, an unknown id ignored in place,
    # explanations that add up to the probability, the context echoed by the dry run.
    by_id = out["by customer id"]
    [customer] = out["customer 42"]
    assert by_id["enriched"][0] == {
        "tenure": customer["tenure"],
        "plan": customer["plan"],
        "monthly": customer["monthly"],
    }
    assert by_id["predictions"][1]["ignored"] is True and by_id["enriched"][1] is None
    explained = by_id["explanations"][0]
    assert len(explained["contributions"]) == 2 and by_id["explanations"][1] is None
    total = explained["base"] + sum(explained["contributions"].values()) + explained["others"]
    assert abs(total - explained["output"]) < 1e-6
    assert (
        abs(explained["output"] - max(by_id["probabilities"][0].values())) < 1e-6
        or abs(explained["output"] - by_id["probabilities"][0].get("1", by_id["probabilities"][0].get(1, -1))) < 1e-6
    )
    assert out["dry run with context"] == {"source": "quickstart"}


def test_quickstart_runs_as_documented_twice_and_from_a_second_org(app, server_url, login, live_worker):
    admin, secret = _demo(app, server_url)
    _assert_demo_answers(admin, secret)

    first = _run(admin)  # the documented defaults: --project quickstart
    assert first["project"]["slug"] == "quickstart"
    assert first["dataset"]["rows"] == 200 and first["dataset"]["name"] == "uploads.quickstart_customers"
    assert isinstance(first["model"]["model_id"], int) and "accuracy" in first["model"]["metrics"]
    assert first["service"]["asset_key"] == f"quickstart-{first['project']['id']}"
    assert first["service"]["version"] == 1
    _assert_four_kinds(first)
    _assert_demo_answers(admin, secret)

    again = _run(admin)
    assert again["project"] == first["project"] and again["service"]["id"] == first["service"]["id"]
    assert again["service"]["version"] == 2 and again["model"]["model_id"] != first["model"]["model_id"]
    _assert_four_kinds(again)
    _assert_demo_answers(admin, secret)

    other = _run(login)  # a second organization's admin (signed up over HTTP): its own project and service key
    assert other["project"]["id"] != first["project"]["id"]
    assert other["service"]["asset_key"] == f"quickstart-{other['project']['id']}" and other["service"]["version"] == 1
    _assert_four_kinds(other)
    _assert_demo_answers(admin, secret)

    with httpx.Client(base_url=server_url) as http:  # the demo's project still has only the demo's table and model
        token = http.post("/api/auth/login", json={"username": ADMIN_EMAIL, "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}", "X-Project-Id": "sales"}
        assert [d["name"] for d in http.get("/api/datasets", headers=headers).json()["items"]] == ["marts.dim_customer"]
        assert {m["name"] for m in http.get("/api/models", headers=headers).json()["models"]} == {"churn_risk"}
