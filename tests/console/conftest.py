"""Console fixtures: a Flask test client signed in through the login form, with the session's CSRF token at hand."""

from __future__ import annotations

import io
import re

import pytest

from tests.conftest import Account

CUSTOMERS_CSV = (
    "customer_key,name,email,region,tenure\n"
    "1,Ada Lovelace,ada@example.com,EU,12\n"
    "2,Grace Hopper,grace@example.com,US,40\n"
    "3,Alan Turing,alan@example.com,EU,7\n"
)


class Console:
    """A browser-like client: the session cookie, and the CSRF token sent with every form post."""

    def __init__(self, client):
        self.client = client

    @property
    def token(self) -> str:
        with self.client.session_transaction() as session:
            return session.get("csrf", "")

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token)
        return self.client.post(path, data=data, **kwargs)

    def post_json(self, path: str, body: dict):
        headers = {"X-CSRF-Token": self.token, "X-Requested-With": "fetch"}
        return self.client.post(path, json=body, headers=headers)

    def login(self, username: str, password: str):
        page = self.client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        return self.client.post("/login", data={"username": username, "password": password, "csrf_token": token})

    def upload(self, project_id: int, csv_text: str, filename: str = "customers.csv", **fields):
        data = {"file": (io.BytesIO(csv_text.encode()), filename), **fields}
        return self.post(f"/projects/{project_id}/datasets", data, content_type="multipart/form-data")


def signed_in(app, account: Account) -> Console:
    console = Console(app.test_client())
    resp = console.login(account.username, account.password)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return console


@pytest.fixture()
def console(app, admin) -> Console:
    return signed_in(app, admin)


@pytest.fixture()
def customers(console, project) -> str:
    """The project's dataset uploads.customers, uploaded through the console."""
    resp = console.upload(project["project_id"], CUSTOMERS_CSV)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return "uploads.customers"


@pytest.fixture()
def service(console, project) -> dict:
    """A draft API service of the project, created on the Settings page."""
    pid = project["project_id"]
    resp = console.post(f"/projects/{pid}/settings/services", {"title": "Sales serving", "asset_key": "sales-serving"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    service_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    return {"id": service_id, "url": f"/projects/{pid}/settings/services/{service_id}", "project_id": pid}


def lookup_form(endpoint_id: str = "customer", **overrides) -> dict:
    return {
        "id": endpoint_id,
        "kind": "lookup",
        "dataset": "uploads.customers",
        "key_column": "customer_key",
        "key_param": "id",
        "columns": "",
        "max_results": "10",
        "cache_ttl_seconds": "0",
        **overrides,
    }


def churn_csv(n: int = 120, seed: int = 7) -> str:
    """A learnable churn table: short tenure on the basic plan churns."""
    import random

    rng = random.Random(seed)
    lines = ["customer_key,tenure,monthly,plan,churned"]
    for i in range(n):
        tenure, plan = rng.randint(1, 60), rng.choice(["basic", "premium"])
        churned = int((tenure < 20 and plan == "basic") or rng.random() < 0.05)
        lines.append(f"{i + 1},{tenure},{round(rng.uniform(10, 90), 2)},{plan},{churned}")
    return "\n".join(lines) + "\n"


def signed_up_api(base: str, prefix: str, password: str, timeout: float = 60):
    """A fresh organization signed up and logged in over the REST API of a live server:
    (client, auth headers, username)."""
    import uuid

    import httpx

    username = f"{prefix}_{uuid.uuid4().hex[:8]}"
    http = httpx.Client(base_url=base, timeout=timeout)
    account = {
        "org_name": f"Org {username}",
        "username": username,
        "email": f"{username}@example.com",
        "password": password,
    }
    assert http.post("/api/auth/register", json=account).status_code == 201
    token = http.post("/api/auth/login", json={"username": username, "password": password}).json()["access_token"]
    return http, {"Authorization": f"Bearer {token}"}, username
