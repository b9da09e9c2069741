"""Liveness, readiness with a real worker, Prometheus metrics and the OpenAPI document."""

import re

from tests.conftest import add_user


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_database_redis_and_worker(client, admin, worker):
    resp = client.get("/readyz", headers=admin.headers)  # an org admin sees the details
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "ok"
    assert {"database", "redis", "worker"} <= set(body["checks"])
    queues = next(iter(body["checks"]["worker"]["workers"].values()))
    assert {"predict", "train", "functions", "default"} <= set(queues)


def test_anonymous_readyz_is_a_summary_without_errors_or_host_names(client, admin, worker):
    """Issue 12: unauthenticated /readyz showed the raw database error and the workers' host names."""
    detailed = client.get("/readyz", headers=admin.headers).get_json()
    hostnames = list(detailed["checks"]["worker"]["workers"])
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "status": "ok",
        "checks": {
            "database": {"ok": True},
            "redis": {"ok": True},
            # How many live workers each queue has: counts, never names.
            "worker": {"ok": True, "queues": {"predict": 1, "train": 1, "functions": 1, "default": 1}},
        },
    }
    assert not any(name in resp.get_data(as_text=True) for name in hostnames)
    viewer = add_user(client, admin, "viewer")
    assert "workers" not in client.get("/readyz", headers=viewer.headers).get_data(as_text=True)
    assert "workers" not in client.get("/readyz", headers={"Authorization": "Bearer junk"}).get_data(as_text=True)


def test_anonymous_readyz_hides_the_database_error(test_env, caplog):
    from app import create_app

    broken = create_app("testing", {"SQLALCHEMY_DATABASE_URI": "sqlite:////nonexistent-apiary-dir/secret-name.db"})
    resp = broken.test_client().get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 503
    assert body["checks"]["database"] == {"ok": False}
    assert "secret-name" not in resp.get_data(as_text=True) and "unable to open" not in resp.get_data(as_text=True)
    assert any("readiness check database failed" in r.getMessage() for r in caplog.records)  # for the operator


def test_readyz_is_503_without_a_live_worker(test_env, redis_url, admin):
    """Another Redis database: Redis answers, but no worker has announced itself there."""
    from app import create_app

    base = redis_url.rsplit("/", 1)[0]
    lonely = create_app("testing", {"REDIS_URL": f"{base}/14"})
    resp = lonely.test_client().get("/readyz", headers=admin.headers)
    body = resp.get_json()
    assert resp.status_code == 503, body
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False
    assert "no Celery worker has announced itself" in body["checks"]["worker"]["error"]


def test_ping_task_runs_on_the_worker(app, worker):
    from tasks.system import ping

    with app.app_context():
        result = ping.delay().get(timeout=10)
    assert result["pong"] is True and result["pid"] != __import__("os").getpid()


def test_readyz_is_503_when_redis_is_down(test_env):
    from app import create_app

    broken = create_app("testing", {"REDIS_URL": "redis://127.0.0.1:1/0"})
    resp = broken.test_client().get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False and body["checks"]["worker"]["ok"] is False


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/healthz")
    client.get("/api/does-not-exist")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'apiary_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'status="404"' in text
    assert "apiary_http_request_duration_seconds_bucket" in text


def test_openapi_covers_every_route(app, client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    serving = "/api/service/{asset_key}/{endpoint_id}"
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if path == serving and method not in ("GET", "POST"):
                continue  # a 405 whatever the endpoint's kind: not documented as an operation
            assert (path, method.lower()) in documented, (path, method)
    login = spec["paths"]["/api/auth/login"]["post"]
    assert "requestBody" in login and login["security"] == []
    upload = spec["paths"]["/api/datasets/file/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]
    form, file_part = upload["schema"]["allOf"]
    assert form == {"$ref": "#/components/schemas/UploadForm"}
    assert file_part == {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"],
    }
    assert {"name", "replace", "types"} <= set(spec["components"]["schemas"]["UploadForm"]["properties"])


def test_openapi_builds_without_warnings(app):
    import warnings

    from app.openapi import build_spec

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. two schemas resolving to one component name
        build_spec(app)


def test_openapi_describes_serving_bodies_and_leaves_the_console_out(app, client):
    spec = client.get("/api/openapi.json").get_json()
    console_paths = {
        re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
    }
    assert console_paths and not console_paths & set(spec["paths"])
    assert all(path.startswith("/api/") for path in spec["paths"] if path not in ("/healthz", "/readyz", "/metrics"))

    serving = spec["paths"]["/api/service/{asset_key}/{endpoint_id}"]
    assert set(serving) == {"get", "post"}  # the methods the kinds take; others are 405
    assert "sql" in serving["get"]["summary"] and "lookup" in serving["get"]["summary"]
    assert {"401", "403", "404", "405", "429"} <= set(serving["get"]["responses"])
    assert serving["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RowsResponse"
    }
    body = serving["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body} == {
        "ModelFeaturesRequest",
        "ModelRowsRequest",
        "FunctionRequest",
    }
    schemas = spec["components"]["schemas"]
    assert schemas["ModelFeaturesRequest"]["required"] == ["features"]
    assert schemas["ModelRowsRequest"]["properties"]["rows"]["type"] == "array"

    test_pane = spec["paths"]["/api/api-services/{asset_id}/endpoints/{endpoint_id}/test"]
    test_body = test_pane["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {"$ref": "#/components/schemas/TestParamsRequest"} in test_body and len(test_body) == 4
    assert "dry" in str(test_pane["post"]["responses"]["200"])

    run = spec["paths"]["/api/flow/ai-recipes/{recipe_id}/run"]["post"]
    assert "No request body" in run["description"] and "202" in run["responses"]
    assert [p["name"] for p in run["parameters"] if p["in"] == "query"] == ["wait"]
    recipe = spec["paths"]["/api/flow/ai-recipes"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "recipe_type" in schemas[recipe["$ref"].rsplit("/", 1)[1]]["properties"]
