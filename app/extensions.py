"""Unbound extensions: bound to an app by create_app, connections made lazily in each process."""

from __future__ import annotations

import redis
from flask import Flask, current_app
from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import DeclarativeBase

from app.namespace import namespaced_redis
from app.process import current_pid
from app.warehouse.engine import create_warehouse_engine


class Base(DeclarativeBase):
    """The declarative base of every metadata model (app/db); no shared columns."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()


class _PerProcess:
    """Holds per-process resources (pools, clients), rebuilt after a fork so nothing is shared across processes."""

    def __init__(self, name: str, factory):
        self.name = name
        self.factory = factory

    def init_app(self, app: Flask) -> None:
        app.extensions[self.name] = {"pid": None, "value": None}

    def get(self, app: Flask | None = None):
        slot = (app or current_app).extensions[self.name]
        pid = current_pid()
        if slot["pid"] != pid or slot["value"] is None:
            slot["value"] = self.factory(app or current_app._get_current_object())
            slot["pid"] = pid
        return slot["value"]


def _make_redis(app: Flask) -> redis.Redis:
    # No retry loop: when Redis is down, serving degrades (uncached, rate limits open) at once instead of stalling.
    # Every key lives under the installation's namespace, so installations sharing a Redis never meet.
    return namespaced_redis(
        app.config["REDIS_URL"],
        app.config["APIARY_NAMESPACE"],
        socket_connect_timeout=0.5,
        socket_timeout=2,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
    )


def _make_warehouse(app: Flask):
    return create_warehouse_engine(app.config["WAREHOUSE_URL"], app.config["WAREHOUSE_DIR"])


redis_store = _PerProcess("apiary_redis", _make_redis)
warehouse = _PerProcess("apiary_warehouse", _make_warehouse)
