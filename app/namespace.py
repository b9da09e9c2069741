"""The installation namespace: every Redis key, queue and channel of one installation starts with `<namespace>:`.

Two installations sharing a Redis (an explicit REDIS_URL) never see each other's work: Celery's queues, bindings,
broadcast channels and results carry the prefix through kombu's and the result backend's `global_keyprefix`, and
Apiary's own keys through `NamespacedRedis`, a client that prefixes the key arguments of every command it sends.
"""

from __future__ import annotations

import os

import redis
from redis.client import Pipeline


def key_prefix(namespace: str) -> str:
    return f"{namespace}:"


# Commands whose first argument is the only key.
_FIRST_KEY = frozenset(
    """GET SET SETEX PSETEX SETNX GETSET GETDEL GETEX APPEND STRLEN INCR INCRBY INCRBYFLOAT DECR DECRBY
    EXPIRE PEXPIRE EXPIREAT PEXPIREAT TTL PTTL PERSIST TYPE
    LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LTRIM LLEN LINDEX LREM LSET LPOS
    HSET HSETNX HGET HMGET HMSET HGETALL HDEL HLEN HKEYS HVALS HEXISTS HINCRBY HINCRBYFLOAT HSCAN
    SADD SREM SMEMBERS SISMEMBER SCARD SPOP SSCAN
    ZADD ZREM ZRANGE ZRANGEBYSCORE ZREVRANGE ZREVRANGEBYSCORE ZREMRANGEBYSCORE ZREMRANGEBYRANK ZCARD ZSCORE
    ZINCRBY ZCOUNT ZRANK ZSCAN""".split()
)
# Commands whose arguments are all keys.
_ALL_KEYS = frozenset("DEL UNLINK EXISTS MGET TOUCH WATCH".split())
# Commands that touch no key.
_NO_KEY = frozenset("PING ECHO INFO TIME MULTI EXEC DISCARD UNWATCH SCRIPT CLIENT COMMAND DBSIZE".split())


class _Namespacing:
    """Rewrites the key arguments of each command; refuses commands it cannot place in the namespace (FLUSHDB,
    or anything not listed), so a new use of Redis fails loudly in tests instead of leaking across installations."""

    key_prefix: str

    def _prefixed(self, key):
        if isinstance(key, bytes):
            return self.key_prefix.encode() + key
        return self.key_prefix + str(key)

    def _strip(self, key):
        prefix = self.key_prefix.encode() if isinstance(key, bytes) else self.key_prefix
        return key[len(prefix) :] if key.startswith(prefix) else key

    def _namespace_args(self, args: tuple) -> tuple:
        command, rest = args[0], list(args[1:])
        name = str(command).split(" ", 1)[0].upper()
        if name in _FIRST_KEY:
            rest[0] = self._prefixed(rest[0])
        elif name in _ALL_KEYS:
            rest = [self._prefixed(key) for key in rest]
        elif name in ("RENAME", "RENAMENX", "RPOPLPUSH", "LMOVE"):
            rest[0], rest[1] = self._prefixed(rest[0]), self._prefixed(rest[1])
        elif name in ("MSET", "MSETNX"):
            rest = [self._prefixed(v) if i % 2 == 0 else v for i, v in enumerate(rest)]
        elif name in ("BLPOP", "BRPOP"):
            rest = [self._prefixed(key) for key in rest[:-1]] + rest[-1:]
        elif name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"):
            numkeys = int(rest[1])
            rest[2 : 2 + numkeys] = [self._prefixed(key) for key in rest[2 : 2 + numkeys]]
        elif name in ("SCAN", "KEYS"):
            rest = self._namespace_pattern(name, rest)
        elif name not in _NO_KEY:
            raise redis.RedisError(f"{name} is not allowed on a namespaced Redis client")
        return (command, *rest)

    def _namespace_pattern(self, name: str, rest: list) -> list:
        if name == "KEYS":
            return [self._prefixed(rest[0])]
        for i, value in enumerate(rest[:-1]):
            if (value.decode() if isinstance(value, bytes) else str(value)).upper() == "MATCH":
                rest[i + 1] = self._prefixed(rest[i + 1])
                return rest
        return [*rest, "MATCH", self._prefixed("*")]  # an unfiltered SCAN still sees only this installation

    def execute_command(self, *args, **options):
        return super().execute_command(*self._namespace_args(args), **options)

    def parse_response(self, connection, command_name, **options):
        response = super().parse_response(connection, command_name, **options)
        name = str(command_name).upper()
        if name == "SCAN" and response:
            cursor, keys = response
            return cursor, [self._strip(key) for key in keys]
        if name == "KEYS" and response:
            return [self._strip(key) for key in response]
        if name in ("BLPOP", "BRPOP") and response:
            return self._strip(response[0]), response[1]
        return response


