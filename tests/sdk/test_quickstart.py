"""examples/quickstart.py runs end to end against a live server, and again (it is safe to repeat)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.sdk.conftest import ROOT, SDK_SRC


def _run(login, *args: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(SDK_SRC), "APIARY_URL": login.url, "APIARY_USERNAME": login.username,
           "APIARY_PASSWORD": login.password}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    return {label: json.loads(value) for label, value in lines.items()}


def test_quickstart_runs_end_to_end(login, live_worker):
    first = _run(login)
    assert first["dataset"]["rows"] == 200 and first["dataset"]["name"] == "marts.dim_customer"
    assert isinstance(first["model"]["model_id"], int) and "accuracy" in first["model"]["metrics"]
    assert first["service"]["asset_key"] == "sales-serving" and first["service"]["version"] == 1
    assert first["key prefix"].startswith("dk_")
    assert first["predictions"] == [1]
    assert [row["customer_key"] for row in first["customer 42"]] == [42]
    assert first["dry run"]["dry"] is True and first["dry run"]["predictions"] == [1]

    again = _run(login, "--project", "sales")
    assert again["project"]["id"] == first["project"]["id"]
    assert again["service"]["version"] == 2 and again["model"]["model_id"] != first["model"]["model_id"]
