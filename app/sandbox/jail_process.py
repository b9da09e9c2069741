"""One running jail: its bootstrap serves calls over length-prefixed frames, each under a deadline, an output cap,
and a watch on the whole jail's memory and CPU time; a call that breaks any of them kills the jail."""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import signal
import struct
import subprocess
import time
from dataclasses import dataclass

from app.sandbox.jail import JailLimits, prepared_jail
from app.sandbox.jail_memory import JailMemory

# Both ways: body length, call number (big-endian), then a JSON body. Same layout as child.FRAME.
FRAME = struct.Struct(">II")
READ_CHUNK = 65536
STDERR_KEEP = 8192
# The reply wraps the result in a small envelope; the bootstrap enforces the exact result limit itself.
ENVELOPE_BYTES = 4096
KILL_GRACE_S = 2.0
# How often the whole jail's memory and CPU time are added up while a call runs.
WATCH_S = 0.05


@dataclass
class CallOutcome:
    """What one call produced: a reply, or which bound ended it."""

    reply: dict | None = None
    timed_out: bool = False
    overflowed: bool = False
    memory_exceeded: bool = False
    cpu_exceeded: bool = False
    # The jail ended (or sent bytes that are no reply) before a whole reply arrived.
    ended: bool = False
    returncode: int | None = None
    # bwrap built the jail (it reported its init's pid); False means the sandbox itself failed to start.
    started: bool = False

    @property
    def succeeded(self) -> bool:
        return (
            self.reply is not None
            and self.reply.get("ok") is True
            and not (self.timed_out or self.overflowed or self.memory_exceeded or self.cpu_exceeded or self.ended)
        )


