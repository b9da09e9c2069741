"""Settings -> API Services: create, endpoint editor, publish, keys with a one-time reveal, Test pane, audit log."""

import re
import time

from tests.console.conftest import lookup_form


def _html(resp) -> str:
    return resp.get_data(as_text=True)


def test_settings_lists_services_with_a_draft_badge_and_publish_toggle(console, project, service):
    html = _html(console.get(f"/projects/{project['project_id']}/settings"))
    assert "Sales serving" in html
    assert 'class="badge badge-draft">draft<' in html
    assert f"/settings/services/{service['id']}/publish" in html


def test_settings_shows_an_empty_state_without_services(console, project):
    html = _html(console.get(f"/projects/{project['project_id']}/settings"))
    assert "No API services yet" in html


def test_a_taken_service_key_is_shown_next_to_its_field(console, project, service):
    resp = console.post(
        f"/projects/{project['project_id']}/settings/services", {"title": "Again", "asset_key": "sales-serving"}
    )
    assert resp.status_code == 422
    assert re.search(r'id="f-asset_key".*?class="field-error"[^>]*>already taken<', _html(resp), re.S)


def test_add_a_lookup_endpoint_then_edit_it(console, customers, service):
    resp = console.post(service["url"] + "/endpoints", lookup_form())
    assert resp.status_code == 302
    html = _html(console.get(service["url"]))
    assert "GET /api/service/sales-serving/customer?id=" in html
    resp = console.post(service["url"] + "/endpoints", lookup_form(original_id="customer", key_param="key"))
    assert resp.status_code == 302
    html = _html(console.get(service["url"]))
    assert "customer?key=" in html
    assert html.count("/endpoints/customer/delete") == 1


def test_validation_errors_appear_next_to_the_field(console, customers, service):
    resp = console.post(service["url"] + "/endpoints", lookup_form(key_column="no_such_column"))
    assert resp.status_code == 422
    html = _html(resp)
    # The error sits inside the key_column field and the typed value is kept.
    assert re.search(r'id="ep-f-key_column"[^>]*value="no_such_column".*?class="field-error"', html, re.S)
    assert "No endpoints yet" in html  # nothing was saved


def test_a_sql_query_that_is_not_json_is_refused_in_place(console, customers, service):
    resp = console.post(service["url"] + "/endpoints", {"id": "top", "kind": "sql", "query": "{not json"})
    assert resp.status_code == 422
    assert re.search(r'id="ep-f-query".*?not valid JSON', _html(resp), re.S)


def test_a_sql_endpoint_with_a_bad_filter_names_the_filter(console, customers, service):
    query = '{"source": {"schema": "uploads", "table": "customers"}, "filters": [{"column": "nope", "op": "eq", "param": "x"}]}'
    resp = console.post(service["url"] + "/endpoints", {"id": "top", "kind": "sql", "query": query})
    assert resp.status_code == 422
    assert re.search(r'id="ep-f-query".*?class="field-error"[^>]*>filters\[0\]', _html(resp), re.S)


def test_a_model_endpoint_needs_a_model_of_this_project(console, customers, service):
    resp = console.post(service["url"] + "/endpoints", {"id": "risk", "kind": "model", "model_id": "999"})
    assert resp.status_code == 422
    assert re.search(r'id="ep-f-model_id".*?not a model of this project', _html(resp), re.S)


