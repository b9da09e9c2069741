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
    relaxed = load_config("production", {**env, "SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40,
                                         "SESSION_COOKIE_SECURE": "false"})  # fmt: skip
    assert relaxed.SESSION_COOKIE_SECURE is False


def test_development_keeps_the_cookie_usable_over_plain_http(tmp_path):
    config = load_config("development", {"APIARY_VAR_DIR": str(tmp_path)})
    assert config.SESSION_COOKIE_SECURE is False
    assert config.REGISTER_REQUIRES_GRANT is False
    assert load_config(
        "development", {"APIARY_VAR_DIR": str(tmp_path), "REGISTER_REQUIRES_GRANT": "1"}
    ).REGISTER_REQUIRES_GRANT
    assert (tmp_path / "secret_key").read_text() == config.SECRET_KEY


def test_unknown_config_name_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="APP_CONFIG must be one of"):
        load_config("staging", {"APIARY_VAR_DIR": str(tmp_path)})
