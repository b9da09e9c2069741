"""Only the service's own project's models and datasets can be named: another project's, or another organization's,
real model and dataset are refused on save (422 naming the field), on create and on edit."""

from __future__ import annotations

import pytest

from tests.conftest import sign_up
from tests.models.slow_estimator import SlowRegressor
from tests.models.test_scoring import insert_model
from tests.publishing.test_assets import LOOKUP, TOP, _create
from tests.warehouse_tables import create_dataset

FIELDS = {
    "model": "config.endpoints[0].model_id",
    "lookup": "config.endpoints[0].dataset",
    "sql": "config.endpoints[0].query.source.table",
}


def _project(client, account, slug: str) -> int:
    resp = client.post("/api/projects", headers=account.headers, json={"name": slug.title(), "slug": slug})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["project_id"]


def _endpoint(kind: str, model_id: int) -> dict:
    return {"model": {"id": "risk", "kind": "model", "model_id": model_id}, "lookup": LOOKUP, "sql": TOP}[kind]


@pytest.fixture()
def elsewhere(app, client, admin):
    """A model and the dataset marts.dim_customer in another project of the same organization, and in a project
    of another organization."""
    stranger = sign_up(client)
    owners = {"project": (admin, _project(client, admin, "other")), "org": (stranger, _project(client, stranger, "x"))}
    found = {}
    for where, (account, project_id) in owners.items():
        create_dataset(app, project_id)
        model_id = insert_model(app, project_id, SlowRegressor(seconds=0).fit([[0.0]], [0.0]), name=f"m_{where}")
        found[where] = (account, project_id, model_id)
    return found


@pytest.mark.parametrize("where", ["project", "org"])
@pytest.mark.parametrize("kind", ["model", "lookup", "sql"])
def test_a_service_naming_another_scopes_model_or_dataset_is_refused(client, admin, project, elsewhere, where, kind):
    owner, owner_project, model_id = elsewhere[where]
    endpoint = _endpoint(kind, model_id)

    # The same endpoint is valid in the project that owns the model and the dataset: the refusal below is about
    # scope, not about a name that does not exist.
    own = _create(client, owner, owner_project, key=f"own-{where}-{kind}", endpoints=[endpoint])
    assert own.status_code == 201, own.get_json()

    created = _create(client, admin, project["project_id"], key=f"steal-{where}-{kind}", endpoints=[endpoint])
    assert created.status_code == 422, created.get_json()
    assert FIELDS[kind] in created.get_json()["error"]["details"]["fields"]

    # Nor can a draft be edited into naming it.
    draft = _create(client, admin, project["project_id"], key=f"edit-{where}-{kind}", endpoints=[])
    assert draft.status_code == 201, draft.get_json()
    edited = client.put(
        f"/api/publish/assets/{draft.get_json()['id']}",
        headers=admin.headers,
        json={"config": {"endpoints": [endpoint]}, "change_note": "try"},
    )
    assert edited.status_code == 422, edited.get_json()
    assert FIELDS[kind] in edited.get_json()["error"]["details"]["fields"]
