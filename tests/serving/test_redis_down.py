"""Issue 12 item 16: with Redis down, serving goes on with one warning per outage (not per request) and no
`RateLimit-*` headers claiming a budget nobody could count."""

import logging

from tests.serving.test_serving_data import mint, service  # noqa: F401 - fixture


def test_serving_without_redis_warns_once_and_claims_no_budget(client, admin, service, caplog):  # noqa: F811
    from app import create_app

    key = mint(client, admin, service, rate_limit=5)["key"]
    # The same database and warehouse, but its Redis is a closed port.
    broken = create_app("testing", {"REDIS_URL": "redis://127.0.0.1:1/0"}).test_client()
    caplog.set_level(logging.WARNING)
    responses = [broken.get("/api/service/sales-serving/top", headers={"X-API-Key": key}) for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 8  # fail open: no 429 although the key allows 5
    for resp in responses:
        assert not any(name.startswith("RateLimit-") for name in resp.headers.keys()), dict(resp.headers)
    limiter_warnings = [r for r in caplog.records if r.name == "app.keys.ratelimit"]
    cache_warnings = [r for r in caplog.records if r.name == "app.query.cache"]
    assert len(limiter_warnings) == 1, [r.getMessage() for r in limiter_warnings]
    assert len(cache_warnings) == 1, [r.getMessage() for r in cache_warnings]
