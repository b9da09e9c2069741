"""Named mutants of the code behind the README's promises, and the tests that must kill each one.

`make mutants` (or `python -m tests.mutants [NAME ...]`) copies the working tree to a temporary folder, checks that
the named tests pass there unchanged, then applies one mutant at a time and runs its tests: a mutant the tests
still pass on has *survived*, and the promise it breaks has no test that can fail. The report is printed and
written to bench/results/mutants.json; the exit status is non-zero when a mutant survives or no longer applies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "bench" / "results" / "mutants.json"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (original text, mutated text); each original occurs exactly once
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "served queries may write (the fast path's read-only connections made writable)",
        "app/warehouse/readonly.py",
        (
            ('dbapi_conn.execute("PRAGMA query_only = ON")', 'dbapi_conn.execute("PRAGMA query_only = OFF")'),
            ('cursor.execute(f"BEGIN READ ONLY; ', 'cursor.execute(f"BEGIN READ WRITE; '),
        ),
        ("tests/query/test_readonly_deadline.py::test_a_write_through_the_fast_path_is_refused",),
    ),
    Mutant(
        "queries through execute_readonly may write (its read-only mode removed)",
        "app/warehouse/engine.py",
        (
            ('raw.execute("PRAGMA query_only = ON")', 'raw.execute("PRAGMA query_only = OFF")'),
            ('"SET TRANSACTION READ ONLY; SET LOCAL', '"SET TRANSACTION READ WRITE; SET LOCAL'),
        ),
        ("tests/query/test_readonly_deadline.py::test_a_write_through_the_served_path_is_refused",),
    ),
    Mutant(
        "served queries have no deadline (statement timeout removed)",
        "app/warehouse/readonly.py",
        (
            (
                "raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)",
                "raw.set_progress_handler(None, 0)",
            ),
            ("SET LOCAL statement_timeout = {int(timeout_s * 1000)};", "SET LOCAL statement_timeout = 0;"),
        ),
        (
            "tests/query/test_readonly_deadline.py::test_a_slow_served_query_is_stopped_at_its_deadline",
            "tests/query/test_readonly_deadline.py::test_the_fast_path_stops_a_recursive_query_at_its_deadline",
        ),
    ),
    Mutant(
        "a model task past its deadline still runs (expires= and revoke() removed)",
        "tasks/calls.py",
        (
            ("            expires=queue_left + timeout_s,\n", ""),
            ("            task.app.control.revoke(task_id)\n", "            pass\n"),
        ),
        ("tests/serving/test_worker_promises.py::test_a_model_task_past_its_deadline_never_runs_on_the_worker",),
    ),
    Mutant(
        "a service may score any project's model",
        "app/publishing/asset_config.py",
        (
            (
                "if project is None or model is None or model.project_id != project.id:",
                "if project is None or model is None:",
            ),
        ),
        ("tests/publishing/test_config_scope.py",),
    ),
    Mutant(
        "a service may read any project's dataset of its organization",
        "app/datasets/catalog.py",
        (("            stmt = stmt.where(Dataset.project_id == project.id)\n", "            pass\n"),),
        ("tests/publishing/test_config_scope.py",),
    ),
    Mutant(
        "a revocation is seen only by the server that made it (the serving generation not bumped)",
        "app/keys/service.py",
        (
            (
                "    key.revoked_at = key.revoked_at or utcnow()\n    db.session.commit()\n    bump_serving_generation()\n",
                "    key.revoked_at = key.revoked_at or utcnow()\n    db.session.commit()\n",
            ),
        ),
        (
            "tests/serving/test_worker_promises.py::"
            "test_a_revocation_on_one_server_is_effective_on_the_next_call_on_another",
        ),
    ),
    Mutant(
        "concurrent calls for one model are scored one task each (group scoring bypassed)",
        "app/serving/dispatch.py",
        (
            (
                "scored = scorer.score(group, rows, send, timeout)",
                "scored = send(rows, timeout)",
            ),
        ),
        (
            "tests/serving/test_worker_promises.py::"
            "test_concurrent_http_calls_for_one_model_reach_the_worker_as_fewer_tasks",
        ),
    ),
    Mutant(
        "a caller does not watch the worker running its call (waits out its deadline when it dies)",
        "tasks/calls.py",
        (("    if not watch_node:\n", "    if True:\n"),),
        ("tests/ops/test_faults.py::test_a_predict_worker_killed_under_load_costs_only_its_calls",),
    ),
    Mutant(
        "two deliveries of a training run train at once (the run lock removed)",
        "app/registry/run_lock.py",
        (("    while not client.set(key, token, nx=True, ex=LOCK_TTL_S):\n", "    while False:\n"),),
        ("tests/ops/test_faults.py::test_a_run_delivered_twice_trains_once",),
    ),
    Mutant(
        "a dead worker's heartbeat is trusted for an hour",
        "tasks/heartbeat.py",
        (("TTL_SECONDS = 6\n", "TTL_SECONDS = 3600\n"),),
        (
            "tests/serving/test_worker_promises.py::"
            "test_a_killed_worker_turns_readyz_and_model_calls_into_503_within_the_heartbeat_window",
        ),
    ),
)


def _copy_tree(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def _run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode not in (0, 1):  # not a plain test failure: show what went wrong
        return proc.returncode, "\n".join(lines[-30:])
    failure = next((line for line in lines if line.startswith(("FAILED", "ERROR"))), lines[-1] if lines else "")
    return proc.returncode, failure


def _apply(tree: Path, mutant: Mutant) -> str | None:
    """Write the mutated file; the reason it cannot be applied, or None."""
    path = tree / mutant.path
    text = (ROOT / mutant.path).read_text()
    for original, mutated in mutant.edits:
        if text.count(original) != 1:
            return f"{original.strip()!r} occurs {text.count(original)} times in {mutant.path}"
        text = text.replace(original, mutated)
    path.write_text(text)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only mutants whose name contains one of these")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or any(n in m.name for n in args.names)]
    results = []
    with tempfile.TemporaryDirectory(prefix="apiary-mutants-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, failure = _run_tests(tree, every_test)
        if code != 0:
            print(f"the tests fail on the unmutated tree, nothing to measure:\n{failure}")
            return 2
        for mutant in chosen:
            started = time.monotonic()
            problem = _apply(tree, mutant)
            if problem:
                outcome, detail = "stale", problem
            else:
                code, detail = _run_tests(tree, mutant.tests)
                # Killed means a test failed on the mutant; an error in a fixture proves nothing either way.
                killed = code == 1 and detail.startswith("FAILED")
                outcome = "survived" if code == 0 else "killed" if killed else f"error (pytest exit {code})"
            shutil.copy2(ROOT / mutant.path, tree / mutant.path)
            results.append(
                {
                    "mutant": mutant.name,
                    "file": mutant.path,
                    "tests": list(mutant.tests),
                    "outcome": outcome,
                    "detail": detail,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
            print(f"{outcome:>9}  {mutant.name}\n           {detail}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"mutants": results}, indent=2) + "\n")
    survivors = [r for r in results if r["outcome"] != "killed"]
    print(f"{len(results) - len(survivors)} of {len(results)} mutants killed; report in {REPORT.relative_to(ROOT)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
