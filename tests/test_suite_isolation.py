"""The suite's own isolation: a test that makes another app leaves nothing of it to the next test."""

from __future__ import annotations


def test_a_test_makes_an_app_on_a_dead_redis_and_leaves_it_current(app):
    import celery

    from app import create_app

    dead = create_app("testing", {"REDIS_URL": "redis://127.0.0.1:1/0", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})
    # What create_app does; this test does not undo it.
    assert celery.current_app._get_current_object() is dead.extensions["celery"]


def test_the_next_test_sends_through_the_suite_s_celery_app(app):
    import celery

    assert celery.current_app._get_current_object() is app.extensions["celery"]
    assert celery.current_app.conf.broker_url == app.config["CELERY_BROKER_URL"]
