"""Fixtures of the operations tests: a cluster of hosts on a Redis of their own, and an app pointed at it."""

from __future__ import annotations

import gc

import pytest

from tests.ops.cluster import Cluster


@pytest.fixture()
def cluster(app, test_env, tmp_path):
    running = Cluster(app, test_env, tmp_path)
    try:
        yield running
    finally:
        gc.collect()  # Celery results unsubscribe when collected: while the cluster's Redis still answers
        running.close()


@pytest.fixture()
def ops_app(app, cluster):
    """The app as an operator's `flask` command on one of the hosts sees it: the cluster's Redis."""
    from app import create_app

    url = cluster.redis_url
    return create_app("testing", {"REDIS_URL": url, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url})
