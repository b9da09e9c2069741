"""Console papercuts in a real browser (Chromium driving the console served by gunicorn, with a real worker):
a favicon on every page, the minted key's secret shown once in view with post/redirect/get, "Publish changes" only
when the draft differs, the train form's defaults, the dataset page's order and the endpoints table on a phone."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.console.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, live_server  # noqa: F401 - fixture

PASSWORD = "correct horse battery staple"
PEOPLE_CSV = "customer_key,full_name,email,notes,region,plan,tenure,monthly,churned\n" + "".join(
    f"{i},Person {i},p{i}@example.com,called about the invoice #{i},{('EU', 'US')[i % 2]},"
    f"{('basic', 'premium')[i % 3 == 0]},{i % 50 + 1},{10 + i % 40}.5,{int(i % 50 < 15)}\n"
    for i in range(1, 151)
)


@pytest.fixture()
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.failed = []  # every answer of 400 or more the pages caused (a missing favicon would be a 404)
        page.on("response", lambda r: page.failed.append((r.status, r.url)) if r.status >= 400 else None)
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        context.close()


def _api_setup(base: str) -> dict:
    """An organization, a project with an uploaded dataset and a published service with one lookup endpoint."""
    username = f"pc_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=base, timeout=60) as http:
        http.post(
            "/api/auth/register",
            json={
                "org_name": f"Org {username}",
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
            },
        )
        token = http.post("/api/auth/login", json={"username": username, "password": PASSWORD}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        project = http.post("/api/projects", headers=auth, json={"name": "Sales", "slug": "sales"}).json()
        headers = {**auth, "X-Project-Id": str(project["project_id"])}
        uploaded = http.post(
            "/api/datasets/file/upload",
            headers=headers,
            data={"name": "people"},
            files={"file": ("people.csv", PEOPLE_CSV.encode(), "text/csv")},
        )
        assert uploaded.status_code == 201, uploaded.text
        endpoint = {
            "id": "customer_lookup_by_key",
            "kind": "lookup",
            "dataset": "uploads.people",
            "key_column": "customer_key",
            "key_param": "customer_key",
        }
        asset = http.post(
            "/api/publish/assets",
            headers=headers,
            json={
                "asset_type": "api_service",
                "asset_key": f"svc-{username.replace('_', '-')}",
                "title": "People",
                "config": {"endpoints": [endpoint]},
            },
        ).json()
        assert http.post(f"/api/publish/assets/{asset['id']}/publish", headers=auth).status_code == 200
    return {"username": username, "auth": auth, "project_id": project["project_id"], "asset": asset}


def _in_view(page, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
                      return r.top >= 0 && r.bottom <= window.innerHeight; }""",
        selector,
    )


