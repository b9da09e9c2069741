"""Every console route, read from the URL map: each post needs the CSRF token, and every project route is a 404 for
another organization, whichever of the ids in the URL are its own. A route added later is covered without a test."""

from __future__ import annotations

import itertools
import re

import pytest
from flask import url_for

from tests.conftest import sign_up
from tests.console.conftest import Console, lookup_form, signed_in

# URL arguments naming an object someone owns; the others (a dataset's name, an endpoint id) only mean something
# inside the object named before them.
OWNED = ("project_id", "service_id", "key_id", "model_id")
# A body that would do something on any route if the checks were missing.
FORM = {
    **lookup_form("extra"),
    "name": "extra",
    "slug": "extra",
    "title": "Extra",
    "asset_key": "extra",
    "friendly_name": "Changed",
    "description": "changed",
    "sensitivity_1": "critical",
    "username": "x",
    "password": "x",
}


def _add_model(app, project_id: int, version: int, active: bool) -> int:
    """A registry row of a model version (no page these tests reach loads its artifact)."""
    from app.db import MLModel
    from app.extensions import db

    with app.app_context():
        model = MLModel(
            project_id=project_id,
            name="churn",
            version=version,
            task_type="classification",
            algorithm="logistic_regression",
            target_column="churned",
            feature_columns=["tenure"],
            artifact_path="unused",
            artifact_sha256="0" * 64,
            sklearn_version="1",
            is_active=active,
        )
        db.session.add(model)
        db.session.commit()
        return model.id


@pytest.fixture()
def world(app, console, project, customers, service) -> dict:
    """The owner's objects: a published service with an endpoint and a key, and a model with an inactive version."""
    assert console.post(service["url"] + "/endpoints", lookup_form()).status_code == 302
    assert console.post(service["url"] + "/publish").status_code == 302
    assert console.post(service["url"] + "/keys", {"name": "app"}).status_code == 303
    key_id = int(re.search(r"/keys/(\d+)/revoke", console.get(service["url"]).get_data(as_text=True)).group(1))
    pid = project["project_id"]
    _add_model(app, pid, 1, active=True)
    return {
        "project_id": pid,
        "service_id": service["id"],
        "key_id": key_id,
        "model_id": _add_model(app, pid, 2, active=False),
        "name": customers,
        "endpoint_id": "customer",
        "version": 1,
    }


def _state(app, world: dict) -> dict:
    """What any of the console's posts could change."""
    from sqlalchemy import func, select

    from app.db import ApiKey, Dataset, MLModel, Project, PublishedAsset, Recipe
    from app.extensions import db

    with app.app_context():
        asset = db.session.get(PublishedAsset, world["service_id"])
        dataset = db.session.scalar(select(Dataset).where(Dataset.project_id == world["project_id"]))
        return {
            "projects": db.session.scalar(select(func.count()).select_from(Project)),
            "services": db.session.scalar(select(func.count()).select_from(PublishedAsset)),
            "keys": db.session.scalar(select(func.count()).select_from(ApiKey)),
            "recipes": db.session.scalar(select(func.count()).select_from(Recipe)),
            "datasets": db.session.scalar(select(func.count()).select_from(Dataset)),
            "service": (asset.status, asset.published_version, asset.title, asset.config),
            "key_active": db.session.get(ApiKey, world["key_id"]).is_active,
            "model_active": db.session.get(MLModel, world["model_id"]).is_active,
            "dataset": (dataset.friendly_name, dataset.description, dataset.masking, dataset.row_count),
        }


def _console_rules(app) -> list:
    rules = [
        r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.") and r.endpoint != "console.static"
    ]
    unknown = {arg for r in rules for arg in r.arguments} - {*OWNED, "name", "endpoint_id", "version"}
    assert not unknown, f"teach this test what to put in {unknown}"
    return rules


def _url(app, rule, values: dict) -> str:
    with app.test_request_context():
        return url_for(rule.endpoint, **{arg: values[arg] for arg in rule.arguments})


def test_every_post_needs_the_csrf_token(app, console, world):
    before = _state(app, world)
    posts = [r for r in _console_rules(app) if "POST" in r.methods]
    names = {r.endpoint for r in posts}
    assert {
        "console.mint_key",
        "console.revoke_key",
        "console.publish_service",
        "console.unpublish_service",
        "console.remove_endpoint",
        "console.test_endpoint",
        "console.activate_model",
        "console.upload_dataset",
        "console.dataset_settings",
        "console.logout",
    } <= names
    for rule in posts:
        url = _url(app, rule, world)
        for token in (None, "forged-token"):
            form = dict(FORM) if token is None else {**FORM, "csrf_token": token}
            resp = console.post(url, form, csrf=False)
            assert resp.status_code == 400, (url, token, resp.status_code)
            assert "did not come from this site" in resp.get_data(as_text=True), url
        headers = {"X-Requested-With": "fetch", "X-CSRF-Token": "forged-token"}
        resp = console.client.post(url, json={"endpoint_id": "customer", "body": {"id": 1}}, headers=headers)
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "csrf_failed", url
    assert _state(app, world) == before
    assert console.get("/projects").status_code == 200  # the refused logout left the session alone


def test_another_organization_gets_404_on_every_project_route(app, client, world):
    stranger = signed_in(app, sign_up(client))
    resp = stranger.post("/projects", {"name": "Mine", "slug": "mine"})
    own_project = int(resp.headers["Location"].split("/")[2])
    resp = stranger.post(f"/projects/{own_project}/settings/services", {"title": "Mine", "asset_key": "mine"})
    own_service = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    own = {"project_id": own_project, "service_id": own_service}
    before = _state(app, world)
    checked = 0
    for rule in _console_rules(app):
        if "project_id" not in rule.arguments:
            continue
        owned = [arg for arg in OWNED if arg in rule.arguments]
        # Every mix of the stranger's own ids and the owner's, except all of them the stranger's.
        for mine in itertools.product((False, True), repeat=len(owned)):
            if all(mine) or any(m and arg not in own for arg, m in zip(owned, mine, strict=True)):
                continue
            values = {**world, **{arg: own[arg] for arg, m in zip(owned, mine, strict=True) if m}}
            url = _url(app, rule, values)
            for method in sorted(rule.methods & {"GET", "POST"}):
                resp = stranger.get(url) if method == "GET" else stranger.post(url, FORM)
                html = resp.get_data(as_text=True)
                assert resp.status_code == 404, (method, url, resp.status_code)
                assert "Sales serving" not in html and "Grace Hopper" not in html, url
                checked += 1
    assert checked >= 25
    assert _state(app, world) == before


def test_a_signed_out_visitor_reaches_no_project_route(app, world):
    visitor = Console(app.test_client())
    visitor.get("/login")  # a session with a CSRF token, but no user
    before = _state(app, world)
    for rule in _console_rules(app):
        if "project_id" not in rule.arguments:
            continue
        url = _url(app, rule, world)
        if "GET" in rule.methods:
            resp = visitor.get(url)
            assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next="), url
        if "POST" in rule.methods:
            resp = visitor.post(url, FORM)
            assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next="), url
    assert _state(app, world) == before
