"""Default-queue housekeeping: moving buffered audit records and key usage into the database, and the periodic
work celery beat schedules (tasks.celery_app.BEAT_SCHEDULE): reaping lost training runs, purging old audit rows."""

from celery import shared_task
from flask import current_app

from app.registry.reaper import reap_stuck_runs as reap
from app.serving.audit import flush_serving_records as flush
from app.serving.audit_retention import purge_audit_logs as purge
from tasks.train import TIME_LIMIT_SECONDS


@shared_task(name="tasks.maintenance.flush_serving_records", time_limit=120, acks_late=False)
def flush_serving_records() -> int:
    return flush()


@shared_task(name="tasks.maintenance.reap_stuck_runs", time_limit=60, acks_late=False)
def reap_stuck_runs() -> int:
    return reap(TIME_LIMIT_SECONDS)


@shared_task(name="tasks.maintenance.purge_audit_logs", time_limit=600, acks_late=False)
def purge_audit_logs() -> int:
    return purge(int(current_app.config["AUDIT_RETENTION_DAYS"]))
