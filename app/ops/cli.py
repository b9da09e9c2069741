"""Operator CLI for the running system: `flask info`, `flask workers ...` and `flask queues ...`."""

from __future__ import annotations

import contextlib
import json
import os
import time

import click
import kombu.exceptions
import redis
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.errors import APIError
from app.extensions import db, redis_store
from app.ops.health import worker_processes
from app.ops.workers import check_queue_name, drain_host, purge_queue, queue_stats, resize_pools
from config import RUN_FILE, read_run_file

workers_cli = AppGroup("workers", help="Celery workers and their queues.")


@workers_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: workers and queues.")
def workers_status(as_json: bool):
    """Every live worker process on every host (from its heartbeat): queues, concurrency, tasks in flight, the age
    of its last heartbeat; then each queue's depth and consumers. Exits 1 when no worker is alive.

    Every process is listed, even two started with the same node name (`-n`); give each worker its own name
    (`-n predict@%h`) anyway, or Celery's broadcast commands cannot tell them apart.
    """
    app = current_app._get_current_object()
    now = time.time()
    with _redis_errors(app):
        workers = worker_processes(app)
        queues = queue_stats(app, now=now)
    if as_json:
        for w in workers:
            w["heartbeat_age_s"] = round(max(0.0, now - w["heartbeat"]), 3)
        click.echo(json.dumps({"workers": workers, "queues": queues}, indent=2))
    else:
        click.echo(f"{len(workers)} live worker(s)")
        for w in workers:
            queue_list = ", ".join(w["queues"]) or "(no queues: drained)"
            click.echo(
                f"  {w['node']} (pid {w['pid']}) on {w['host'] or '?'}: {queue_list}; concurrency "
                f"{w['concurrency']}, {w['in_flight']} in flight, last heartbeat {max(0.0, now - w['heartbeat']):.1f} s ago"
            )
        click.echo("queue depths:")
        for q in queues:
            click.echo(f"  {q['queue']}: {q['depth']} waiting, {q['consumers']} consumer(s)")
    if not workers:
        raise SystemExit(1)


@workers_cli.command("grow")
@click.argument("queue")
@click.argument("n", type=int)
def workers_grow(queue: str, n: int):
    """Add N pool processes to every worker consuming QUEUE (Celery's pool_grow). Example: flask workers grow predict 2"""
    _resize(queue, n, grow=True)


@workers_cli.command("shrink")
@click.argument("queue")
@click.argument("n", type=int)
def workers_shrink(queue: str, n: int):
    """Take N pool processes from every worker consuming QUEUE (Celery's pool_shrink)."""
    _resize(queue, n, grow=False)


def _resize(queue: str, n: int, grow: bool) -> None:
    app = current_app._get_current_object()
    with _redis_errors(app):
        answers = resize_pools(app, queue, n, grow)
    for node, answer in answers.items():
        click.echo(f"{node}: {answer}")
    if any(answer == "no answer" for answer in answers.values()):
        raise SystemExit(1)


@workers_cli.command("drain")
@click.argument("host")
def workers_drain(host: str):
    """Every worker on HOST (a host name, or one worker's node name like predict@web1) stops taking work from all
    its queues; tasks it is running finish. Stop the process afterwards; a restart consumes again."""
    app = current_app._get_current_object()
    with _redis_errors(app):
        drained = drain_host(app, host)
    for node, queues in drained.items():
        click.echo(f"{node}: stopped consuming {', '.join(queues) or '(nothing)'}; in-flight work finishes")


@click.group("queues", cls=AppGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {queue, depth, oldest_age_s, consumers}.")
@click.pass_context
@with_appcontext
def queues_cli(ctx: click.Context, as_json: bool):
    """Queue depths and the age of each queue's oldest message; `flask queues purge QUEUE --yes` empties one."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(queues_list, as_json=as_json)


@queues_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of {queue, depth, oldest_age_s, consumers}.")
def queues_list(as_json: bool):
    """Each queue's depth, the age of its oldest waiting message (from the send time stamped in every message's
    headers; '-' when empty or unstamped) and its live consumers."""
    app = current_app._get_current_object()
    with _redis_errors(app):
        stats = queue_stats(app)
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    for q in stats:
        age = "-" if q["oldest_age_s"] is None else f"{q['oldest_age_s']:.1f} s"
        click.echo(f"{q['queue']}: {q['depth']} waiting, oldest {age}, {q['consumers']} consumer(s)")


@queues_cli.command("purge")
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Really drop the waiting messages.")
def queues_purge(queue: str, yes: bool):
    """Drop every message waiting in QUEUE (work a worker already holds is not touched). Needs --yes."""
    app = current_app._get_current_object()
    with _redis_errors(app):
        check_queue_name(queue)
        if not yes:
            raise click.ClickException(f"this drops every message waiting in {queue}: add --yes")
        dropped = purge_queue(app, queue)
    click.echo(f"{queue}: dropped {dropped} waiting message(s)")


@contextlib.contextmanager
def _redis_errors(app: Flask):
    try:
        yield
    except (redis.RedisError, OSError, kombu.exceptions.OperationalError) as exc:
        raise click.ClickException(f"Redis is not reachable at {_safe_url(app.config['REDIS_URL'])}: {exc}") from None
    except APIError as exc:
        raise click.ClickException(exc.message) from None


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
    app.cli.add_command(queues_cli)
    app.cli.command("info")(info)
