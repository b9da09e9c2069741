"""The reference for cached lookups: a plain Flask route answering from one Redis GET.

What a team would deploy for "look this customer up, fast" with a cache in front: the answer kept in Redis as JSON
text under the lookup's key, one `GET` per request with redis-py, sent as it is stored. No key, no rate limit, no
audit record, no metrics: the floor under any cached lookup served by a Python web process over Redis. `BENCH_REDIS_URL`
names the Redis (the benchmark points it at another database of its private Redis than Apiary's), and the benchmark
stores the answer (Apiary's own cached answer, byte for byte) under `bench_ref:lookup:<id>` before measuring.

    BENCH_REDIS_URL=redis://127.0.0.1:6380/2 gunicorn ... "bench.redis_app:create_app()"
    GET /lookup?id=42  ->  the stored answer (404 when none)
"""

from __future__ import annotations

import os

import redis
from flask import Flask, Response, request

ANSWER_KEY = "bench_ref:lookup:{}"


def create_app() -> Flask:
    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])

    @app.get("/lookup")
    def lookup():
        raw = client.get(ANSWER_KEY.format(request.args.get("id", "")))
        if raw is None:
            return {"error": "not found"}, 404
        return Response(raw, mimetype="application/json")

    return app
