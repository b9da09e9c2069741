"""Drive one bounded load with hey and read req/s, p50 and p99 off its summary."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass

# Each request waits at most this long (hey's -t): past a model's 10 s worker deadline and a function's 10 s wait.
REQUEST_TIMEOUT_S = 30
# After the time budget hey gets SIGINT (it stops and reports); past this grace it is killed.
STOP_GRACE_S = 30


@dataclass(frozen=True)
class Figures:
    """One measurement: how many requests finished, how fast, and their latency."""

    clients: int
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None  # None when hey had too few answers to state a 99th percentile
    mean_ms: float
    first_error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


_TOTAL = re.compile(r"^\s*Total:\s+([0-9.]+) secs", re.M)
_AVERAGE = re.compile(r"^\s*Average:\s+([0-9.]+) secs", re.M)
_PERCENTILE = re.compile(r"^\s*(\d+)% in ([0-9.]+) secs", re.M)
_STATUS = re.compile(r"^\s*\[(\d+)\]\s+(\d+) responses", re.M)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.+)$", re.M)


def figures_from_hey(text: str, clients: int) -> Figures:
    """Read hey's summary: total time, latency percentiles, status codes and the error distribution.

    Only 2xx answers count as requests; any other status, and any connection error or timeout, is an error. The
    rate is 2xx answers over hey's total time. Percentiles are hey's (over every answer that came back).
    """
    total = _TOTAL.search(text)
    if total is None:
        raise ValueError(f"not a hey summary: {text[:200]!r}")
    seconds = float(total.group(1))
    statuses = {int(code): int(count) for code, count in _STATUS.findall(text)}
    ok = sum(count for code, count in statuses.items() if 200 <= code < 300)
    errors = sum(count for code, count in statuses.items() if not 200 <= code < 300)
    first_error = next((f"HTTP {code}" for code in sorted(statuses) if not 200 <= code < 300), None)
    _, _, error_part = text.partition("Error distribution:")
    for count, message in _ERROR.findall(error_part):
        errors += int(count)
        first_error = first_error or message.strip()[:300]
    percentiles = {int(p): float(v) * 1000 for p, v in _PERCENTILE.findall(text)}
    average = _AVERAGE.search(text)
    return Figures(
        clients=clients,
        requests=ok,
        errors=errors,
        seconds=round(seconds, 2),
        requests_per_s=round(ok / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentiles[50], 1) if 50 in percentiles else None,
        p99_ms=round(percentiles[99], 1) if 99 in percentiles else None,
        mean_ms=round(float(average.group(1)) * 1000, 1) if average else 0.0,
        first_error=first_error,
    )


@dataclass(frozen=True)
class Target:
    """One HTTP call to repeat: the URL on the loopback, its method, body and headers."""

    url: str
    method: str = "GET"
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def hey_command(target: Target, clients: int, max_requests: int, body_file: str | None) -> list[str]:
    if not target.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"the benchmark only loads the loopback, not {target.url}")
    cmd = [
        "hey",
        "-n",
        str(max(max_requests, clients)),
        "-c",
        str(clients),
        "-t",
        str(REQUEST_TIMEOUT_S),
        "-m",
        target.method,
    ]
    for name, value in target.headers:
        cmd += ["-H", f"{name}: {value}"]
    if body_file is not None:
        cmd += ["-D", body_file, "-T", "application/json"]
    return [*cmd, target.url]


def run_hey(target: Target, clients: int, seconds: float, max_requests: int) -> Figures:
    """At most `max_requests` requests from `clients` keep-alive connections, stopped after `seconds`."""
    if shutil.which("hey") is None:
        raise RuntimeError("hey is missing: `make bench-deps` installs it (Debian: apt-get install hey)")
    with tempfile.TemporaryDirectory(prefix="apiary-hey-") as tmp:
        body_file = None
        if target.body is not None:
            body_file = os.path.join(tmp, "body.json")
            with open(body_file, "w", encoding="utf-8") as fh:
                fh.write(target.body)
        out_path = os.path.join(tmp, "out.txt")
        with open(out_path, "wb") as out:
            # Its own session: a Ctrl-C reaches the benchmark, which then stops hey itself.
            proc = subprocess.Popen(
                hey_command(target, clients, max_requests, body_file),
                stdout=out,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            try:
                try:
                    _out, err = proc.communicate(timeout=seconds)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGINT)  # hey stops sending, waits for what is in flight, reports
                    _out, err = proc.communicate(timeout=REQUEST_TIMEOUT_S + STOP_GRACE_S)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if proc.returncode not in (0, -signal.SIGINT, 130):
            raise RuntimeError(f"hey failed ({proc.returncode}): {err.decode(errors='replace')[:500]}")
        with open(out_path, encoding="utf-8") as fh:
            return figures_from_hey(fh.read(), clients)
