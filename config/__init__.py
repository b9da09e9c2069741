"""Configuration classes; every environment variable Apiary reads is read here, when a config is built."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _persisted_secret(var_dir: Path, name: str) -> str:
    """A random secret kept under var/ so every process of a local install signs with the same key."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / name
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        os.replace(tmp, path)
    return path.read_text().strip()


class BaseConfig:
    """Defaults shared by every environment; built from os.environ at instantiation."""

    ENV_NAME = "base"

    def __init__(self, environ: dict | None = None):
        env = os.environ if environ is None else environ
        self.VAR_DIR = Path(env.get("APIARY_VAR_DIR") or ROOT / "var").resolve()
        var = self.VAR_DIR
        self.SQLALCHEMY_DATABASE_URI = env.get("DATABASE_URL") or f"sqlite:///{var / 'apiary.db'}"
        self.WAREHOUSE_URL = env.get("WAREHOUSE_URL") or f"sqlite:///{var / 'warehouse' / 'main.db'}"
        self.WAREHOUSE_SCHEMA_PREFIX = env.get("WAREHOUSE_SCHEMA_PREFIX") or ""
        self.WAREHOUSE_DIR = str(Path(env.get("WAREHOUSE_DIR") or var / "warehouse").resolve())
        self.REDIS_URL = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or self.REDIS_URL
        self.CELERY_RESULT_BACKEND = env.get("CELERY_RESULT_BACKEND") or self.REDIS_URL
        self.MODEL_STORE = str(Path(env.get("MODEL_STORE") or var / "models").resolve())
        self.SECRET_KEY = env.get("SECRET_KEY") or self._default_secret(var, "secret_key")
        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or self._default_secret(var, "jwt_secret_key")
        self.JWT_EXPIRES_MINUTES = int(env.get("JWT_EXPIRES_MINUTES") or 60)
        self.ALLOW_SIGNUP = _bool(env.get("ALLOW_SIGNUP"), True)
        # The console's session cookie travels only over HTTPS in production unless told otherwise.
        self.SESSION_COOKIE_SECURE = _bool(env.get("SESSION_COOKIE_SECURE"), self.ENV_NAME == "production")
        # Registering an existing warehouse table needs an operator's grant of its schema to the organization, in every
        # environment: self-service sign-up would otherwise let any new organization claim unregistered tables.
        self.REGISTER_REQUIRES_GRANT = _bool(env.get("REGISTER_REQUIRES_GRANT"), True)
        # Schemas every organization may upload into; any other needs an operator's grant (a schema is a physical
        # object: a file attached per connection on SQLite), so tenants cannot create schemas at will.
        self.UPLOAD_SCHEMAS = tuple(
            s.strip() for s in (env.get("UPLOAD_SCHEMAS") or "uploads,marts").split(",") if s.strip()
        )
        self.UPLOAD_MAX_COLUMNS = int(env.get("UPLOAD_MAX_COLUMNS") or 2000)
        self.STATEMENT_TIMEOUT_SECONDS = float(env.get("STATEMENT_TIMEOUT_SECONDS") or 5)
        self.PREDICT_TIMEOUT_SECONDS = float(env.get("PREDICT_TIMEOUT_SECONDS") or 10)
        self.PREDICT_MAX_ROWS = int(env.get("PREDICT_MAX_ROWS") or 10_000)
        self.EXPLAIN_MAX_ROWS = int(env.get("EXPLAIN_MAX_ROWS") or 100)  # rows explained per model call
        self.TRAIN_TIMEOUT_SECONDS = float(env.get("TRAIN_TIMEOUT_SECONDS") or 600)
        self.FUNCTION_TIMEOUT_SECONDS = float(env.get("FUNCTION_TIMEOUT_SECONDS") or 5)
        self.UPLOAD_MAX_BYTES = int(env.get("UPLOAD_MAX_BYTES") or 1024**3)
        self.MAX_CONTENT_LENGTH = self.UPLOAD_MAX_BYTES + 1024 * 1024
        self.LOG_LEVEL = env.get("LOG_LEVEL") or "INFO"
        self.PROMETHEUS_MULTIPROC_DIR = env.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        self.JSON_SORT_KEYS = False

    def _default_secret(self, var: Path, name: str) -> str:
        return _persisted_secret(var, name)


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    TESTING = True

    def _default_secret(self, var: Path, name: str) -> str:
        return f"testing-{name}-not-secret-0123456789abcdef"


class ProductionConfig(BaseConfig):
    ENV_NAME = "production"

    def _default_secret(self, var: Path, name: str) -> str:
        raise RuntimeError(f"{name.upper()} must be set in production")


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(name: str | None = None, environ: dict | None = None) -> BaseConfig:
    """Build the config named `name`, else APP_CONFIG, else development."""
    env = os.environ if environ is None else environ
    name = name or env.get("APP_CONFIG") or "development"
    if name not in CONFIGS:
        raise RuntimeError(f"APP_CONFIG must be one of {', '.join(CONFIGS)}, not {name!r}")
    return CONFIGS[name](env)
