"""Operator CLI for the running system: `flask info` and `flask workers status`."""

from __future__ import annotations

import os

import click
import redis
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.extensions import db, redis_store
from app.ops.health import worker_processes
from config import RUN_FILE, read_run_file
from tasks.celery_app import QUEUES

workers_cli = AppGroup("workers", help="Celery workers and their queues.")


@workers_cli.command("status")
def workers_status():
    """Live worker processes (from their heartbeats) with the queues each consumes, and each queue's depth.

    Every process is listed, even two started with the same node name (`-n`); give each worker its own name
    (`-n predict@%h`) anyway, or Celery's broadcast commands cannot tell them apart.
    """
    app = current_app._get_current_object()
    client = redis_store.get()
    try:
        depths = {queue: client.llen(queue) for queue in QUEUES}
        workers = worker_processes(app)
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis is not reachable at {_safe_url(app.config['REDIS_URL'])}: {exc}") from None
    click.echo(f"{len(workers)} live worker(s)")
    for worker in workers:
        queues = ", ".join(worker["queues"]) or "(no queues reported)"
        click.echo(f"  {worker['node']} (pid {worker['pid']}): {queues}")
    click.echo("queue depths:")
    for queue, depth in depths.items():
        consumers = sum(queue in w["queues"] for w in workers)
        click.echo(f"  {queue}: {depth} waiting, {consumers} consumer(s)")
    if not workers:
        raise SystemExit(1)


def _safe_url(url: str) -> str:
    """The URL with any password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy-shaped URL: show only its scheme
        return url.split("://", 1)[0] + "://…"


def _source(name: str, app: Flask) -> str:
    if os.environ.get(name):
        return "environment"
    if name in read_run_file(app.config["VAR_DIR"]):
        return f"var/{RUN_FILE}, written by make run"
    return "default"


def info() -> None:
    """What this CLI is connected to: database, warehouse, Redis, namespace, live workers."""
    app = current_app._get_current_object()
    cfg = app.config
    click.echo(f"config:     {cfg.get('ENV_NAME', '?')} (var dir {cfg['VAR_DIR']})")
    try:
        db.session.execute(text("SELECT 1"))
        db_state = "ok"
    except Exception as exc:  # report, don't crash
        db_state = f"unreachable ({type(exc).__name__})"
    click.echo(f"database:   {_safe_url(cfg['SQLALCHEMY_DATABASE_URI'])} [{_source('DATABASE_URL', app)}] {db_state}")
    click.echo(f"warehouse:  {_safe_url(cfg['WAREHOUSE_URL'])} [{_source('WAREHOUSE_URL', app)}]")
    try:
        redis_store.get().ping()
        workers = worker_processes(app)
        redis_state = "ok"
    except redis.RedisError as exc:
        workers, redis_state = None, f"unreachable ({type(exc).__name__})"
    click.echo(f"redis:      {_safe_url(cfg['REDIS_URL'])} [{_source('REDIS_URL', app)}] {redis_state}")
    ns_source = "environment" if os.environ.get("APIARY_NAMESPACE") else "derived from the database URL"
    click.echo(f"namespace:  {cfg['APIARY_NAMESPACE']} [{ns_source}]")
    if workers is None:
        click.echo("workers:    unknown (Redis is unreachable)")
    else:
        click.echo(f"workers:    {len(workers)} live")
        for worker in workers:
            click.echo(f"  {worker['node']} (pid {worker['pid']}): {', '.join(worker['queues'])}")


def register_ops_cli(app: Flask) -> None:
    app.cli.add_command(workers_cli)
    app.cli.command("info")(info)
