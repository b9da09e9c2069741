"""Datasets pages: upload a CSV (plain form and the script's JSON answer), preview masked by role, masking settings."""

import io
import re

from tests.conftest import add_user
from tests.console.conftest import CUSTOMERS_CSV, signed_in


def test_empty_state_then_upload_and_preview(console, project):
    pid = project["project_id"]
    assert "No datasets yet" in console.get(f"/projects/{pid}/datasets").get_data(as_text=True)
    resp = console.upload(pid, CUSTOMERS_CSV, friendly_name="Customers")
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"/projects/{pid}/datasets/uploads.customers"
    html = console.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Loaded 3 rows into uploads.customers." in html
    assert "Grace Hopper" in html  # an admin previews unmasked
    assert "unmasked (admin)" in html
    assert re.search(r"<title>Customers · Sales[^<]*</title>", html), "the page title is plain text"
    assert html.count('id="preview"') == 1
    assert "Customers" in console.get(f"/projects/{pid}/datasets").get_data(as_text=True)


def test_the_upload_script_gets_json_with_field_errors(console, project):
    pid = project["project_id"]
    headers = {"X-CSRF-Token": console.token, "X-Requested-With": "fetch"}
    data = {"file": (io.BytesIO(b"x,y\n1,2\n"), "notes.txt")}
    resp = console.client.post(
        f"/projects/{pid}/datasets", data=data, headers=headers, content_type="multipart/form-data"
    )
    assert resp.status_code == 422
    assert resp.get_json()["errors"]["file"] == ["expected a .csv file"]
    data = {"file": (io.BytesIO(CUSTOMERS_CSV.encode()), "customers.csv")}
    resp = console.client.post(
        f"/projects/{pid}/datasets", data=data, headers=headers, content_type="multipart/form-data"
    )
    assert resp.get_json() == {"ok": True, "redirect": f"/projects/{pid}/datasets/uploads.customers"}


def test_an_existing_name_needs_replace(console, project, customers):
    resp = console.upload(project["project_id"], CUSTOMERS_CSV)
    assert resp.status_code == 422
    assert re.search(r'id="f-name".*?class="field-error"[^>]*>already exists', resp.get_data(as_text=True), re.S)
    assert console.upload(project["project_id"], CUSTOMERS_CSV, replace="true").status_code == 302


def test_a_missing_file_is_named(console, project):
    resp = console.post(f"/projects/{project['project_id']}/datasets", {"name": "x"})
    assert resp.status_code == 422
    assert "choose a CSV file to upload" in resp.get_data(as_text=True)


def test_masking_settings_change_what_a_viewer_sees(app, client, admin, console, project, customers):
    pid = project["project_id"]
    viewer = signed_in(app, add_user(client, admin, "viewer"))
    page = viewer.get(f"/projects/{pid}/datasets/uploads.customers").get_data(as_text=True)
    assert "masked for your role (viewer)" in page
    assert "Grace Hopper" not in page  # a person's name is medium: masked by default
    # Column 1 is `name`: mark it low sensitivity, and viewers see it as stored.
    resp = console.post(
        f"/projects/{pid}/datasets/uploads.customers/settings",
        {"friendly_name": "Customers", "description": "", "sensitivity_1": "low"},
    )
    assert resp.status_code == 302
    assert "Grace Hopper" in viewer.get(f"/projects/{pid}/datasets/uploads.customers").get_data(as_text=True)
    # Back to "auto": the override is gone and the name is masked again.
    resp = console.post(
        f"/projects/{pid}/datasets/uploads.customers/settings",
        {"friendly_name": "Customers", "description": "", "sensitivity_1": ""},
    )
    assert resp.status_code == 302
    assert "Grace Hopper" not in viewer.get(f"/projects/{pid}/datasets/uploads.customers").get_data(as_text=True)


def test_settings_errors_are_shown(console, project, customers):
    resp = console.post(
        f"/projects/{project['project_id']}/datasets/uploads.customers/settings",
        {"friendly_name": "x" * 300, "strategy_0": "scramble"},
    )
    assert resp.status_code == 422
    assert "field-error" in resp.get_data(as_text=True)


def test_an_unknown_dataset_is_a_404_page(console, project):
    resp = console.get(f"/projects/{project['project_id']}/datasets/uploads.nothing")
    assert resp.status_code == 404
    assert "dataset not found" in resp.get_data(as_text=True)
