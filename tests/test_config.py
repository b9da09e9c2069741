"""Config classes: every setting comes from the environment, with safe production defaults."""

import pytest

from config import load_config


def test_production_requires_secrets_and_secures_the_session_cookie(tmp_path):
    env = {"APIARY_VAR_DIR": str(tmp_path)}
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        load_config("production", env)
    config = load_config("production", {**env, "SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40})
    assert config.SESSION_COOKIE_SECURE is True
    assert config.REGISTER_REQUIRES_GRANT is True
    relaxed = load_config(
        "production", {**env, "SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40, "SESSION_COOKIE_SECURE": "false"}
    )
    assert relaxed.SESSION_COOKIE_SECURE is False


def test_development_keeps_the_cookie_usable_over_plain_http(tmp_path):
    config = load_config("development", {"APIARY_VAR_DIR": str(tmp_path)})
    assert config.SESSION_COOKIE_SECURE is False
    # Schema grants are required in every environment (issue 12): self-signed-up organizations exist in all of them.
    assert config.REGISTER_REQUIRES_GRANT is True
    assert not load_config(
        "development", {"APIARY_VAR_DIR": str(tmp_path), "REGISTER_REQUIRES_GRANT": "false"}
    ).REGISTER_REQUIRES_GRANT
    assert config.UPLOAD_SCHEMAS == ("uploads", "marts") and config.UPLOAD_MAX_COLUMNS == 2000
    custom = load_config(
        "development",
        {"APIARY_VAR_DIR": str(tmp_path), "UPLOAD_SCHEMAS": "uploads, staging", "UPLOAD_MAX_COLUMNS": "300"},
    )
    assert custom.UPLOAD_SCHEMAS == ("uploads", "staging") and custom.UPLOAD_MAX_COLUMNS == 300
    assert (tmp_path / "secret_key").read_text() == config.SECRET_KEY


def test_unknown_config_name_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="APP_CONFIG must be one of"):
        load_config("staging", {"APIARY_VAR_DIR": str(tmp_path)})
