"""The one JSON error envelope for every kind of failure."""


def _envelope(resp, status, code=None):
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_malformed_json_is_400(client):
    resp = client.post("/api/auth/login", data="{not json", content_type="application/json")
    _envelope(resp, 400, "bad_request")


def test_non_object_json_is_400(client):
    _envelope(client.post("/api/auth/login", json=["a"]), 400, "bad_request")


def test_missing_fields_are_422_with_names(client):
    error = _envelope(client.post("/api/auth/login", json={}), 422, "validation_error")
    assert set(error["details"]["fields"]) == {"username", "password"}


def test_wrong_content_type_is_415(client):
    _envelope(client.post("/api/auth/login", data="username=a"), 415)


def test_unknown_route_is_404_and_wrong_method_405(client):
    _envelope(client.get("/api/nope"), 404, "not_found")
    _envelope(client.delete("/api/auth/login"), 405, "method_not_allowed")


def test_unexpected_error_is_500_with_request_id(app, caplog):
    from app import create_app

    fresh = create_app("testing")

    @fresh.get("/__boom")
    def boom():
        raise RuntimeError("kaboom secret detail")

    error = _envelope(fresh.test_client().get("/__boom", headers={"X-Request-Id": "req-123"}), 500, "internal_error")
    assert error["details"]["request_id"] == "req-123"
    assert "kaboom" not in error["message"]
    assert "req-123" in caplog.text


def test_an_api_error_crosses_a_process_boundary_intact():
    """What a worker answers (`to_dict`) is raised again on the web side (`from_dict`) as the same error."""
    from app.errors import APIError, conflict, forbidden, unauthorized, unavailable

    for err in (
        conflict("name taken", {"fields": {"name": ["taken"]}}),
        forbidden("no"),
        unauthorized("who?"),
        unavailable("no_worker", "later", headers={"Retry-After": 5}),
        APIError(422, "function_error", "boom", {"line": 3}),
    ):
        again = APIError.from_dict(err.to_dict())
        assert (again.status, again.code, again.message, again.details) == (
            err.status,
            err.code,
            err.message,
            err.details,
        )
        assert err.body() == {"error": {"code": err.code, "message": err.message, "details": err.details}}
    assert (conflict("x").status, forbidden("x").code, unauthorized("x").code, unavailable("c", "x").status) == (
        409,
        "permission_denied",
        "unauthorized",
        503,
    )
