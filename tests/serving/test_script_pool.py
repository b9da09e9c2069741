"""The keyed call's Redis round trip on a `ScriptPool` (app/namespace.py): an idle connection is borrowed without
redis-py's per-command layers (the poll for unread data among them), so run_script must never give back a
connection that could hold a reply, and must recover from a connection the server closed."""

from __future__ import annotations

import pytest
import redis

from app.namespace import NamespacedRedis, ScriptPool, run_script


def _client(redis_url: str, **kwargs) -> NamespacedRedis:
    client = NamespacedRedis.from_url(redis_url, **kwargs)
    client.key_prefix = "scriptpool:"
    return client


def test_namespaced_clients_run_scripts_on_one_reused_connection(redis_url):
    client = _client(redis_url)
    assert isinstance(client.connection_pool, ScriptPool)
    echo = client.register_script("return ARGV[1]")
    for n in range(20):
        assert run_script(client, echo, ["k"], [str(n)]) == str(n).encode()
    pool = client.connection_pool
    assert len(pool._available_connections) == 1 and not pool._in_use_connections
    client.close()


def test_a_connection_the_server_closed_is_replaced_without_failing_the_call(redis_url, redis_client):
    """Borrowing skips redis-py's check of the idle connection; the closed one fails at its first read and
    run_script retries once on a fresh connection (the script never ran on the dead one)."""
    client = _client(redis_url)
    counter = client.register_script("return redis.call('INCR', KEYS[1])")
    assert run_script(client, counter, ["runs"], []) == 1
    conn = client.connection_pool._available_connections[0]
    redis_client.execute_command("CLIENT", "KILL", "ID", _id(conn))
    assert run_script(client, counter, ["runs"], []) == 2  # counted once: never sent twice
    assert redis_client.get("scriptpool:runs") == b"2"
    client.close()


def _id(conn: redis.Connection) -> int:
    conn.send_command("CLIENT", "ID")
    return conn.read_response()


class _Interrupted(BaseException):
    """Stands for anything that is not a Redis error (KeyboardInterrupt, a worker's timeout)."""


def test_an_interrupted_read_leaves_no_reply_behind_for_the_next_call(redis_url, monkeypatch):
    """A call interrupted between sending its script and reading the reply: the reply arrives on the connection
    later. The connection must be closed, not given back, or the next call would read the first one's answer."""
    client = _client(redis_url, max_connections=1)
    echo = client.register_script("return ARGV[1]")
    echo.sha = client.script_load(echo.script)
    conn = client.connection_pool._available_connections[0]
    real_read = type(conn).read_response

    def interrupted(self, *args, **kwargs):
        raise _Interrupted()

    monkeypatch.setattr(type(conn), "read_response", interrupted)
    with pytest.raises(_Interrupted):
        run_script(client, echo, ["k"], ["first"])
    monkeypatch.setattr(type(conn), "read_response", real_read)
    for n in range(5):
        assert run_script(client, echo, ["k"], [f"mine-{n}"]) == f"mine-{n}".encode()
    client.close()


def test_plain_redis_clients_still_run_scripts(redis_url):
    client = redis.Redis.from_url(redis_url)
    echo = client.register_script("return ARGV[1]")
    assert run_script(client, echo, ["k"], ["plain"]) == b"plain"
    client.close()
