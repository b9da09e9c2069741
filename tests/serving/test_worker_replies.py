"""Calls a request waits on are answered on a per-call reply list (tasks/replies.py), never through Celery's result
backend: nothing to subscribe to, nothing stored, nothing to forget; a lost pool process is still answered at once."""

from __future__ import annotations

import threading
import time

import redis
from billiard.exceptions import WorkerLostError

from tests.models.slow_estimator import SlowRegressor
from tests.models.test_scoring import insert_model, predict, publish_models


def test_a_model_call_is_answered_on_its_reply_list_and_leaves_nothing_behind(
    app, client, admin, project, live_worker, redis_url
):
    from celery.signals import before_task_publish

    model_id = insert_model(app, project["project_id"], SlowRegressor(seconds=0).fit([[0.0]], [0.0]))
    key = publish_models(client, admin, project["project_id"], {"fast": model_id})
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.psubscribe("*celery-task-meta-*")  # where Celery's result backend would publish a result
    listener.get_message(timeout=1)  # the psubscribe confirmation
    sent: list[str] = []

    def capture(sender=None, headers=None, **_kwargs):
        if sender == "tasks.predict.score":
            sent.append(headers["id"])

    before_task_publish.connect(capture)
    try:
        for _ in range(3):
            resp = predict(client, key, "fast", {"features": {"x": 1.0}})
            assert resp.status_code == 200, resp.get_json()
            assert resp.get_json()["predictions"] == [0.0]
    finally:
        before_task_publish.disconnect(capture)
    assert len(sent) == 3
    published: list[str] = []  # other tasks (an audit flush) may store results meanwhile: only ours count
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.2)
        if message and message["type"] == "pmessage":
            published.append(message["channel"].decode())
    listener.close()
    assert [c for c in published if any(task_id in c for task_id in sent)] == [], "a result went through the backend"
    raw = redis.Redis.from_url(redis_url)
    assert list(raw.scan_iter(match="*apiary:reply:*", count=1000)) == []  # each reply was popped by its waiter


def test_a_lost_pool_process_is_answered_by_the_workers_main_process(app):
    from tasks.predict import score
    from tasks.replies import REPLY_TTL_SECONDS, _reply_failure, reply_client, reply_key, wait_reply

    with app.app_context():
        client = reply_client(app.config["CELERY_RESULT_BACKEND"], app.config["APIARY_NAMESPACE"], socket_timeout=None)
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(wait_reply(client, "task-lost-1", 5)))
        waiter.start()
        time.sleep(0.1)
        started = time.monotonic()
        # What the worker's main process runs when a pool process dies mid-task: Celery's task_failure signal.
        _reply_failure(sender=score, task_id="task-lost-1", exception=WorkerLostError("killed"))
        waiter.join(timeout=5)
        assert got == [{"lost": True}] and time.monotonic() - started < 1
        # Nobody waits on this one: it goes away by itself.
        _reply_failure(sender=score, task_id="task-lost-2", exception=WorkerLostError("killed"))
        assert 0 < client.ttl(reply_key("task-lost-2")) <= REPLY_TTL_SECONDS


def test_a_task_not_sent_by_call_worker_pushes_no_reply(app):
    """Outside a call_worker call (no reply header: .delay(), a training run queued without waiting) a failing task
    leaves no reply list behind."""
    from tasks.predict import score
    from tasks.replies import _reply_failure, _reply_success, reply_client, reply_key

    with app.app_context():
        client = reply_client(app.config["CELERY_RESULT_BACKEND"], app.config["APIARY_NAMESPACE"], socket_timeout=None)
        _reply_failure(sender=score, task_id="task-plain-1", exception=ValueError("boom"))
        _reply_success(sender=score, result={"predictions": [1]})
        assert client.exists(reply_key("task-plain-1")) == 0
        assert list(client.scan_iter(match="apiary:reply:*")) == []
