"""The train queue: run one training recipe run, claimed once however often the task is delivered."""

from __future__ import annotations

from celery import shared_task

from app.registry.training_run import execute_run

# The web side waits TRAIN_TIMEOUT_SECONDS (600 by default); the soft limit ends a run that goes on past that
# with a recorded failure, the hard limit kills a process that ignores it.
SOFT_TIME_LIMIT_SECONDS = 600
TIME_LIMIT_SECONDS = 660


@shared_task(
    name="tasks.train.train_recipe",
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
    # Acknowledged when done, and requeued when the process running it dies (OOM killer, SIGKILL): another train
    # worker retries the run once; the run's lock keeps two deliveries from training at the same time.
    acks_late=True,
    reject_on_worker_lost=True,
)
def train_recipe(run_id: int) -> dict:
    """Train the recipe of run `run_id`; returns the run's outcome ({status, run_id, model_id, metrics | error})."""
    return execute_run(run_id)