def test_remove_an_endpoint(console, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    resp = console.post(service["url"] + "/endpoints/customer/delete")
    assert resp.status_code == 302
    assert "No endpoints yet" in _html(console.get(service["url"]))


def test_publish_and_unpublish_toggle(console, customers, service, project):
    console.post(service["url"] + "/endpoints", lookup_form())
    resp = console.post(service["url"] + "/publish", {"back": "settings"})
    assert resp.headers["Location"].endswith("/settings#services")
    html = _html(console.get(f"/projects/{project['project_id']}/settings"))
    assert 'class="badge badge-published">published<' in html
    assert "published as version 1" in html
    console.post(service["url"] + "/unpublish")
    assert 'class="badge badge-draft">draft<' in _html(console.get(service["url"]))


def _mint(console, service, **fields):
    return console.post(
        service["url"] + "/keys",
        {
            "name": "app",
            "rate_limit": "100",
            "expires_days": "30",
            "masking_level": "masked",
            "sensitivity_max": "medium",
            **fields,
        },
    )


def _secret(console, service, **fields) -> str:
    """Mint through the form and read the secret off the page the mint redirects to (post/redirect/get)."""
    minted = _mint(console, service, **fields)
    assert minted.status_code == 303, _html(minted)
    return re.search(r'id="revealed-key" value="(dk_[^"]+)"', _html(console.get(minted.headers["Location"]))).group(1)


def test_a_minted_key_is_shown_exactly_once_and_works(console, client, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/endpoints", lookup_form("other"))
    console.post(service["url"] + "/publish")
    minted = _mint(console, service, allowed_endpoints="customer")
    assert minted.status_code == 303 and minted.headers["Location"].endswith("#key-reveal")
    assert "dk_" not in minted.headers["Location"] and "dk_" not in minted.headers.get("Set-Cookie", "")
    resp = console.get(minted.headers["Location"])
    secret = re.search(r'id="revealed-key" value="(dk_[^"]+)"', _html(resp)).group(1)
    assert resp.headers["Cache-Control"] == "no-store"
    again = _html(console.get(minted.headers["Location"]))  # a reload: shown once, and no second key minted
    assert secret not in again and "shown once and is not shown again" in again
    assert len(re.findall(r"/keys/\d+/revoke", again)) == 1
    page = _html(console.get(service["url"]))
    assert secret not in page
    assert secret[:8] in page  # the prefix identifies it in the list
    ok = client.get("/api/service/sales-serving/customer?id=2", headers={"X-API-Key": secret})
    assert ok.status_code == 200 and ok.get_json()["count"] == 1
    scoped = client.get("/api/service/sales-serving/other?id=2", headers={"X-API-Key": secret})
    assert scoped.status_code == 403


def test_no_endpoint_checked_means_every_endpoint(console, client, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/publish")
    secret = _secret(console, service)
    assert client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": secret}).status_code == 200
    assert '<td class="small">all</td>' in _html(console.get(service["url"]))
    # ... including an endpoint added after the key was minted.
    console.post(service["url"] + "/endpoints", lookup_form("later"))
    console.post(service["url"] + "/publish")
    assert client.get("/api/service/sales-serving/later?id=1", headers={"X-API-Key": secret}).status_code == 200


def test_the_key_form_has_a_checkbox_per_endpoint_and_keeps_them_on_errors(console, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/endpoints", lookup_form("other"))
    html = _html(console.get(service["url"]))
    boxes = re.findall(r'<input type="checkbox" name="allowed_endpoints" value="([^"]+)"', html)
    assert boxes == ["customer", "other"]
    resp = _mint(console, service, name="", allowed_endpoints="other")
    assert resp.status_code == 422
    assert re.search(r'name="allowed_endpoints" value="other" checked', _html(resp))
    assert not re.search(r'name="allowed_endpoints" value="customer" checked', _html(resp))


def test_mint_errors_are_shown_next_to_the_field(console, customers, service):
    resp = _mint(console, service, name="", rate_limit="0")
    assert resp.status_code == 422
    html = _html(resp)
    assert re.search(r'id="key-f-name".*?class="field-error"', html, re.S)
    assert re.search(r'id="key-f-rate_limit".*?class="field-error"', html, re.S)
    assert "dk_" not in html


def test_revoke_a_key(console, client, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/publish")
    secret = _secret(console, service)
    key_id = re.search(r"/keys/(\d+)/revoke", _html(console.get(service["url"]))).group(1)
    assert console.post(f"{service['url']}/keys/{key_id}/revoke").status_code == 302
    assert "badge-revoked" in _html(console.get(service["url"]))
    assert client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": secret}).status_code == 403


def test_the_test_pane_runs_the_draft_and_reports_latency(console, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    resp = console.post_json(service["url"] + "/test", {"endpoint_id": "customer", "body": {"id": 3}})
    assert resp.status_code == 200
    result = resp.get_json()
    assert result["status"] == 200
    assert result["body"]["dry"] is True
    assert result["body"]["rows"][0]["name"] == "Alan Turing"  # unmasked, as an admin sees it
    assert isinstance(result["latency_ms"], float)


def test_the_test_pane_shows_errors_as_results(console, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    result = console.post_json(service["url"] + "/test", {"endpoint_id": "customer", "body": {}}).get_json()
    assert result["status"] == 400
    assert "id" in result["body"]["error"]["message"]
    result = console.post_json(service["url"] + "/test", {"endpoint_id": "customer", "body": [1]}).get_json()
    assert result["status"] == 400


def test_the_test_pane_needs_the_csrf_header(console, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    resp = console.client.post(
        service["url"] + "/test",
        json={"endpoint_id": "customer", "body": {"id": 1}},
        headers={"X-Requested-With": "fetch"},
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "csrf_failed"


def _audit_written(app, count: int) -> None:
    """Flush the buffered audit records and wait until the database holds `count`: the session's worker may flush
    some of them first, so what one flush returns is no measure."""
    from sqlalchemy import func, select

    from app.db import AuditLog
    from app.extensions import db
    from app.serving.audit import flush_serving_records

    deadline = time.monotonic() + 10
    with app.app_context():
        while True:
            flush_serving_records()
            total = db.session.scalar(select(func.count()).select_from(AuditLog))
            db.session.rollback()
            if total >= count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert total == count


def test_audit_log_lists_keyed_calls_with_filters(app, console, client, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/publish")
    secret = _secret(console, service)
    client.get("/api/service/sales-serving/customer?id=1", headers={"X-API-Key": secret})
    client.get("/api/service/sales-serving/customer", headers={"X-API-Key": secret})  # 400: no id
    _audit_written(app, 2)
    html = _html(console.get(service["url"] + "/logs"))
    assert "2 calls" in html or html.count("<tr>") >= 3
    assert ">200<" in html and ">400<" in html
    errors_only = _html(console.get(service["url"] + "/logs?errors_only=true"))
    assert ">400<" in errors_only and ">200<" not in errors_only
    bad = console.get(service["url"] + "/logs?status=abc")
    assert bad.status_code == 422
    assert re.search(r'id="f-status".*?class="field-error"', _html(bad), re.S)


def test_audit_log_filters_by_endpoint_key_status_and_time(app, console, client, customers, service):
    console.post(service["url"] + "/endpoints", lookup_form())
    console.post(service["url"] + "/endpoints", lookup_form("other"))
    console.post(service["url"] + "/publish")
    first = _secret(console, service, name="first")
    second = _secret(console, service, name="second")
    for secret, path in ((first, "customer?id=1"), (first, "other?id=2"), (second, "other?id=3"), (second, "other")):
        client.get(f"/api/service/sales-serving/{path}", headers={"X-API-Key": secret})
    _audit_written(app, 4)
    key_ids = dict(
        re.findall(r'<option value="(\d+)" >(first|second) \(', _html(console.get(service["url"] + "/logs")))
    )
    key_ids = {name: key_id for key_id, name in key_ids.items()}
    assert set(key_ids) == {"first", "second"}

    def rows(**query) -> list[str]:
        html = _html(console.get(service["url"] + "/logs", query_string=query))
        body = html.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in html else ""
        return re.findall(r'<td class="mono">(customer|other)</td>', body)

    assert sorted(rows()) == ["customer", "other", "other", "other"]
    assert rows(endpoint_id="customer") == ["customer"]
    assert rows(key_id=key_ids["second"]) == ["other", "other"]
    assert rows(key_id=key_ids["first"], endpoint_id="other") == ["other"]
    assert rows(status="400") == ["other"]
    # since/until as the browser's datetime-local inputs send them.
    assert rows(since="2000-01-01T00:00", until="2999-01-01T00:00") != []
    assert rows(since="2999-01-01T00:00") == []
    assert rows(until="2000-01-01T00:00") == []
    # The chosen filters stay selected.
    html = _html(console.get(service["url"] + "/logs", query_string={"endpoint_id": "other", "errors_only": "true"}))
    assert '<option value="other" selected>' in html
    assert re.search(r'name="errors_only" value="true" checked', html)


def test_audit_log_has_an_empty_state(console, service):
    assert "No calls match" in _html(console.get(service["url"] + "/logs"))


def test_the_minted_secret_waits_only_for_the_user_who_minted_it(app, client, admin, console, customers, service):
    from tests.conftest import add_user
    from tests.console.conftest import signed_in

    console.post(service["url"] + "/endpoints", lookup_form())
    minted = _mint(console, service)
    assert minted.status_code == 303
    other = signed_in(app, add_user(client, admin, "admin"))  # same organization, same page, not the minter
    assert 'id="revealed-key"' not in _html(other.get(minted.headers["Location"]))
    assert re.search(r'id="revealed-key" value="dk_', _html(console.get(minted.headers["Location"])))
