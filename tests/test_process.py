"""The kept process id (app/process.py) and the request ids drawn from `random`: both must be renewed in a forked
child, as gunicorn forks its workers from one master."""

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
    """Request ids come from `random.getrandbits` (no system call); two workers forked from one master must not
    draw the same ones, which `random` reseeding itself in a forked child guarantees."""
    child = _in_child(lambda: random.getrandbits(128))
    assert int(child) != random.getrandbits(128)
