"""Issue 12: `allowed_endpoints: []` is refused, and nobody mints a key above their own role's ceiling."""

from __future__ import annotations

import pytest

from tests.conftest import add_user
from tests.keys.test_api_keys import _service


def _mint(client, account, asset_id, **fields):
    return client.post(
        f"/api/publish/assets/{asset_id}/api-keys", headers=account.headers, json={"name": "k", **fields}
    )


def test_empty_allowed_endpoints_is_a_422_and_null_means_every_endpoint(app, client, admin, project):
    asset_id = _service(app, client, admin, project)
    empty = _mint(client, admin, asset_id, allowed_endpoints=[])
    assert empty.status_code == 422, empty.get_json()
    assert "allowed_endpoints" in empty.get_json()["error"]["details"]["fields"]
    assert client.get(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers).get_json()["items"] == []

    every = _mint(client, admin, asset_id, allowed_endpoints=None)
    assert every.status_code == 201 and every.get_json()["allowed_endpoints"] is None


def test_empty_allowed_endpoints_is_refused_by_the_shared_key_check_too(app, client, admin, project):
    """The rule lives in check_key_fields, which mint and key updates share, not only in the mint schema."""
    from app.db import PublishedAsset, User
    from app.errors import APIError
    from app.extensions import db
    from app.keys.service import check_key_fields

    asset_id = _service(app, client, admin, project)
    with app.app_context():
        user, asset = db.session.get(User, admin.user_id), db.session.get(PublishedAsset, asset_id)
        with pytest.raises(APIError) as err:
            check_key_fields(user, asset, {"allowed_endpoints": []})
        assert err.value.status == 422 and "allowed_endpoints" in err.value.details["fields"]
        assert check_key_fields(user, asset, {"allowed_endpoints": None}) == {"allowed_endpoints": None}


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"masking_level": "unmasked"}, "masking_level"),
        ({"sensitivity_max": "critical"}, "sensitivity_max"),
        ({"masking_level": "unmasked", "sensitivity_max": "high"}, "masking_level"),
    ],
)
def test_a_designer_cannot_mint_a_key_above_their_ceiling(app, client, admin, project, fields, field):
    asset_id = _service(app, client, admin, project)
    designer = add_user(client, admin, "designer")
    refused = _mint(client, designer, asset_id, **fields)
    assert refused.status_code == 403, refused.get_json()
    assert field in refused.get_json()["error"]["details"]["fields"]
    assert client.get(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers).get_json()["items"] == []


def test_a_designer_mints_up_to_their_ceiling_and_an_admin_above_it(app, client, admin, project):
    asset_id = _service(app, client, admin, project)
    designer = add_user(client, admin, "designer")
    assert _mint(client, designer, asset_id).status_code == 201
    assert _mint(client, designer, asset_id, sensitivity_max="high").status_code == 201
    top = _mint(client, admin, asset_id, masking_level="unmasked", sensitivity_max="critical")
    assert top.status_code == 201 and top.get_json()["masking_level"] == "unmasked"


def test_the_console_key_form_applies_the_same_ceiling(app, client, admin, project):
    from tests.console.conftest import signed_in

    asset_id = _service(app, client, admin, project)
    console = signed_in(app, add_user(client, admin, "designer"))
    resp = console.post(
        f"/projects/{project['project_id']}/settings/services/{asset_id}/keys",
        {"name": "k", "masking_level": "unmasked", "sensitivity_max": "critical"},
    )
    assert resp.status_code == 422, resp.status_code
    assert "only an organization admin" in resp.get_data(as_text=True)
    assert client.get(f"/api/publish/assets/{asset_id}/api-keys", headers=admin.headers).get_json()["items"] == []
