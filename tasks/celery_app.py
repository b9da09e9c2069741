"""Celery bound to the Flask app: Redis broker and backend, named queues, tasks run inside an app context."""

from __future__ import annotations

import time

from celery import Celery, Task
from celery.app import trace as celery_trace
from celery.signals import before_task_publish
from flask import Flask
from kombu import Queue

from app.errors import APIError
from app.extensions import redis_store
from app.namespace import key_prefix
from tasks.broker import transport_for
from tasks.leases import CLAIM_HEADER, start_claim

# A task's answer (predictions, function output, rows) may be personal data: the worker's success line names the task
# and its run time, never its return value (Celery reads this format when it logs, so setting it here is enough).
celery_trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"

QUEUES = ("predict", "train", "functions", "default")
# Every message says when it was sent, so `flask queues` can tell how long the oldest one has waited.
SENT_AT_HEADER = "apiary_sent_at"

TASK_MODULES = [
    "tasks.system",
    "tasks.heartbeat",
    "tasks.replies",
    "tasks.predict",
    "tasks.train",
    "tasks.functions",
    "tasks.maintenance",
    "tasks.indexing",
]


# Periodic work, run by `celery -A celery_worker beat` (make run starts one; run exactly one per installation).
BEAT_SCHEDULE = {
    "reap-stuck-training-runs": {"task": "tasks.maintenance.reap_stuck_runs", "schedule": 60.0},
    "purge-old-audit-logs": {"task": "tasks.maintenance.purge_audit_logs", "schedule": 3600.0},
    # Refused-key counts of the minutes just closed reach the database even when no call schedules a flush.
    "flush-serving-records": {"task": "tasks.maintenance.flush_serving_records", "schedule": 60.0},
}


@before_task_publish.connect
def _stamp_sent_at(headers=None, **_kwargs) -> None:
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                claim = getattr(self.request, CLAIM_HEADER, None)
                if claim and not start_claim(redis_store.get(), claim):
                    # Its caller stopped waiting at its queue timeout (and answered 503): the work is not done.
                    return {"error": APIError(503, "overloaded", "the caller stopped waiting").to_dict()}
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    # Queues, bindings, broadcast and event channels, results: all under the installation's namespace.
    prefix = key_prefix(app.config["APIARY_NAMESPACE"])
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        broker_transport=transport_for(app.config["CELERY_BROKER_URL"]),  # one publishing client per channel
        result_backend=app.config["CELERY_RESULT_BACKEND"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="default",
        task_routes={
            "tasks.predict.*": {"queue": "predict"},
            "tasks.train.*": {"queue": "train"},
            "tasks.functions.*": {"queue": "functions"},
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=600,
        task_time_limit=660,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600, "socket_connect_timeout": 1, "global_keyprefix": prefix},
        result_backend_transport_options={
            "socket_connect_timeout": 1,
            "global_keyprefix": prefix,
            # Celery's default retries a lost result connection 20 times a second apart, holding every caller
            # waiting in the process; with Redis away a call should be a 503 at once, and the next call reconnects.
            "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        },
        redis_socket_connect_timeout=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        imports=TASK_MODULES,
        beat_schedule=BEAT_SCHEDULE,
        apiary_namespace=app.config["APIARY_NAMESPACE"],
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
