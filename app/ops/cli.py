"""Operator CLI for the Celery side: `flask workers status`."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.extensions import redis_store
from app.ops.health import live_workers
from tasks.celery_app import QUEUES

workers_cli = AppGroup("workers", help="Celery workers and their queues.")


@workers_cli.command("status")
@click.option("--timeout", default=1.0, show_default=True, help="Seconds to wait for workers to answer.")
def workers_status(timeout):
    """Live workers with the queues they consume, and how many tasks wait in each queue."""
    app = current_app._get_current_object()
    client = redis_store.get()
    try:
        depths = {queue: client.llen(queue) for queue in QUEUES}
    except Exception as exc:  # noqa: BLE001 - report, don't crash, when the broker is down
        raise click.ClickException(f"Redis is not reachable: {exc}") from None
    workers = live_workers(app, timeout=timeout)
    click.echo(f"{len(workers)} live worker(s)")
    for name, queues in sorted(workers.items()):
        click.echo(f"  {name}: {', '.join(queues) or '(no queues reported)'}")
    click.echo("queue depths:")
    for queue, depth in depths.items():
        consumers = sum(queue in qs for qs in workers.values())
        click.echo(f"  {queue}: {depth} waiting, {consumers} consumer(s)")
    if not workers:
        raise SystemExit(1)


def register_ops_cli(app: Flask) -> None:
    app.cli.add_command(workers_cli)
