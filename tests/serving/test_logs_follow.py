"""`flask services logs KEY --follow` tails a service's audit log: the last records, then each new one as it is
written (a cursor on the id), JSON lines with --json, a clean exit on Ctrl-C or after --max-polls."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from app.db import AuditLog
from app.extensions import db
from tests.serving.test_serving_data import service  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]


def _write(app, asset_id: int, *rows: tuple[str, int, float]) -> list[int]:
    with app.app_context():
        records = [
            AuditLog(
                created_at=datetime.now(UTC),
                asset_id=asset_id,
                endpoint_id=endpoint,
                method="GET",
                status=status,
                latency_ms=ms,
            )
            for endpoint, status, ms in rows
        ]
        db.session.add_all(records)
        db.session.commit()
        return [r.id for r in records]


def _lines(result) -> list[dict]:
    assert result.exit_code == 0, (result.output, result.exception)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_follow_prints_the_backlog_oldest_first_then_stops_after_max_polls(app, client, admin, service):  # noqa: F811
    runner = app.test_cli_runner()
    ids = _write(app, service, ("top", 200, 3.0), ("customer", 500, 9.0), ("top", 404, 4.5))
    base = ["services", "logs", "sales-serving", "-f", "--max-polls", "1", "--interval", "0.1"]
    every = _lines(runner.invoke(args=[*base, "--json"]))
    assert [e["id"] for e in every] == ids  # oldest first, like tail
    api = client.get(f"/api/api-services/{service}/logs", headers=admin.headers).get_json()["items"]
    assert every == list(reversed(api))  # the same records, the same fields, as the API
    top = _lines(runner.invoke(args=[*base, "--json", "--endpoint", "top"]))
    assert [(e["endpoint_id"], e["status"]) for e in top] == [("top", 200), ("top", 404)]
    assert [e["id"] for e in _lines(runner.invoke(args=[*base, "--json", "--limit", "1"]))] == ids[-1:]
    assert [e["status"] for e in _lines(runner.invoke(args=[*base, "--json", "--errors-only"]))] == [500, 404]

    text = runner.invoke(args=base)
    assert text.exit_code == 0, text.output
    header, *rows = text.stdout.splitlines()
    assert header.startswith("created_at\tendpoint") and len(rows) == 3
    assert rows[1].split("\t")[1:] == [
        "customer",
        "-",
        "GET",
        "500",
        "9.0",
        "-",
        "-",
    ]  # last: the version (none recorded)


def test_follow_refuses_options_that_do_not_fit(app, service):  # noqa: F811
    runner = app.test_cli_runner()
    for args, word in (
        (["-f", "--until", "2026-01-01T00:00:00"], "--until"),
        (["-f", "--offset", "5"], "--offset"),
        (["-f", "--interval", "0"], "--interval"),
        (["-f", "--interval", "soon"], "--interval"),
        (["--max-polls", "2"], "--follow"),
        (["-f", "--max-polls", "0"], "--max-polls"),
        (["-f", "--since", "yesterday"], "since"),
    ):
        result = runner.invoke(args=["services", "logs", "sales-serving", *args])
        assert result.exit_code != 0, args
        assert word in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


def _next_line(lines: queue.Queue, timeout: float = 20) -> dict:
    return json.loads(lines.get(timeout=timeout))


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action in the command, as in a terminal: a suite started in the background (`make test &`,
    nohup) runs with SIGINT ignored, every process it starts inherits that, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_follow_in_a_terminal_sees_new_records_and_exits_cleanly_on_ctrl_c(app, test_env, service):  # noqa: F811
    old = _write(app, service, ("top", 200, 1.0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "services", "logs", "sales-serving", "-f", "--json"]
        + ["--interval", "0.2", "--limit", "1"],
        cwd=ROOT,
        env={**os.environ, **test_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    try:
        assert _next_line(lines)["id"] == old[0]  # the backlog
        first = _write(app, service, ("top", 200, 2.0), ("customer", 503, 7.5))
        _write(app, service + 1000, ("top", 200, 1.0))  # another service's record: never shown
        got = [_next_line(lines), _next_line(lines)]
        assert [g["id"] for g in got] == first and got[1]["status"] == 503
        second = _write(app, service, ("top", 429, 0.2))
        assert _next_line(lines)["id"] == second[0]
        time.sleep(0.6)  # a few empty polls print nothing
        assert lines.empty()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
