"""Default-queue housekeeping tasks."""

import os

from celery import shared_task


@shared_task(name="tasks.system.ping", time_limit=10)
def ping() -> dict:
    """Answers from a worker process; used by readiness checks and tests."""
    return {"pong": True, "pid": os.getpid()}
