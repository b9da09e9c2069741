"""Workers announce the queues they consume in Redis every few seconds, so the web process knows at once
(one GET, no broadcast) whether a predict or functions call could run at all."""

from __future__ import annotations

import logging
import threading

import redis
from celery.signals import worker_ready, worker_shutdown

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "apiary:queue_alive:{queue}"
INTERVAL_SECONDS = 2
TTL_SECONDS = 6
_stop = threading.Event()


def _beat(sender) -> None:
    app = sender.app
    client = redis.Redis.from_url(app.conf.broker_url, socket_connect_timeout=1, socket_timeout=2)
    queues = [q.name for q in sender.task_consumer.queues] if sender.task_consumer else []
    while not _stop.is_set():
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                pipe.set(HEARTBEAT_KEY.format(queue=queue), sender.hostname, ex=TTL_SECONDS)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("worker heartbeat failed: %s", exc)
        _stop.wait(INTERVAL_SECONDS)


@worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs) -> None:
    threading.Thread(target=_beat, args=(sender,), name="apiary-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(**_kwargs) -> None:
    _stop.set()
