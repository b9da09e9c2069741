"""The broker transport: kombu's Redis transport, keeping one client per channel for what it publishes."""

from __future__ import annotations

import redis

from tasks.broker import Transport, transport_for


def test_redis_broker_urls_get_the_transport_and_others_keep_kombus():
    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "REDIS://h/0", "socket:///tmp/r.sock"):
        assert transport_for(url) == "tasks.broker:Transport", url
    for url in ("sentinel://h:26379", "amqp://guest@h//", "memory://", "filesystem://", ""):
        assert transport_for(url) is None, url


def test_publishing_builds_no_redis_client_per_message(app, monkeypatch):
    """kombu's own transport constructs a redis-py client for every message it publishes."""
    celery = app.extensions["celery"]
    built = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    with celery.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
        with celery.producer_or_acquire(producer=None) as producer:
            producer.publish({"n": 0}, routing_key="apiary_broker_test", declare=[])  # the channel's client built
            monkeypatch.setattr(redis.Redis, "__init__", counting)
            for n in range(1, 6):
                producer.publish({"n": n}, routing_key="apiary_broker_test", declare=[])
            monkeypatch.undo()
            channel = producer.channel
            with channel.conn_or_acquire() as client:
                waiting = client.llen("apiary_broker_test")
                client.delete("apiary_broker_test")
    assert built == []
    assert waiting == 6  # every message reached its queue (under the installation's prefix)
