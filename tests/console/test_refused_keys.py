"""The console's Refused API keys page: org admins see the refused keys aimed at their organization, prefixes only."""

from __future__ import annotations

from tests.conftest import add_user, sign_up
from tests.console.conftest import signed_in


def _flush(app) -> None:
    from app.serving.audit import flush_serving_records

    with app.app_context():
        flush_serving_records()


def test_org_admins_see_refused_keys_without_secrets(app, client, admin, console, service):
    secret = "dk_" + "Zz9" * 14 + "Z"
    for _ in range(3):
        resp = client.get("/api/service/sales-serving/top", headers={"X-API-Key": secret})
        assert resp.status_code == 401
    client.get("/api/service/sales-serving/top")  # no key at all
    _flush(app)

    page = console.get("/security/refused-keys")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert secret[:10] in html and secret not in html and secret[10:] not in html
    assert "Unknown key" in html and "No key sent" in html and "127.0.0.1" in html
    assert "4 attempts in 2 records" in html
    only = console.get("/security/refused-keys?reason=key_revoked").get_data(as_text=True)
    assert secret[:10] not in only
    bad = console.get("/security/refused-keys?reason=everything")
    assert bad.status_code == 422
    assert "/security/refused-keys" in console.get("/projects").get_data(as_text=True)

    viewer = signed_in(app, add_user(client, admin, "viewer"))
    assert viewer.get("/security/refused-keys").status_code == 403
    assert "/security/refused-keys" not in viewer.get("/projects").get_data(as_text=True)
    stranger = signed_in(app, sign_up(client))
    assert secret[:10] not in stranger.get("/security/refused-keys").get_data(as_text=True)
