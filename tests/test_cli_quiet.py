"""A `flask` command prints what it was asked for, not Alembic's plugin announcements."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_flask_commands_do_not_print_alembic_plugin_info(test_env, tmp_path):
    env = {**os.environ, **test_env, "LOG_LEVEL": "INFO", "APIARY_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "alembic.runtime.plugins" not in done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("Endpoint")
