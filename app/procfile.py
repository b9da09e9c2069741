"""The Procfile: the one description of Apiary's processes, read by `make run` and by any Procfile runner."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PROCESS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# The queues a worker line may name: the four shared ones and dedicated ones below predict and functions
# (`predict.fraud`), which endpoints name in their pool config.
QUEUE_NAME = re.compile(r"(predict|train|functions|default)(\.[a-z0-9][a-z0-9_-]{0,62})?")
STANDARD_QUEUES = ("predict", "train", "functions", "default")
MAX_CONCURRENCY = 64
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class ProcfileError(ValueError):
    """A Procfile or APIARY_WORKERS value that cannot be run; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class Process:
    name: str
    command: str  # as written, before variables are expanded

    @property
    def is_worker(self) -> bool:
        return _celery_subcommand(self.command) == "worker"

    @property
    def is_beat(self) -> bool:
        return _celery_subcommand(self.command) == "beat"

    def argv(self, env: dict[str, str]) -> list[str]:
        return shlex.split(expand(self.command, env))


@dataclass(frozen=True)
class WorkerLine:
    queues: tuple[str, ...]
    concurrency: int

    @property
    def name(self) -> str:
        return "worker-" + "-".join(self.queues)

    def command(self) -> str:
        node = "-".join(q.replace(".", "_") for q in self.queues)
        return (
            f"celery -A celery_worker worker -Q {','.join(self.queues)} -n {node}@%h "
            f"--concurrency {self.concurrency} --loglevel INFO"
        )


def _celery_subcommand(command: str) -> str | None:
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or Path(words[0]).name != "celery":
        return None
    rest = iter(words[1:])
    for word in rest:
        if word in ("-A", "--app", "-b", "--broker", "--workdir", "--config"):
            next(rest, None)  # the option's value
        elif not word.startswith("-"):
            return word
    return None


def expand(command: str, env: dict[str, str]) -> str:
    """`$VAR`, `${VAR}` and `${VAR:-default}` as a shell expands them (an unset VAR is empty)."""

    def value(match: re.Match) -> str:
        name = match["braced"] or match["bare"]
        found = env.get(name, "")
        if match["braced"] and match["default"] is not None and not found:
            return match["default"]
        return found

    return _VARIABLE.sub(value, command)


def parse_procfile(text: str) -> list[Process]:
    processes: list[Process] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not PROCESS_NAME.fullmatch(name) or not command:
            raise ProcfileError(f"Procfile line {number}: expected `name: command`, got {raw.strip()!r}")
        if any(p.name == name for p in processes):
            raise ProcfileError(f"Procfile line {number}: the process name {name!r} is used twice")
        processes.append(Process(name, command))
    if not processes:
        raise ProcfileError("the Procfile names no process")
    return processes


def parse_worker_spec(spec: str) -> list[WorkerLine]:
    """`predict:2,train:1,functions:1,default:1`: one worker line per entry; `predict+functions:2` is one worker
    consuming both queues. Every queue once; concurrency 1..64."""
    lines: list[WorkerLine] = []
    seen: set[str] = set()
    entries = [entry.strip() for entry in spec.split(",")]
    for entry in entries:
        queues_part, sep, count = entry.partition(":")
        queues = tuple(q.strip() for q in queues_part.split("+"))
        if not sep or not all(queues) or not count.strip():
            raise ProcfileError(
                f"APIARY_WORKERS: {entry!r} is not QUEUE:CONCURRENCY (e.g. predict:2,train:1,functions:1,default:1)"
            )
        for queue in queues:
            if not QUEUE_NAME.fullmatch(queue):
                raise ProcfileError(
                    f"APIARY_WORKERS: unknown queue {queue!r} (predict, train, functions, default, or a dedicated "
                    "predict.NAME / functions.NAME)"
                )
            if queue in seen:
                raise ProcfileError(f"APIARY_WORKERS: the queue {queue!r} is named twice")
            seen.add(queue)
        try:
            concurrency = int(count.strip())
        except ValueError:
            concurrency = 0
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ProcfileError(
                f"APIARY_WORKERS: the concurrency of {queues_part.strip()!r} must be a whole number from 1 to "
                f"{MAX_CONCURRENCY}, got {count.strip()!r}"
            )
        lines.append(WorkerLine(queues, concurrency))
    return lines


def missing_queues(lines: list[WorkerLine]) -> list[str]:
    consumed = {q for line in lines for q in line.queues}
    return [q for q in STANDARD_QUEUES if q not in consumed]


def load_processes(path: Path, workers_spec: str | None = None) -> list[Process]:
    """The Procfile's processes; with `workers_spec` (APIARY_WORKERS) its worker lines are replaced by the spec's."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProcfileError(f"cannot read the Procfile at {path}: {exc.strerror}") from None
    processes = parse_procfile(text)
    if not workers_spec or not workers_spec.strip():
        return processes
    generated = [Process(line.name, line.command()) for line in parse_worker_spec(workers_spec)]
    kept = [p for p in processes if not p.is_worker]
    clash = {p.name for p in kept} & {p.name for p in generated}
    if clash:
        raise ProcfileError(f"APIARY_WORKERS: the worker name {sorted(clash)[0]!r} is also a Procfile process")
    return kept + generated