class JailProcess:
    """A bubblewrap jail whose bootstrap waits for calls; `kill()` ends it and returns once every process is gone."""

    def __init__(self, limits: JailLimits, python: str) -> None:
        self.limits = limits
        self.calls = 0
        self.started_at = time.monotonic()
        self.stderr = bytearray()
        self._info = bytearray()
        self._init_fd: int | None = None
        self._watch: JailMemory | None = None
        self._killed = False
        self._cpu_spent = 0.0
        info_read, info_write = os.pipe()
        try:
            with prepared_jail(limits, python, info_fd=info_write) as launch:
                # A new session makes bwrap a process-group leader we can kill as one; its pid namespace takes the
                # rest. bwrap's --die-with-parent ties the jail to the thread that starts it: the worker's main one.
                self.proc = subprocess.Popen(  # argv is built by jail.prepared_jail, never user input
                    launch.argv,
                    executable=launch.executable,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                    start_new_session=True,
                    pass_fds=(info_write, *launch.pass_fds),
                )
        except BaseException:
            os.close(info_read)
            raise
        finally:
            os.close(info_write)
        self._info_fd: int | None = info_read
        self._stderr_open = True
        for fd in (self.proc.stdin.fileno(), self.proc.stdout.fileno(), self.proc.stderr.fileno(), info_read):
            os.set_blocking(fd, False)

    @property
    def started(self) -> bool:
        return self._watch is not None

    def alive(self) -> bool:
        """The jail runs and its bootstrap waits for a call (one read in the jail's /proc)."""
        return self._running() and self._watch is not None and self._watch.bootstrap_alive()

    def settled(self) -> bool:
        """After a call: True when only its init and the waiting, single-threaded bootstrap are left in the jail.

        Its CPU time now is where the next call's CPU time starts counting (nothing of the handler runs between).
        """
        if not self._running() or self._watch is None:
            return False
        sample = self._watch.sample()
        if sample is None or not sample.idle:
            return False
        self._cpu_spent = sample.cpu_seconds
        return True

    def _running(self) -> bool:
        if self._killed or self._init_fd is None or self.proc.poll() is not None:
            return False
        return not select.select([self._init_fd], [], [], 0)[0]  # the init's pidfd turns readable when it exits

    def call(self, body: bytes, deadline: float) -> CallOutcome:
        """Send one call and wait for its reply until `deadline`; the caller kills the jail unless it succeeded."""
        self.calls += 1
        outcome = CallOutcome()
        frame = FRAME.pack(len(body), self.calls) + body
        # CPU time counts from the end of the previous call; a new jail's start-up counts against its first call.
        self._exchange(frame, deadline, self._cpu_spent, outcome)
        outcome.started = self.started
        if outcome.ended:
            self._ended(outcome, deadline)
        return outcome

    def _exchange(self, frame: bytes, deadline: float, baseline: float, outcome: CallOutcome) -> None:
        stdin_fd, stdout_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        max_reply = self.limits.max_output_bytes + ENVELOPE_BYTES
        max_memory = self.limits.memory_mb * 1024 * 1024
        reply = bytearray()
        sent = 0
        next_watch = time.monotonic() + WATCH_S
        with selectors.DefaultSelector() as selector:
            selector.register(stdin_fd, selectors.EVENT_WRITE)
            selector.register(stdout_fd, selectors.EVENT_READ)
            if self._stderr_open:
                selector.register(self.proc.stderr.fileno(), selectors.EVENT_READ)
            if self._info_fd is not None:
                selector.register(self._info_fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if now >= deadline:
                    outcome.timed_out = True
                    return
                if now >= next_watch and self._watch is not None:
                    sample = self._watch.sample()
                    if sample is not None and self._watch.exceeds(max_memory, sample):
                        outcome.memory_exceeded = True
                        return
                    if sample is not None and sample.cpu_seconds - baseline > self.limits.cpu_seconds:
                        outcome.cpu_exceeded = True
                        return
                if now >= next_watch:
                    next_watch = now + WATCH_S
                wait = min(deadline, next_watch) - now
                for key, _ in selector.select(max(0.0, wait)):
                    fd = key.fd
                    if fd == stdin_fd:
                        try:
                            sent += os.write(fd, frame[sent : sent + READ_CHUNK])
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            sent = len(frame)
                        if sent >= len(frame):
                            selector.unregister(fd)
                        continue
                    chunk = os.read(fd, READ_CHUNK)
                    if fd == self._info_fd:
                        self._read_info(chunk, selector)
                    elif fd != stdout_fd:
                        # Kept for the worker's log only; it may name host paths, so clients never see it.
                        self.stderr = (self.stderr + chunk)[-STDERR_KEEP:]
                        if not chunk:
                            selector.unregister(fd)
                            self._stderr_open = False
                    elif not chunk:
                        outcome.ended = True
                        return
                    else:
                        reply += chunk
                        if len(reply) > max_reply:
                            outcome.overflowed = True
                            return
                        if self._parse_reply(reply, outcome):
                            return

    def _parse_reply(self, data: bytearray, outcome: CallOutcome) -> bool:
        """True once a whole frame is in: `outcome.reply` is set, or `ended` when it is no reply to this call."""
        if len(data) < FRAME.size:
            return False
        size, number = FRAME.unpack_from(data)
        if len(data) < FRAME.size + size:
            return False  # a declared length past the cap is caught by the cap as the bytes arrive
        try:
            reply = json.loads(bytes(data[FRAME.size : FRAME.size + size]))
        except ValueError:
            reply = None
        # Bytes past the frame, or a frame for another call: the handler wrote into the reply channel itself.
        if not isinstance(reply, dict) or number != self.calls or len(data) != FRAME.size + size:
            outcome.ended = True
        else:
            outcome.reply = reply
        return True

    def _read_info(self, chunk: bytes, selector: selectors.BaseSelector | None = None) -> None:
        """bwrap's --info-fd: {"child-pid": N}, the host pid of the jail's init, once the jail exists."""
        if not chunk:
            if selector is not None:
                selector.unregister(self._info_fd)
            os.close(self._info_fd)
            self._info_fd = None
        self._info = (self._info + chunk)[:STDERR_KEEP]
        if self._watch is not None:
            return
        try:
            pid = int(json.loads(self._info)["child-pid"])
            self._init_fd = os.pidfd_open(pid)
        except (ValueError, KeyError, TypeError, OSError):
            return
        self._watch = JailMemory(pid)

    def _ended(self, outcome: CallOutcome, deadline: float) -> CallOutcome:
        """The jail's output ended without a reply: let bwrap exit within the deadline and keep its exit code."""
        try:
            outcome.returncode = self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
        self._drain_info()
        outcome.started = self.started
        return outcome

    def _drain_info(self) -> None:
        with contextlib.suppress(BlockingIOError):  # bwrap has written all it will for now
            while self._info_fd is not None and self._watch is None:
                self._read_info(os.read(self._info_fd, READ_CHUNK))

    def kill(self) -> None:
        """SIGKILL bwrap's process group and the jail's init, then wait until the pid namespace is empty."""
        if self._killed:
            return
        self._killed = True
        self._drain_info()
        if self.proc.poll() is None:
            if self._init_fd is not None:
                with contextlib.suppress(ProcessLookupError):  # the jail's init already exited
                    signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):  # bwrap's group already exited
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._await_jail_gone()
        if self._watch is not None:
            self._watch.close()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if not stream.closed:
                with contextlib.suppress(OSError):  # a pipe the jail never read: nothing to flush
                    stream.close()
        if self._info_fd is not None:
            os.close(self._info_fd)
            self._info_fd = None

    def forget(self) -> None:
        """Close our descriptors without killing: in a forked process, the jail belongs to the parent."""
        self._killed = True
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                os.close(stream.fileno())
        if self._watch is not None:
            self._watch.close()
        for fd in (self._info_fd, self._init_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _await_jail_gone(self) -> None:
        """bwrap may exit before its init does; the init's pidfd turns readable only after the namespace is empty."""
        if self._init_fd is None:
            return
        try:
            with contextlib.suppress(ProcessLookupError):  # the namespace emptied between the two checks
                if not select.select([self._init_fd], [], [], KILL_GRACE_S)[0]:
                    signal.pidfd_send_signal(self._init_fd, signal.SIGKILL)
                    select.select([self._init_fd], [], [], KILL_GRACE_S)
        finally:
            os.close(self._init_fd)
            self._init_fd = None
