"""kombu's Redis transport, keeping one redis-py client per channel for the commands it sends outside its polling
loop (publishing above all): kombu builds a new client for every message it publishes (`Channel.conn_or_acquire`),
and a client's construction costs about a tenth of a model call's web CPU (issue 15). The client shares the
channel's connection pool, as the ones kombu builds do; it goes with its channel."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property

# Broker URL schemes this transport serves (the ones kombu's own Redis transport parses); any other scheme keeps the
# transport kombu picks for it.
SCHEMES = ("redis", "rediss", "socket")


class Channel(kombu_redis.Channel):
    @cached_property
    def _kept_client(self):
        return self._create_client()

    @contextmanager
    def conn_or_acquire(self, client=None) -> Iterator:
        yield client or self._kept_client


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """This transport's import path for a Redis broker URL, else None (kombu chooses by the URL's scheme)."""
    scheme = broker_url.split("://", 1)[0].lower() if "://" in broker_url else ""
    return f"{__name__}:Transport" if scheme in SCHEMES else None
