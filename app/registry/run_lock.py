"""One training run runs on one worker at a time: a lock in Redis that its holder keeps alive while it trains, so
a redelivered task (its first worker died) waits for the dead holder's lock to lapse instead of training alongside."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import redis

from app.extensions import redis_store

log = logging.getLogger(__name__)

LOCK_KEY = "apiary:train:lock:{run_id}"
RETRIES_KEY = "apiary:train:retries:{run_id}"
LOCK_TTL_S = 10  # a dead holder's lock lapses this long after its last refresh
LOCK_REFRESH_S = 3
RETRIES_TTL_S = 86400
POLL_S = 0.5


@contextlib.contextmanager
def run_lock(run_id: int) -> Iterator[None]:
    """Hold run `run_id`'s lock for the block, waiting while another live holder has it."""
    client = redis_store.get()
    key, token = LOCK_KEY.format(run_id=run_id), uuid.uuid4().hex.encode()
    waited = False
    while not client.set(key, token, nx=True, ex=LOCK_TTL_S):
        if not waited:
            log.info("training run %s: another worker holds it; waiting for its lock", run_id)
            waited = True
        time.sleep(POLL_S)
    stop = threading.Event()
    keeper = threading.Thread(target=_keep, args=(client, key, token, stop), name=f"run-lock-{run_id}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=LOCK_REFRESH_S)
        with contextlib.suppress(redis.RedisError):  # not released: it lapses within LOCK_TTL_S
            if client.get(key) == token:
                client.delete(key)


def _keep(client, key: str, token: bytes, stop: threading.Event) -> None:
    while not stop.wait(LOCK_REFRESH_S):
        try:
            if client.get(key) != token:
                log.warning("lost the training lock %s", key)
                return
            client.expire(key, LOCK_TTL_S)
        except redis.RedisError as exc:  # Redis away for a moment: try again at the next refresh
            log.warning("could not refresh the training lock %s: %s", key, exc)


def count_retry(run_id: int) -> int:
    """How many times run `run_id` has been taken over from a worker that died, this one included."""
    client = redis_store.get()
    key = RETRIES_KEY.format(run_id=run_id)
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, RETRIES_TTL_S)
    return int(pipe.execute()[0])
