"""Apiary: warehouse tables, lookups, scikit-learn models and Python functions as key-gated REST endpoints."""

from __future__ import annotations

import logging
import os
import random

from flask import Flask, g, request

from config import ROOT, load_config


def create_app(config_name: str | None = None, overrides: dict | None = None) -> Flask:
    from app.http import ApiaryFlask

    app = ApiaryFlask(__name__)
    config = load_config(config_name)
    app.config.from_object(config)
    if overrides:
        app.config.update(overrides)
    if app.config.get("TRUSTED_PROXY_COUNT"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client address (login throttling) from X-Forwarded-For, as far as the operator's proxies vouch.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXY_COUNT"])
    logging.basicConfig(level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces each of its autogenerate plugins at INFO on import: 7 lines before every `flask` command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    register_extensions(app)
    register_url_converters(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    register_request_ids(app)
    return app


def register_extensions(app: Flask) -> None:
    from app import db as _models  # noqa: F401 - registers every model on the metadata
    from app.extensions import db, jwt, migrate, redis_store, warehouse
    from app.ops.metrics import init_metrics
    from tasks.celery_app import celery_init_app

    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    jwt.init_app(app)
    redis_store.init_app(app)
    warehouse.init_app(app)
    celery_init_app(app)
    init_metrics(app)
    _point_jwt_errors_at_envelope(jwt)
    register_process_singletons(app)
    register_input_limits(app)


def register_process_singletons(app: Flask) -> None:
    """Per-process helpers over Redis that keep state across requests (outage back-off, throttled warnings)."""
    from app.keys.ratelimit import rate_limiter
    from app.serving.cache import result_caches

    rate_limiter.init_app(app)
    result_caches.init_app(app)
    from app.serving.state import serving_states  # keys, configs, queries cached per process (issue 15)

    serving_states.init_app(app)
    from app.serving.audit_outbox import audit_outboxes  # served calls' audit records, carried by the next call

    audit_outboxes.init_app(app)


def register_input_limits(app: Flask) -> None:
    from app.http import init_input_limits

    init_input_limits(app)


def _point_jwt_errors_at_envelope(jwt) -> None:
    from app.errors import envelope

    def unauthorized(message: str = "invalid or expired credentials"):
        return envelope(401, "unauthorized", message)

    jwt.unauthorized_loader(lambda reason: unauthorized(f"missing credentials: {reason}"))
    jwt.invalid_token_loader(lambda reason: unauthorized(f"invalid token: {reason}"))
    jwt.expired_token_loader(lambda _header, _payload: unauthorized("token has expired"))
    jwt.revoked_token_loader(lambda _header, _payload: unauthorized("token has been revoked"))
    jwt.user_lookup_error_loader(lambda _header, _payload: unauthorized("user no longer exists"))


def register_url_converters(app: Flask) -> None:
    """`<int:...>` path ids beyond the largest stored id are a 404 at routing, never a database overflow."""
    from werkzeug.exceptions import NotFound
    from werkzeug.routing import IntegerConverter

    from app.db.columns import MAX_ID

    class IdConverter(IntegerConverter):
        def to_python(self, value: str) -> int:
            number = super().to_python(value)
            if number > MAX_ID:
                # Not ValidationError: with it, werkzeug would answer 405 when a sibling rule has other methods.
                raise NotFound()
            return number

    app.url_map.converters["int"] = IdConverter


def register_blueprints(app: Flask) -> None:
    from app.auth.routes import bp as auth_bp
    from app.console.routes import bp as console_bp
    from app.datasets.routes import bp as datasets_bp
    from app.keys.routes import bp as keys_bp
    from app.ops.routes import bp as ops_bp
    from app.projects.routes import bp as projects_bp
    from app.publishing.routes import bp as publishing_bp
    from app.registry.routes import bp as models_bp
    from app.serving.routes import bp as serving_bp

    for bp in (ops_bp, auth_bp, projects_bp, datasets_bp, publishing_bp, keys_bp, models_bp, serving_bp, console_bp):
        app.register_blueprint(bp)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register_error_handlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from app.cli import register_cli

    register_cli(app)


# Request ids are correlation ids, not secrets: a generator costs no system call, where secrets.token_hex made a
# getrandom call (which also let the GIL go) on every request. Their own generator, seeded from os.urandom and
# reseeded in every forked worker: callers see every id, and ids drawn from the module-level `random` would let a
# caller rebuild the state that picks routed versions (app/publishing/routing.py) and choose one without
# can_force_version.
_request_ids = random.Random()
os.register_at_fork(after_in_child=_request_ids.seed)


def new_request_id() -> str:
    return f"{_request_ids.getrandbits(128):032x}"


def register_request_ids(app: Flask) -> None:
    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() else new_request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
