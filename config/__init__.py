"""Configuration classes; every environment variable Apiary reads is read here, when a config is built."""

from __future__ import annotations

import hashlib
import os
import re
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


NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def default_namespace(database_url: str) -> str:
    """A short, stable name derived from the metadata database URL: one database, one installation."""
    return "apiary-" + hashlib.sha256(database_url.encode()).hexdigest()[:12]


RUN_FILE = "run.env"
RUN_FILE_NAMES = ("REDIS_URL", "DATABASE_URL", "WAREHOUSE_URL")


def read_run_file(var_dir: Path) -> dict[str, str]:
    """The URLs `make run` wrote to var/run.env (NAME=value lines), so the CLI finds the system it started."""
    path = var_dir / RUN_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep and name.strip() in RUN_FILE_NAMES and value.strip():
            found[name.strip()] = value.strip()
    return found


class BaseConfig:
    """Defaults shared by every environment; built from os.environ at instantiation."""

    ENV_NAME = "base"
    # Argon2id parameters of new password hashes (app/auth/passwords.py: PROFILES). Not read from the environment,
    # so no deployment can weaken them by a variable.
    PASSWORD_HASH_PROFILE = "rfc_9106_low_memory"

    def __init__(self, environ: dict | None = None):
        env = os.environ if environ is None else environ
        self.VAR_DIR = Path(env.get("APIARY_VAR_DIR") or ROOT / "var").resolve()
        var = self.VAR_DIR
        # What `make run` chose (its private Redis, the URLs it was given) when the environment does not say.
        chosen = read_run_file(var) if _bool(env.get("APIARY_USE_RUN_FILE"), True) else {}
        self.SQLALCHEMY_DATABASE_URI = (
            env.get("DATABASE_URL") or chosen.get("DATABASE_URL") or f"sqlite:///{var / 'apiary.db'}"
        )
        self.WAREHOUSE_URL = (
            env.get("WAREHOUSE_URL") or chosen.get("WAREHOUSE_URL") or f"sqlite:///{var / 'warehouse' / 'main.db'}"
        )
        self.WAREHOUSE_SCHEMA_PREFIX = env.get("WAREHOUSE_SCHEMA_PREFIX") or ""
        self.WAREHOUSE_DIR = str(Path(env.get("WAREHOUSE_DIR") or var / "warehouse").resolve())
        self.REDIS_URL = env.get("REDIS_URL") or chosen.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        # Every Redis key, queue and channel of this installation starts with "<APIARY_NAMESPACE>:".
        self.APIARY_NAMESPACE = env.get("APIARY_NAMESPACE") or default_namespace(self.SQLALCHEMY_DATABASE_URI)
        if not NAMESPACE_PATTERN.match(self.APIARY_NAMESPACE):
            raise RuntimeError("APIARY_NAMESPACE must be 1-63 letters, digits, '_', '.' or '-'")
        self.CELERY_BROKER_URL = env.get("CELERY_BROKER_URL") or self.REDIS_URL
        self.CELERY_RESULT_BACKEND = env.get("CELERY_RESULT_BACKEND") or self.REDIS_URL
        self.MODEL_STORE = str(Path(env.get("MODEL_STORE") or var / "models").resolve())
        # `make run` only: worker lines replacing the Procfile's, e.g. "predict:2,train:1,functions:1,default:1".
        self.APIARY_WORKERS = env.get("APIARY_WORKERS") or ""
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
        # Shadow runs waiting or running at once, over every server; more are dropped (they never delay an answer).
        self.SHADOW_MAX_IN_FLIGHT = int(env.get("SHADOW_MAX_IN_FLIGHT") or 32)
        # Copies of the preload task sent when a version starts receiving traffic: one per predict process.
        self.PREDICT_WARM_COPIES = int(env.get("PREDICT_WARM_COPIES") or 4)
        self.TRAIN_TIMEOUT_SECONDS = float(env.get("TRAIN_TIMEOUT_SECONDS") or 600)
        self.FUNCTION_TIMEOUT_SECONDS = float(env.get("FUNCTION_TIMEOUT_SECONDS") or 5)
        # The most of a shared queue's (predict, functions) task slots, the live workers' concurrency, that one
        # organization may hold at once (at least one slot); its further calls wait their turn (README: pools).
        self.FAIR_SHARE = float(env.get("FAIR_SHARE") or 0.5)
        if not 0 < self.FAIR_SHARE <= 1:
            raise RuntimeError("FAIR_SHARE must be a fraction above 0 and at most 1")
        # Warm function jails, per worker process: calls a jail serves, seconds it lives (idle or not), jails kept.
        # FUNCTION_JAIL_MAX_CALLS=1, FUNCTION_JAIL_MAX_AGE_SECONDS=0 or FUNCTION_JAIL_POOL_SIZE=0: a fresh jail per call.
        self.FUNCTION_JAIL_MAX_CALLS = int(env.get("FUNCTION_JAIL_MAX_CALLS") or 100)
        self.FUNCTION_JAIL_MAX_AGE_SECONDS = float(env.get("FUNCTION_JAIL_MAX_AGE_SECONDS") or 60)
        self.FUNCTION_JAIL_POOL_SIZE = int(env.get("FUNCTION_JAIL_POOL_SIZE") or 4)
        self.UPLOAD_MAX_BYTES = int(env.get("UPLOAD_MAX_BYTES") or 1024**3)
        # Input limits (app/http.py): every body is capped at MAX_BODY_BYTES except the upload routes, which take
        # UPLOAD_MAX_BYTES plus room for the form fields; JSON nested deeper than MAX_JSON_DEPTH is a 400.
        self.MAX_BODY_BYTES = int(env.get("MAX_BODY_BYTES") or 1024 * 1024)
        self.MAX_CONTENT_LENGTH = self.MAX_BODY_BYTES
        self.MAX_JSON_DEPTH = int(env.get("MAX_JSON_DEPTH") or 100)
        # Login and sign-up throttling (app/auth/throttle.py), requests a minute per client address / per account.
        self.LOGIN_RATE_LIMIT_PER_IP = int(env.get("LOGIN_RATE_LIMIT_PER_IP") or 30)
        self.LOGIN_RATE_LIMIT_PER_ACCOUNT = int(env.get("LOGIN_RATE_LIMIT_PER_ACCOUNT") or 10)
        self.SIGNUP_RATE_LIMIT_PER_IP = int(env.get("SIGNUP_RATE_LIMIT_PER_IP") or 10)
        # How many reverse proxies in front set X-Forwarded-For (0: use the peer address, which a client can't forge).
        self.TRUSTED_PROXY_COUNT = int(env.get("TRUSTED_PROXY_COUNT") or 0)
        self.AUDIT_RETENTION_DAYS = int(env.get("AUDIT_RETENTION_DAYS") or 90)
        if self.AUDIT_RETENTION_DAYS < 1:
            raise RuntimeError("AUDIT_RETENTION_DAYS must be at least 1")
        # Endpoints with `log: "payload"` keep the request and the answer, each clipped at this many bytes of JSON.
        self.AUDIT_PAYLOAD_MAX_BYTES = int(env.get("AUDIT_PAYLOAD_MAX_BYTES") or 8192)
        if self.AUDIT_PAYLOAD_MAX_BYTES < 64:
            raise RuntimeError("AUDIT_PAYLOAD_MAX_BYTES must be at least 64")
        # Refused API keys: one record per client address, key prefix, route and reason per minute (the rest are
        # counted in it), and at most this many records per minute for the whole installation (the rest are counted
        # in one `suppressed` record), so a flood of bad keys cannot fill the database.
        self.AUTH_FAILURE_MAX_RECORDS_PER_MINUTE = int(env.get("AUTH_FAILURE_MAX_RECORDS_PER_MINUTE") or 120)
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
    # The suite signs up and logs in over a thousand times: 64 MiB and 3 passes each would cost minutes of CPU.
    PASSWORD_HASH_PROFILE = "cheapest"

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
