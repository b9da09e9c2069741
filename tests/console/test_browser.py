"""The whole job in a real browser: Chromium drives the console served by gunicorn, with a real worker.

Sign up, log in, upload datasets (with progress), set masking, train a model, create a service with a lookup and a
model endpoint, publish, mint a scoped key (its secret shown exactly once), run the Test pane, revoke the key, read
the audit log, toggle publishing from Settings. XSS attempts typed into the text fields render as text.
Screenshots of each page go to tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from app.redis_server import free_port
from tests.console.conftest import CUSTOMERS_CSV, churn_csv

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"


@pytest.fixture()
def live_server(test_env, app, live_worker, tmp_path):
    port = free_port()
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--timeout",
                "120",
                "wsgi:app",
            ],
            cwd=ROOT,
            env={**os.environ, **test_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log_path.read_text()[-4000:]
        assert time.monotonic() < deadline, "the web process did not start"
        time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def browser_page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("console-*.png"):  # only this run's screenshots, so none is stale
        old.unlink()
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
        alerts: list[str] = []
        console_errors: list[str] = []

        def on_dialog(dialog):
            if dialog.type == "alert":
                alerts.append(dialog.message)
            dialog.accept()

        page.on("dialog", on_dialog)
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.alerts, page.console_errors = alerts, console_errors
        yield page
        context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def upload(page, path: Path) -> None:
    page.click("nav >> text=Datasets")
    page.set_input_files("#f-file", str(path))
    page.click("#upload-form button[type=submit]")
    expect(page.get_by_text(re.compile(r"Loaded \d+ rows into"))).to_be_visible()


def upload_with_progress(page, path: Path) -> list[tuple[int, str]]:
    """Upload over a throttled link, recording what the progress bar and its label show on the way."""
    page.click("nav >> text=Datasets")
    seen: list[tuple[int, str]] = []
    page.expose_function("recordProgress", lambda value, label: seen.append((value, label)))
    page.evaluate(
        """() => {
          const box = document.getElementById("upload-progress");
          const bar = box.querySelector("progress"), label = box.querySelector("[data-progress-label]");
          new MutationObserver(() => window.recordProgress(bar.value, label.textContent))
            .observe(box, {attributes: true, childList: true, subtree: true, characterData: true});
        }"""
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 150_000},
    )
    page.set_input_files("#f-file", str(path))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("[data-progress-label]")).to_have_text(re.compile(r"^[2-9]\d%$"))  # under way
    expect(page.locator("#upload-form button[type=submit]")).to_be_disabled()
    shot(page, "05-upload-progress")
    expect(page.get_by_text(re.compile(r"Loaded \d+ rows into"))).to_be_visible(timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    cdp.detach()
    return seen


@pytest.mark.timeout(400)  # signs up, uploads, trains and serves: minutes on a loaded machine
def test_the_whole_job_in_a_browser(live_server, browser_page, tmp_path):
    page, base = browser_page, live_server
    username, password = f"ada_{uuid.uuid4().hex[:8]}", "correct horse battery staple"

    # A new organization signs up and starts from an empty project list; then signs out and in again.
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Sign in to Apiary")).to_be_visible()
    page.click("text=Create an organization")
    page.fill("#f-org_name", "Hive")
    page.fill("#f-username", username)
    page.fill("#f-email", "not an e-mail")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page.locator("#f-email ~ .field-error")).to_be_visible()
    shot(page, "01-signup-error")
    page.fill("#f-email", f"{username}@example.com")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page.get_by_text("No projects yet")).to_be_visible()
    page.click("text=Sign out")
    page.fill("#f-username", username)
    page.fill("#f-password", "wrong password")
    page.click("button[type=submit]")
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    shot(page, "02-login-error")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page.get_by_text("No projects yet")).to_be_visible()
    session = next(c for c in page.context.cookies() if c["name"] == "session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read the session
    shot(page, "03-projects-empty")

    # A project, with an XSS attempt in its description.
    page.fill("#f-name", "Sales")
    page.fill("#f-slug", "sales")
    page.fill("#f-description", XSS)
    page.click("text=Create project")
    expect(page.get_by_text("No datasets yet")).to_be_visible()
    shot(page, "04-datasets-empty")

    # Upload three datasets: one to look customers up in, one to train on, and a larger one whose progress shows.
    for filename, text in (("customers.csv", CUSTOMERS_CSV), ("churn.csv", churn_csv())):
        path = tmp_path / filename
        path.write_text(text)
        upload(page, path)
    events = tmp_path / "events.csv"
    events.write_text("id,payload\n" + "".join(f"{i},{'x' * 90}\n" for i in range(5000)))  # ~470 kB
    seen = upload_with_progress(page, events)
    assert any(0 < value < 100 and label == f"{value}%" for value, label in seen), seen
    assert seen[-1] == (100, "Loading into the warehouse…"), seen
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    page.click("nav >> text=Datasets")
    expect(page.locator("table tbody tr")).to_have_count(3)
    shot(page, "06-datasets")

    # Preview a dataset and change its settings: a display name (an XSS attempt) and a column's masking.
    page.click("text=customers")
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    expect(page.locator("#preview")).to_contain_text("Grace Hopper")
    page.fill("#f-friendly_name", XSS)
    page.select_option("select[aria-label='Sensitivity of email']", "critical")
    page.select_option("select[aria-label='Strategy of email']", "hash")
    page.click("text=Save settings")
    expect(page.get_by_text("Settings saved")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS)
    expect(page.locator("select[aria-label='Sensitivity of email']")).to_have_value("critical")
    expect(page.locator("select[aria-label='Strategy of email']")).to_have_value("hash")
    shot(page, "07-dataset-preview-and-masking")

    # Train a model with the form (its name an XSS attempt); the page follows the run until it ends.
    page.click("nav >> text=Models")
    shot(page, "08-models-empty")
    page.fill("#f-name", f"churn {XSS}")
    page.select_option("#f-input_table", "uploads.churn")
    page.select_option("#f-target_column", "churned")
    page.select_option("#f-task_type", "classification")
    page.select_option("#f-algorithm", "logistic_regression")
    page.fill("#f-feature_columns", "tenure, monthly, plan")
    page.click("#train-form button[type=submit]")
    expect(page.locator(".badge-run-success")).to_be_visible(timeout=90_000)
    expect(page.locator("#models")).to_contain_text(f"churn {XSS}")
    shot(page, "09-models-trained")
    page.click("#models a >> nth=0")
    expect(page.get_by_role("heading", name="Feature importance")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"churn {XSS}")
    shot(page, "10-model-detail")

    # Settings -> API Services: create a service.
    page.click("nav >> text=Settings")
    expect(page.get_by_text("No API services yet")).to_be_visible()
    shot(page, "11-settings-empty")
    page.click("summary:has-text('New service')")
    page.fill("#f-title", "Sales serving")
    page.fill("#f-asset_key", "sales-serving")
    page.fill("#f-description", XSS)
    page.click("text=Create service")
    expect(page.get_by_text("created as a draft")).to_be_visible()

    # A lookup endpoint, shown with a validation error first, then a model endpoint.
    page.fill("#ep-f-id", "customer")
    page.select_option("#ep-f-kind", "lookup")
    page.fill("#ep-f-description", XSS)
    page.select_option("#ep-f-dataset", "uploads.customers")
    page.fill("#ep-f-key_column", "no_such_column")
    page.click("text=Save endpoint")
    expect(page.locator("#ep-f-key_column ~ .field-error")).to_contain_text("no_such_column")
    shot(page, "12-endpoint-error")
    page.fill("#ep-f-key_column", "customer_key")
    page.click("text=Save endpoint")
    expect(page.get_by_text("Endpoint customer saved")).to_be_visible()
    expect(page.locator("#endpoints")).to_contain_text(XSS)
    page.fill("#ep-f-id", "churn_risk")
    page.select_option("#ep-f-kind", "model")
    expect(page.locator("#ep-f-dataset")).to_be_hidden()
    page.select_option("#ep-f-model_id", index=1)
    page.click("text=Save endpoint")
    expect(page.get_by_text("Endpoint churn_risk saved")).to_be_visible()
    expect(page.locator("#endpoints")).to_contain_text(f"churn {XSS} v1")

    # Publish.
    page.click("#publish-button")
    expect(page.get_by_text("is published as version 1")).to_be_visible()
    shot(page, "13-service-published")

    # Mint a key scoped to the model endpoint: the secret is revealed once.
    expect(page.locator("input[name=allowed_endpoints]")).to_have_count(2)
    page.fill("#key-f-name", f"mobile {XSS}")
    page.check("input[name=allowed_endpoints][value=churn_risk]")
    page.click("text=Mint key")
    reveal = page.locator("#revealed-key")
    expect(reveal).to_be_visible()
    expect(page.locator("#key-reveal")).to_contain_text(f"Key mobile {XSS} created.")
    secret = reveal.input_value()
    assert secret.startswith("dk_")
    shot(page, "14-key-revealed")
    service_url = page.url.split("#")[0].split("?")[0].removesuffix("/keys")  # the mint redirects to ?reveal=…
    page.goto(service_url)
    assert secret not in page.content()
    expect(page.locator("#key-reveal")).to_have_count(0)
    expect(page.locator("#keys tbody tr")).to_have_count(1)
    expect(page.locator("#keys tbody")).to_contain_text("churn_risk")
    features = {"features": {"tenure": 3, "monthly": 20.0, "plan": "basic"}}
    # The first call loads the model on the worker: allow for a loaded machine (the server's own deadline is 10 s).
    served = httpx.post(
        f"{base}/api/service/sales-serving/churn_risk", json=features, headers={"X-API-Key": secret}, timeout=30
    )
    assert served.status_code == 200, served.text
    assert (
        httpx.get(f"{base}/api/service/sales-serving/customer?id=1", headers={"X-API-Key": secret}).status_code == 403
    )

    # Test pane: a lookup with params, then the model with a body.
    page.select_option("#test-endpoint", "customer")
    page.fill("#test-body", json.dumps({"id": 2}))
    page.click("#test-pane button[type=submit]")
    expect(page.locator("[data-result-body]")).to_contain_text("Grace Hopper")
    expect(page.locator("[data-result-status]")).to_have_text("200")
    expect(page.locator("[data-result-latency]")).to_have_text(re.compile(r"^\d+(\.\d+)? ms$"))
    page.select_option("#test-endpoint", "churn_risk")
    page.fill("#test-body", json.dumps(features))
    page.click("#test-pane button[type=submit]")
    expect(page.locator("[data-result-body]")).to_contain_text("predictions")
    page.locator("#test").screenshot(path=str(ARTIFACTS / "console-15-test-pane.png"))

    # Revoke the key: calls with it are refused at once.
    page.click("#keys button:has-text('Revoke')")
    expect(page.locator("#keys .badge-revoked")).to_be_visible()
    shot(page, "16-key-revoked")
    assert (
        httpx.post(
            f"{base}/api/service/sales-serving/churn_risk", json=features, headers={"X-API-Key": secret}
        ).status_code
        == 403
    )

    # The audit log shows the keyed calls once the worker has written them (the revoked key's call names no
    # service until the key is resolved, so it is not the service's to show).
    page.click("text=Audit log")
    deadline = time.monotonic() + 30
    while page.locator("table tbody tr").count() < 2:
        assert time.monotonic() < deadline, "the audit log stayed empty"
        time.sleep(1)
        page.reload()
    shot(page, "17-audit-log")
    page.check("input[name=errors_only]")
    page.click("text=Filter")
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody")).to_contain_text("endpoint_not_allowed")
    page.click("text=Clear")
    page.select_option("#f-endpoint_id", "churn_risk")
    page.click("text=Filter")
    expect(page.locator("table tbody tr")).to_have_count(1)
    expect(page.locator("table tbody")).to_contain_text("200")

    # Settings lists the service with its badge and the publish/unpublish toggle; the XSS attempts are text.
    page.click("nav >> text=Settings")
    expect(page.locator("#services .badge-published")).to_be_visible()
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    page.click("#services button:has-text('Unpublish')")
    expect(page.get_by_text("is back to draft")).to_be_visible()
    expect(page.locator("#services .badge-draft")).to_be_visible()
    page.click("#services button:has-text('Publish')")
    expect(page.get_by_text("is published as version 2")).to_be_visible()
    expect(page.locator("#services .badge-published")).to_be_visible()
    shot(page, "18-settings-services")

    # Another organization's objects, or none at all: a page that says so.
    page.goto(f"{base}/projects/999999/settings")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shot(page, "19-not-found")

    # Small screens.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(service_url)
    shot(page, "20-service-mobile")
    page.goto(f"{base}/projects")
    expect(page.locator(".card-title")).to_have_text("Sales")
    shot(page, "21-projects-mobile")
    assert page.alerts == []
    assert not [e for e in page.console_errors if "Content Security Policy" in e], page.console_errors
