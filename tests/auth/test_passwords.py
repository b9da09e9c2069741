"""Password hashes: every deployed environment hashes with RFC 9106's low-memory Argon2id profile; only the test
suite's config picks the cheapest one, and no environment variable can."""

import pytest
from flask import Flask
from sqlalchemy import select

from app.auth.passwords import hash_password, verify_password
from config import ProductionConfig, load_config

PASSWORD = "correct horse battery staple"


def _environ(tmp_path, **extra):
    return {
        "APIARY_VAR_DIR": str(tmp_path),
        "APIARY_USE_RUN_FILE": "0",
        "SECRET_KEY": "s",
        "JWT_SECRET_KEY": "j",
    } | extra


def _app(config_name, tmp_path) -> Flask:
    application = Flask(__name__)
    application.config.from_object(load_config(config_name, _environ(tmp_path)))
    return application


@pytest.mark.parametrize("config_name", ["development", "production"])
def test_deployed_environments_hash_with_rfc_9106_low_memory(config_name, tmp_path):
    with _app(config_name, tmp_path).app_context():
        hashed = hash_password(PASSWORD)
        assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert verify_password(hashed, PASSWORD)
        assert not verify_password(hashed, PASSWORD.upper())
        # An unknown user is checked against a dummy hash, whose own password does not log anyone in.
        assert not verify_password(None, "apiary-dummy-password")


def test_a_hash_verifies_whichever_profile_made_it(tmp_path):
    with _app("development", tmp_path).app_context():
        strong = hash_password("strong one 1")
    with _app("testing", tmp_path).app_context():
        cheap = hash_password("cheap one 2")
        assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
        assert verify_password(strong, "strong one 1") and not verify_password(strong, "cheap one 2")
    with _app("production", tmp_path).app_context():
        assert verify_password(cheap, "cheap one 2") and not verify_password(cheap, "strong one 1")


def test_no_environment_variable_weakens_the_hash(tmp_path):
    config = load_config("production", _environ(tmp_path, PASSWORD_HASH_PROFILE="cheapest"))
    assert config.PASSWORD_HASH_PROFILE == "rfc_9106_low_memory"


def test_sign_up_over_http_stores_a_hash_of_the_app_s_profile_and_either_logs_in_on_the_other(app, client):
    """The profile reaches the real path: a sign-up through an app configured as every deployment is stores an
    RFC 9106 hash; the suite's app stores a cheap one; each account logs in through the other app too."""
    from app import create_app
    from app.db import User
    from app.extensions import db
    from tests.conftest import log_in, sign_up

    deployed = create_app("testing", {"PASSWORD_HASH_PROFILE": ProductionConfig.PASSWORD_HASH_PROFILE})
    strong = sign_up(deployed.test_client())
    cheap = sign_up(client)
    with app.app_context():
        ids = [strong.user_id, cheap.user_id]
        stored = dict(db.session.execute(select(User.id, User.password_hash).where(User.id.in_(ids))).all())
    assert stored[strong.user_id].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert stored[cheap.user_id].startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert log_in(client, strong.username, strong.password)
    assert log_in(deployed.test_client(), cheap.username, cheap.password)
