"""The floor under a keyed cached lookup: a plain Flask route making Apiary's one round trip, and nothing else.

Issue 15 asks a keyed call to cost one Redis round trip: the rate limit, the serving generation, the result cache read
and the call's audit record in one script. This route makes exactly that round trip, through Apiary's own code
(`RateLimiter.hit_serving` and its serve script, an audit record built by `audit_entry` with the fields a served
call's record has), and answers the cached text with the `RateLimit-*` headers. What it leaves out is everything
else Apiary does per call: Apiary's app (its request ids, metrics and body limits on every route), the key's scope and
expiry, versions and routing, `Server-Timing`, the metrics of the call, and the worker that writes the records to the
database (they are left in Redis, the list capped). So the cached lookup against this route is what Apiary's own
Python costs beyond the round trip the issue asks for; this route against bare hello is the ceiling of any design
that makes that round trip from a Python web process.

    BENCH_REDIS_URL=redis://127.0.0.1:6380/4 BENCH_API_KEY=dk_... BENCH_ANSWER=<file> gunicorn ... \
        "bench.script_app:create_app()"
    GET /api/service/<service>/<endpoint>?id=42  ->  the answer in BENCH_ANSWER (401 for another key)
"""

from __future__ import annotations

import hmac
import json
import os
import random
import time
from pathlib import Path

import redis
from flask import Flask, Response, request

from app.keys.ratelimit import Probe, RateLimiter
from app.secrets import hash_api_key
from app.serving.audit import audit_entry

PREFIX = "bench_script:"
ENTRY = PREFIX + "entry:{G}:{R}"  # the serve script fills in the two cache generations (both unset: 0)
AUDIT_CAP = 10_000  # the records are never drained: the script keeps the newest 10,000
RATE_LIMIT = 1_000_000  # per minute, as the benchmark's Apiary key has


def create_app() -> Flask:
    app = Flask(__name__)
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.set(ENTRY.format(G=0, R=0), Path(os.environ["BENCH_ANSWER"]).read_bytes())
    limiter = RateLimiter(client, prefix=PREFIX + "rl")
    key_hash = hash_api_key(os.environ["BENCH_API_KEY"])
    bookkeeping = (PREFIX + "audit", PREFIX + "last_used", PREFIX + "flush", AUDIT_CAP)
    cache_keys = (PREFIX + "asset_gen", PREFIX + "rules_gen", ENTRY)
    ids = random.Random()

    @app.get("/api/service/<service>/<endpoint>")
    def lookup(service: str, endpoint: str):
        started = time.perf_counter()
        if not hmac.compare_digest(hash_api_key(request.headers.get("X-API-Key", "")), key_hash):
            return {"error": "unauthorized"}, 401
        entry = audit_entry(
            asset_id=1,
            endpoint_id=endpoint,
            key_id=1,
            status=200,
            latency_ms=(time.perf_counter() - started) * 1000,
            method="GET",
            org_id=1,
            project_id=1,
            version=1,
            request_id=f"{ids.getrandbits(128):032x}",
            client_ip=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
            timing={"cpu": 0.3, "total": 0.3},
        )
        probe = Probe(
            PREFIX + "serving_gen",
            cache_keys,
            expected_generation=0,
            bookkeeping=bookkeeping,
            hit_record=(json.dumps(entry, default=str, separators=(",", ":")), "1", f"{time.time():.3f}"),
        )
        decision = limiter.hit_serving("key:1", RATE_LIMIT, probe)
        if decision.cached is None or not decision.allowed:
            return {"error": "no cached answer or over the limit"}, 503
        response = Response(decision.cached, mimetype="application/json")  # as stored: the text Apiary sent
        response.headers.update({"X-Cache": "HIT", **decision.headers()})
        return response

    return app
