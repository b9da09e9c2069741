"""Issue 11 in a real browser: Chromium on the console served by gunicorn. Diff two versions side by side, roll
back, edit a key (allowed columns, row scope) and rotate it with a grace period; each checked through serving."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.conftest import CUSTOMERS_CSV, signed_up_api
from tests.console.test_browser import ARTIFACTS, browser_page, live_server  # noqa: F401 - fixtures

PASSWORD = "correct horse battery staple"


def _lifecycle_shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"lifecycle-{name}.png"), full_page=True)


def _seed(base: str) -> dict:
    """Over the REST API: an organization, a project with customers, a service published twice, and a key."""
    http, auth, username = signed_up_api(base, "lc", PASSWORD, timeout=60)
    project = http.post(
        "/api/projects", headers=auth, json={"name": "Sales", "slug": "sales", "icon": "folder", "color": "#B45309"}
    ).json()
    scoped = {**auth, "X-Project-Id": str(project["project_id"])}
    upload = http.post(
        "/api/datasets/file/upload",
        headers=scoped,
        data={"name": "uploads.customers"},
        files={"file": ("customers.csv", CUSTOMERS_CSV.encode(), "text/csv")},
    )
    assert upload.status_code == 201, upload.text
    lookup = {
        "id": "customer",
        "kind": "lookup",
        "dataset": "uploads.customers",
        "key_column": "customer_key",
        "cache_ttl_seconds": 0,
    }
    created = http.post(
        "/api/publish/assets",
        headers=scoped,
        json={
            "asset_type": "api_service",
            "asset_key": "sales-serving",
            "title": "Sales serving",
            "description": "",
            "config": {"endpoints": [lookup]},
            "theme": {},
            "roles": [],
            "is_public": False,
            "icon": "",
            "sort_order": 0,
        },
    )
    assert created.status_code == 201, created.text
    asset_id = created.json()["id"]
    assert http.post(f"/api/publish/assets/{asset_id}/publish", headers=auth).json()["version"] == 1
    narrowed = {**lookup, "columns": ["customer_key", "region"]}
    assert (
        http.put(
            f"/api/publish/assets/{asset_id}",
            headers=auth,
            json={"config": {"endpoints": [narrowed]}, "change_note": "fewer columns"},
        ).status_code
        == 200
    )
    assert http.post(f"/api/publish/assets/{asset_id}/publish", headers=auth).json()["version"] == 2
    key = http.post(f"/api/publish/assets/{asset_id}/api-keys", headers=auth, json={"name": "app"}).json()
    return {
        "username": username,
        "project_id": project["project_id"],
        "asset_id": asset_id,
        "key": key,
        "auth": auth,
        "http": http,
    }


def _lookup(http: httpx.Client, secret: str, customer: int) -> httpx.Response:
    return http.get("/api/service/sales-serving/customer", params={"id": customer}, headers={"X-API-Key": secret})


def test_rollback_diff_key_edit_and_rotate_in_a_browser(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server
    seed = _seed(base)
    http, secret = seed["http"], seed["key"]["key"]
    assert set(_lookup(http, secret, 1).json()["rows"][0]) == {"customer_key", "region"}

    page.goto(f"{base}/login")
    page.fill("#f-username", seed["username"])
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{base}/projects/{seed['project_id']}/settings/services/{seed['asset_id']}")
    expect(page.locator("#versions li[data-version]")).to_have_count(2)

    # Diff: v1 and v2 side by side, the changed path listed.
    page.click("#versions a[data-diff='2']")
    expect(page.get_by_role("heading", name=re.compile(r"1 change from v1 to v2"))).to_be_visible()
    expect(page.locator(".diff-table")).to_contain_text("config.endpoints.customer.columns")
    left, right = page.locator("pre[data-side=left]"), page.locator("pre[data-side=right]")
    expect(left).to_contain_text('"columns": null')
    expect(right).to_contain_text('"region"')
    left_box, right_box = left.bounding_box(), right.bounding_box()
    assert (
        abs(left_box["y"] - right_box["y"]) < 2 and right_box["x"] > left_box["x"] + left_box["width"]
    )  # side by side
    _lifecycle_shot(page, "01-diff")

    # Rollback to v1 (the confirm dialog is accepted): served as v3 with every column again.
    page.click("text=← Sales serving · Published versions")
    page.click("#versions li[data-version='1'] button:has-text('Roll back to v1')")
    expect(page.get_by_text("Version 1 is published again as version 3.")).to_be_visible()
    expect(page.locator("#versions li[data-version]")).to_have_count(3)
    assert "email" in _lookup(http, secret, 1).json()["rows"][0]
    _lifecycle_shot(page, "02-rolled-back")

    # Key edit: allowed columns and row scope; the next call is narrowed.
    page.click(f"a[data-edit-key='{seed['key']['id']}']")
    page.fill("#edit-f-allowed_columns", "customer_key, region")
    page.fill("#edit-f-row_scope", "region=EU")
    page.fill("#edit-f-name", "eu app")
    page.click("#key-edit-form button[type=submit]")
    expect(page.get_by_text("Key eu app updated")).to_be_visible()
    expect(page.locator("#keys")).to_contain_text("region ∈ EU")
    assert _lookup(http, secret, 1).json()["rows"] == [{"customer_key": 1, "region": "EU"}]
    assert _lookup(http, secret, 2).json()["count"] == 0  # Grace Hopper is in the US
    _lifecycle_shot(page, "03-key-edited")

    # Rotate with a grace period: the new secret is shown once; both work during the grace period.
    form = page.locator(f"form[data-rotate-key='{seed['key']['id']}']")
    form.locator("input[name=grace_seconds]").fill("600")
    form.locator("button").click()
    expect(page.locator("#key-reveal")).to_contain_text("has a new secret")
    new_secret = page.input_value("#revealed-key")
    assert new_secret.startswith("dk_") and new_secret != secret
    assert _lookup(http, secret, 1).status_code == 200 and _lookup(http, new_secret, 1).status_code == 200
    _lifecycle_shot(page, "04-rotated")
    page.goto(f"{base}/projects/{seed['project_id']}/settings/services/{seed['asset_id']}")
    expect(page.locator("#key-reveal")).to_have_count(0)  # shown this once
    assert new_secret not in page.content()
    form = page.locator(f"form[data-rotate-key='{seed['key']['id']}']")
    form.locator("input[name=grace_seconds]").fill("0")
    form.locator("button").click()
    newest = page.input_value("#revealed-key")
    assert _lookup(http, secret, 1).status_code == 401 and _lookup(http, new_secret, 1).status_code == 401
    assert _lookup(http, newest, 1).status_code == 200
    assert not [e for e in page.console_errors if "Content Security Policy" in e], page.console_errors