def test_console_papercuts(live_server, page):  # noqa: F811
    base = live_server
    world = _api_setup(base)
    pid, asset = world["project_id"], world["asset"]

    # A favicon, linked from every page and served from /static; /favicon.ico leads to it.
    page.goto(f"{base}/login")
    icon = page.locator("link[rel=icon]")
    assert icon.get_attribute("href") == "/static/favicon.svg" and icon.get_attribute("type") == "image/svg+xml"
    served = httpx.get(f"{base}/static/favicon.svg")
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in served.text
    assert httpx.get(f"{base}/favicon.ico", follow_redirects=True).headers["content-type"].startswith("image/svg")
    page.fill("#f-username", world["username"])
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".card-title")).to_have_text("Sales")

    # The dataset page: settings with a column profile first, the 100-row preview after them.
    page.goto(f"{base}/projects/{pid}/datasets/uploads.people")
    order = page.evaluate("[...document.querySelectorAll('section.card')].map(s => s.id)")
    assert order.index("settings") < order.index("preview"), order
    assert _in_view(page, "#settings h2")
    headers = page.locator("#settings thead th").all_inner_texts()
    assert [h.lower() for h in headers[:5]] == ["column", "type", "filled", "distinct", "example"], headers
    tenure = page.locator("#settings tbody tr", has_text="tenure")
    expect(tenure.locator("td").nth(2)).to_have_text("100")  # filled, over the 100 preview rows
    expect(tenure.locator("td").nth(3)).to_have_text("50")  # distinct
    page.screenshot(path=str(ARTIFACTS / "papercuts-dataset.png"), full_page=True)

    # The train form never defaults to an id, free text or personal data.
    page.goto(f"{base}/projects/{pid}/models")
    expect(page.locator("#f-target_column")).to_have_value("churned")
    expect(page.locator("#f-feature_columns")).to_have_value("region, plan, tenure, monthly")
    page.select_option("#f-target_column", "plan")  # the features follow the target until typed in
    expect(page.locator("#f-feature_columns")).to_have_value("region, tenure, monthly, churned")
    page.fill("#f-feature_columns", "tenure")
    page.select_option("#f-target_column", "churned")
    expect(page.locator("#f-feature_columns")).to_have_value("tenure")

    # "Publish changes" only when the draft differs from what is served.
    service_url = f"{base}/projects/{pid}/settings/services/{asset['id']}"
    page.goto(service_url)
    expect(page.locator("#publish-changes")).to_have_count(0)
    expect(page.locator("#draft-published")).to_be_visible()
    put = httpx.put(f"{base}/api/publish/assets/{asset['id']}", headers=world["auth"], json={"title": "People v2"})
    assert put.status_code == 200, put.text
    page.reload()
    expect(page.locator("#publish-changes")).to_be_visible()
    page.click("#publish-changes")
    expect(page.get_by_text("is published as version 2")).to_be_visible()
    expect(page.locator("#publish-changes")).to_have_count(0)

    # Minting a key: post/redirect/get to the page top, the secret in view once; a reload mints nothing more.
    page.fill("#key-f-name", "mobile")
    page.click("text=Mint key")
    expect(page.locator("#revealed-key")).to_be_visible()
    assert "reveal=" in page.url and page.url.endswith("#key-reveal") and "dk_" not in page.url
    assert _in_view(page, "#revealed-key")
    secret = page.locator("#revealed-key").input_value()
    assert secret.startswith("dk_")
    page.screenshot(path=str(ARTIFACTS / "papercuts-key-revealed.png"))
    page.reload()
    expect(page.locator("#revealed-key")).to_have_count(0)
    expect(page.locator("#key-reveal-gone")).to_be_visible()
    assert secret not in page.content()
    keys = httpx.get(f"{base}/api/publish/assets/{asset['id']}/api-keys", headers=world["auth"]).json()["items"]
    assert [k["name"] for k in keys] == ["mobile"]
    lookup = httpx.get(
        f"{base}/api/service/{asset['asset_key']}/customer_lookup_by_key",
        params={"customer_key": 7},
        headers={"X-API-Key": secret},
    )
    assert lookup.status_code == 200 and lookup.json()["count"] == 1

    # A phone: the page itself never scrolls sideways; the endpoints table scrolls inside its card, whole.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(service_url)
    widths = page.evaluate(
        """() => { const wrap = document.querySelector('#endpoints .table-wrap');
                   const card = document.querySelector('#endpoints').getBoundingClientRect();
                   const wr = wrap.getBoundingClientRect();
                   return {page: document.documentElement.scrollWidth, viewport: window.innerWidth,
                           wrapLeft: wr.left, wrapRight: wr.right, cardLeft: card.left, cardRight: card.right,
                           table: wrap.scrollWidth, shown: wrap.clientWidth,
                           overflow: getComputedStyle(wrap).overflowX}; }"""
    )
    assert widths["page"] <= widths["viewport"], widths
    assert widths["cardLeft"] >= 0 and widths["cardRight"] <= widths["viewport"], widths
    # Each endpoint wraps into a stacked block: nothing hidden to the right, no sideways scrolling to reach it.
    assert widths["table"] <= widths["shown"] and widths["wrapRight"] <= widths["cardRight"], widths
    row = page.locator("#endpoints tbody tr >> nth=0")
    for text in ("customer_lookup_by_key", "Lookup", "GET /api/service/", "uploads.people"):
        expect(row).to_contain_text(text)
    for cell in row.locator("td").all():
        box = cell.bounding_box()
        assert box["x"] >= widths["cardLeft"] and box["x"] + box["width"] <= widths["cardRight"], (cell, box, widths)
    row.get_by_role("button", name="Remove").scroll_into_view_if_needed()
    expect(row.get_by_role("button", name="Remove")).to_be_in_viewport()
    page.screenshot(path=str(ARTIFACTS / "papercuts-service-phone.png"), full_page=True)

    assert page.failed == [], page.failed
