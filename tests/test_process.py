"""The kept process id (app/process.py) and the request ids' generator (app/__init__.py): both must be renewed in a
forked child, as gunicorn forks its workers from one master; and request ids must reveal nothing of other state."""

from __future__ import annotations

import os
import random

from app.process import current_pid


def _in_child(work) -> str:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanups
        try:
            os.write(write, str(work()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


def test_the_kept_process_id_is_renewed_in_a_forked_child():
    assert current_pid() == os.getpid()
    child = _in_child(lambda: (current_pid(), os.getpid()))
    kept, real = child.strip("()").split(", ")
    assert kept == real != str(os.getpid())


def test_a_forked_child_draws_other_request_ids_than_its_parent():
    """Request ids come from a generator (no system call); two workers forked from one master must not draw the
    same ones: the generator is reseeded in a forked child."""
    from app import new_request_id

    child = _in_child(new_request_id)
    assert child != new_request_id()


def test_request_ids_reveal_nothing_of_the_generator_that_picks_routed_versions(client):
    """Callers see every request id. Drawn from the module-level `random`, about 160 of them would let a caller
    rebuild its state and predict which version weighted routing picks next on that worker: a way to choose a
    version without `can_force_version`. Request ids come from a generator of their own."""
    random.seed(15)
    before = random.getstate()
    for _ in range(3):
        assert client.get("/healthz").headers["X-Request-Id"]
    assert random.getstate() == before
