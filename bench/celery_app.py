"""The reference for function endpoints: a plain Flask route that runs a Celery task on a worker and waits for it.

What a team would deploy for "run this on a worker and wait", the standard Celery way: Redis as broker and result
backend, one task, `apply_async(...).get()` in the view. The task computes what the benchmark's function endpoint
`segment` computes. `BENCH_CELERY_URL` names the Redis (the benchmark points it at another database of its private
Redis than Apiary's), and everything runs on its own queue, so it never touches Apiary's queues or keys.

    BENCH_CELERY_URL=redis://127.0.0.1:6380/1 celery -A bench.celery_app worker -Q bench_ref --pool threads ...
    BENCH_CELERY_URL=redis://127.0.0.1:6380/1 gunicorn ... "bench.celery_app:create_app()"
    POST /run {"tenure": 5}  ->  {"result": {"segment": "new", "tenure": 5}}
    GET /ready               ->  200 once a worker answers a ping, 503 before
"""

from __future__ import annotations

import os

from celery import Celery
from flask import Flask, request

QUEUE = "bench_ref"
WAIT_S = 10  # as long as Apiary's function endpoint waits for its worker


def _settings() -> dict:
    """Read when Celery first needs its configuration (in the worker or the web process), not at import."""
    url = os.environ["BENCH_CELERY_URL"]
    return {
        "broker_url": url,
        "result_backend": url,
        "task_default_queue": QUEUE,
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
    }


# The worker finds this instance through `-A bench.celery_app`; it holds no connection until it is used.
celery = Celery("bench_ref")
celery.add_defaults(_settings)


@celery.task(name="bench_ref.echo", time_limit=60)
def echo(payload: dict) -> dict:
    tenure = payload.get("tenure", 0)
    return {"result": {"segment": "new" if tenure < 12 else "loyal", "tenure": tenure}}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/run")
    def run():
        return echo.apply_async(args=[request.get_json()]).get(timeout=WAIT_S)

    @app.get("/ready")
    def ready():
        # The benchmark polls this until the worker has booted, so the first measured call does not wait for it.
        return ("ready", 200) if celery.control.ping(timeout=0.5) else ("no worker answers", 503)

    return app
