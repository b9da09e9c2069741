"""The console applies the API's rules: other organizations' objects are not found, roles limit what one may do."""

import re

from tests.conftest import add_user, sign_up
from tests.console.conftest import lookup_form, signed_in


def test_another_organizations_project_and_service_are_not_found(app, client, project, service, customers):
    stranger = signed_in(app, sign_up(client))
    pid = project["project_id"]
    for path in (
        f"/projects/{pid}/datasets",
        f"/projects/{pid}/settings",
        service["url"],
        service["url"] + "/logs",
        f"/projects/{pid}/datasets/uploads.customers",
        f"/projects/{pid}/models",
    ):
        resp = stranger.get(path)
        assert resp.status_code == 404, path
        assert "Sales serving" not in resp.get_data(as_text=True)
    assert stranger.post(service["url"] + "/endpoints", lookup_form()).status_code == 404
    assert stranger.post(service["url"] + "/publish").status_code == 404


def test_a_service_is_not_found_under_another_project_of_the_same_org(console, project, service):
    resp = console.post("/projects", {"name": "Other", "slug": "other"})
    other_id = int(resp.headers["Location"].split("/")[2])
    assert console.get(f"/projects/{other_id}/settings/services/{service['id']}").status_code == 404


def test_a_viewer_sees_services_but_cannot_change_them_or_see_keys(app, client, admin, project, service, customers):
    viewer = signed_in(app, add_user(client, admin, "viewer"))
    html = viewer.get(service["url"]).get_data(as_text=True)
    assert "Sales serving" in html
    assert "Mint a key" not in html and "Save endpoint" not in html
    resp = viewer.post(service["url"] + "/endpoints", lookup_form())
    assert resp.status_code == 403
    assert "lacks the project.edit permission" in resp.get_data(as_text=True)
    assert viewer.post(service["url"] + "/keys", {"name": "x"}).status_code == 403
    assert (
        viewer.post(
            f"/projects/{project['project_id']}/settings/services", {"title": "T", "asset_key": "t"}
        ).status_code
        == 403
    )
    resp = viewer.post_json(service["url"] + "/test", {"endpoint_id": "customer", "body": {"id": 1}})
    assert resp.status_code == 403


def test_only_admins_change_masking(app, client, admin, project, customers):
    designer = signed_in(app, add_user(client, admin, "designer"))
    pid = project["project_id"]
    html = designer.get(f"/projects/{pid}/datasets/uploads.customers").get_data(as_text=True)
    assert "Only organization admins change masking." in html
    resp = designer.post(f"/projects/{pid}/datasets/uploads.customers/settings", {"friendly_name": "x"})
    assert resp.status_code == 403


def test_function_endpoints_are_for_org_admins(app, client, admin, service, customers):
    designer = signed_in(app, add_user(client, admin, "designer"))
    resp = designer.post(
        service["url"] + "/endpoints",
        {"id": "score", "kind": "function", "handler": "def handler(payload):\n    return 1\n"},
    )
    assert resp.status_code == 422
    assert re.search(r'id="ep-f-handler".*?org.admin required', resp.get_data(as_text=True), re.S)
