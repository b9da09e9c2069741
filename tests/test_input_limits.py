"""Issue 12 input limits over HTTP: a 1 MB default body limit (uploads alone larger), 413 in the error envelope,
and deeply nested JSON a 400 naming the body instead of a 500."""

import io

import httpx

from tests.sdk.conftest import server_url  # noqa: F401 - the live gunicorn fixture
from tests.serving.test_serving_data import call, mint, service  # noqa: F401 - fixtures

MB = 1024 * 1024


def _deep(depth: int) -> bytes:
    return b'{"username": ' + b"[" * depth + b"]" * depth + b', "password": "x"}'


def test_bodies_over_the_default_limit_are_413_in_the_envelope(client, admin):
    big = b'{"username": "' + b"a" * (2 * MB) + b'", "password": "x"}'
    resp = client.post("/api/auth/login", data=big, content_type="application/json")
    assert resp.status_code == 413
    error = resp.get_json()["error"]
    assert error["code"] == "payload_too_large" and error["details"]["limit_bytes"] == MB
    resp = client.post("/api/projects", headers=admin.headers, data=big, content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "payload_too_large"
    small = client.post("/api/projects", headers=admin.headers, json={"name": "Fine", "slug": "fine"})
    assert small.status_code == 201


def test_uploads_alone_may_be_larger(client, admin, project, app, monkeypatch):
    rows = "".join(f"{i},{'x' * 60}\n" for i in range(25_000))  # ~1.6 MB
    csv_text = "id,note\n" + rows
    assert len(csv_text) > 1.5 * MB
    headers = admin.project_headers(project["project_id"])
    resp = client.post(
        "/api/datasets/file/upload",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_text.encode()), "big.csv"), "name": "big_notes"},
    )
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["row_count"] == 25_000
    # The upload route's own ceiling is UPLOAD_MAX_BYTES (plus room for the form fields).
    monkeypatch.setitem(app.config, "UPLOAD_MAX_BYTES", MB // 4)
    resp = client.post(
        "/api/datasets/file/upload",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_text.encode()), "big.csv"), "name": "big_notes_2"},
    )
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "payload_too_large"


def test_deeply_nested_json_is_a_400_naming_the_body(client, admin, service):  # noqa: F811
    """Before: 5,000 levels were a RecursionError, a 500, on every JSON route."""
    key = mint(client, admin, service)["key"]
    attempts = [
        client.post("/api/auth/login", data=_deep(5000), content_type="application/json"),
        client.post("/api/projects", headers=admin.headers, data=_deep(5000), content_type="application/json"),
        client.post("/api/publish/assets", headers=admin.headers, data=_deep(500), content_type="application/json"),
        call(client, key, "top", method="POST", data=_deep(5000), content_type="application/json"),
    ]
    for resp in attempts:
        assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
        error = resp.get_json()["error"]
        assert error["code"] == "invalid_json" and "body" in error["details"]["fields"]
    # JSON sent as a multipart form field (an upload's column types) is held to the same rule.
    headers = admin.project_headers(service_project_id(client, admin, service))
    resp = client.post(
        "/api/datasets/file/upload",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(b"id\n1\n"), "t.csv"), "name": "deep_types", "types": "[" * 5000 + "]" * 5000},
    )
    assert resp.status_code == 422 and "types" in resp.get_json()["error"]["details"]["fields"]
    # Ordinary nesting is untouched.
    assert client.post("/api/auth/login", data=_deep(20), content_type="application/json").status_code == 422


def service_project_id(client, admin, asset_id: int) -> int:
    return client.get(f"/api/publish/assets/{asset_id}", headers=admin.headers).get_json()["project_id"]


def test_live_gunicorn_refuses_a_chunked_body_past_the_limit(server_url):  # noqa: F811
    """No Content-Length: the limit holds on werkzeug's stream while the body is read, under a real server."""

    def chunks():
        yield b'{"username": "'
        for _ in range(3 * 16):
            yield b"a" * (64 * 1024)
        yield b'", "password": "x"}'

    resp = httpx.post(
        f"{server_url}/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert resp.status_code == 413, resp.text[:300]
    assert resp.json()["error"]["code"] == "payload_too_large"
    deep = httpx.post(f"{server_url}/api/auth/login", content=_deep(5000), headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
