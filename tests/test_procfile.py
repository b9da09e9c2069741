"""The Procfile: what `make run` starts, read the way any Procfile runner reads it; APIARY_WORKERS checked."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from app.procfile import ProcfileError, expand, load_processes, parse_procfile, parse_worker_spec

ROOT = Path(__file__).resolve().parent.parent


def test_the_procfile_has_web_beat_and_a_worker_per_queue_group():
    processes = load_processes(ROOT / "Procfile")
    assert [p.name for p in processes] == ["web", "beat", "serving", "background"]
    assert [p.is_worker for p in processes] == [False, False, True, True]
    assert processes[1].is_beat
    consumed = []
    for worker in processes[2:]:
        argv = worker.argv({})
        consumed += argv[argv.index("-Q") + 1].split(",")
        assert argv[argv.index("-n") + 1] == f"{worker.name}@%h"  # each worker its own node name
    assert sorted(consumed) == ["default", "functions", "predict", "train"]


@pytest.mark.parametrize(
    "env",
    [{}, {"PORT": "5100", "HOST": "0.0.0.0", "WEB_CONCURRENCY": "4", "APIARY_VAR_DIR": "/srv/apiary/var"}],
)
def test_each_line_expands_as_a_shell_expands_it(env):
    """honcho and foreman hand each command to /bin/sh: our expansion must give the same words."""
    for process in load_processes(ROOT / "Procfile"):
        shell = subprocess.run(
            ["sh", "-c", f"for word in {process.command}; do printf '%s\\n' \"$word\"; done"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert process.argv(env) == shell, process.name


def test_expansion_forms():
    env = {"A": "1", "EMPTY": ""}
    assert expand("x $A ${A} ${B:-two} ${EMPTY:-dflt} ${A:-no} $B.", env) == "x 1 1 two dflt 1 ."


def test_apiary_workers_replaces_the_worker_lines():
    processes = load_processes(ROOT / "Procfile", "predict:2,train:1,functions+functions.billing:1,default:1")
    assert [p.name for p in processes] == [
        "web",
        "beat",
        "worker-predict",
        "worker-train",
        "worker-functions-functions.billing",
        "worker-default",
    ]
    argv = processes[4].argv({})
    assert argv[argv.index("-Q") + 1] == "functions,functions.billing"
    assert argv[argv.index("--concurrency") + 1] == "1"
    assert shlex.join(processes[2].argv({})).startswith("celery -A celery_worker worker -Q predict -n predict@%h")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("predict", "'predict' is not QUEUE:CONCURRENCY"),
        ("predict:", "'predict:' is not QUEUE:CONCURRENCY"),
        ("predict:2,,train:1", "'' is not QUEUE:CONCURRENCY"),
        ("predict:0", "the concurrency of 'predict' must be a whole number from 1 to 64, got '0'"),
        ("predict:65", "got '65'"),
        ("predict:1.5", "got '1.5'"),
        ("predict:2,predict:1", "the queue 'predict' is named twice"),
        ("celery:1", "unknown queue 'celery'"),
        ("predict;rm -rf /:1", "unknown queue 'predict;rm -rf /'"),
        ("predict.$(id):1", "unknown queue 'predict.$(id)'"),
    ],
)
def test_a_bad_apiary_workers_names_what_is_wrong(spec, message):
    with pytest.raises(ProcfileError) as err:
        parse_worker_spec(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_malformed_procfile_names_its_line():
    with pytest.raises(ProcfileError, match="line 2: expected `name: command`"):
        parse_procfile("web: gunicorn wsgi:app\nno command here\n")
    with pytest.raises(ProcfileError, match="'web' is used twice"):
        parse_procfile("web: a\nweb: b\n")
