"""Default-queue housekeeping: moving buffered audit records and key usage into the database."""

from celery import shared_task


@shared_task(name="tasks.maintenance.flush_serving_records", time_limit=120, acks_late=False)
def flush_serving_records() -> int:
    from app.serving.service import flush_serving_records as flush

    return flush()