class NamespacedPipeline(_Namespacing, Pipeline):
    def __init__(self, *args, key_prefix: str, **kwargs):
        self.key_prefix = key_prefix
        super().__init__(*args, **kwargs)


class ScriptPool(redis.ConnectionPool):
    """redis-py's connection pool, plus a lean borrow for `run_script` (issue 15).

    `get_connection` and `release` cost a keyed call about a tenth of its CPU: observability counters, a release
    event, a deprecation wrapper, and a poll() of the idle connection for unread data (a system call that also lets
    the GIL go). `borrow` takes an idle connection under the pool's lock and `give_back` returns it, skipping
    those; a new connection, or the first borrow after a fork, goes the full way. Safe because `run_script` gives
    back no connection with a reply unread (it disconnects on any failure), and a connection the server closed
    fails at its first read, which `run_script` retries once on a fresh one (the script did not run)."""

    def borrow(self) -> redis.Connection:
        # os.getpid, not the kept id: sharing a socket with a forked parent must be impossible whatever forked us.
        if self.pid == os.getpid():
            with self._lock:
                if self._available_connections:
                    conn = self._available_connections.pop()
                    self._in_use_connections.add(conn)
                    return conn
        return self.get_connection()

    def give_back(self, conn: redis.Connection) -> None:
        with self._lock:
            if conn.pid == self.pid and conn in self._in_use_connections:
                self._in_use_connections.remove(conn)
                self._available_connections.append(conn)
                return
        self.release(conn)  # not ours any more (a reset pool, a fork): as redis-py does it


class NamespacedRedis(_Namespacing, redis.Redis):
    """A redis.Redis whose keys all live under `key_prefix` (callers name keys as if they had Redis alone), over a
    `ScriptPool`."""

    key_prefix = ""

    @classmethod
    def from_url(cls, url: str, **kwargs) -> NamespacedRedis:
        """`redis.Redis.from_url`, over a `ScriptPool`."""
        single_connection_client = kwargs.pop("single_connection_client", False)
        client = cls(
            connection_pool=ScriptPool.from_url(url, **kwargs), single_connection_client=single_connection_client
        )
        client.auto_close_connection_pool = True
        return client

    def pipeline(self, transaction=True, shard_hint=None) -> NamespacedPipeline:
        return NamespacedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint, key_prefix=self.key_prefix
        )


def namespaced_redis(url: str, namespace: str, **kwargs) -> NamespacedRedis:
    if not namespace:
        raise ValueError("a namespace is required")
    client = NamespacedRedis.from_url(url, **kwargs)
    client.key_prefix = key_prefix(namespace)
    return client


def run_script(client: redis.Redis, script, keys: list[str], args: list):
    """`script(keys=keys, args=args)` (a `register_script` of `client`) on one pooled connection.

    A keyed call's round trips, without redis-py's per-command layers (retry wrapper, observability hooks, response
    callbacks, key rewriting by command name), which cost about a tenth of a cached call's CPU. The keys get the
    client's namespace prefix as every other command's do; a server that lost the script is sent it again
    (NOSCRIPT); a dropped connection is retried once on a fresh one, but a timeout is not (the script may have run:
    a budget would be spent twice, a record written twice). Error replies raise as they do through the client."""
    prefix = getattr(client, "key_prefix", "")
    names = [prefix + key for key in keys]
    pool = client.connection_pool
    lean = isinstance(pool, ScriptPool)
    for attempt in range(3):
        conn = pool.borrow() if lean else pool.get_connection()
        try:
            conn.send_command("EVALSHA", script.sha, len(names), *names, *args)
            return conn.read_response()
        except redis.exceptions.NoScriptError:
            if attempt:
                raise
            # Loaded on this same connection: asking the pool for a second one while holding this one fails in a
            # bounded pool once every connection is held by a call that met NOSCRIPT (after a Redis restart).
            try:
                conn.send_command("SCRIPT", "LOAD", script.script)
                sha = conn.read_response()
            except BaseException:
                conn.disconnect()  # its reply may be unread
                raise
            script.sha = sha.decode() if isinstance(sha, bytes) else sha
        except redis.TimeoutError:
            conn.disconnect()  # the script may have run: never sent twice (a rate limit spent, a record written)
            raise
        except redis.ConnectionError:
            conn.disconnect()  # a pooled connection the server closed: the next one is fresh
            if attempt:
                raise
        except redis.ResponseError:
            raise  # an error reply, read whole: the connection is clean
        except BaseException:
            conn.disconnect()  # anything else may have left a reply unread: never handed to the next call
            raise
        finally:
            if lean:
                pool.give_back(conn)
            else:
                pool.release(conn)
    raise redis.RedisError("the script could not be run")
