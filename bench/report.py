"""The serving benchmark's figures as a printed table, ratios and issue 15's targets."""

from __future__ import annotations

import statistics

HELLO, SKLEARN, CELERY, REDIS, SCRIPT = "hello", "sklearn", "celery", "redis", "script"
MODEL, FUNCTION = "model", "function"
CACHED_LOOKUP = "lookup_cached"
LOAD_TOOL = "hey"  # its name among the processes whose CPU a measurement reports (bench/cpu.py)
REDIS_PROCESS = "redis"  # the stack's Redis (every server's and worker's)
# Each row also shown against a reference closer to its own work than bare hello: (row, reference, ratio key).
_OWN_REFERENCE = (
    (MODEL, SKLEARN, "vs_sklearn"),
    (FUNCTION, CELERY, "vs_celery"),
    (CACHED_LOOKUP, REDIS, "vs_redis"),
    (CACHED_LOOKUP, SCRIPT, "vs_script"),
)


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def combine_rounds(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """One figure per row and client count out of several rounds of the whole table (each round a
    `{row: {"c16": figures, ...}}`): the median round's req/s, p50 and p99, every round's requests and errors added
    up. Each row keeps its rounds (`rounds`), so a ratio can be taken within each round (`add_ratios`)."""
    combined: dict[str, dict] = {}
    for row_id in dict.fromkeys(row_id for one in rounds for row_id in one):
        measured = [one[row_id] for one in rounds if row_id in one]
        row: dict = {"rounds": measured}
        for level in dict.fromkeys(level for one in measured for level in one):
            figures = [one[level] for one in measured if level in one]
            row[level] = {
                "clients": figures[0]["clients"],
                "requests": sum(f["requests"] for f in figures),
                "errors": sum(f["errors"] for f in figures),
                "seconds": round(sum(f["seconds"] for f in figures), 2),
                "requests_per_s": _median(f["requests_per_s"] for f in figures),
                "p50_ms": _median(f["p50_ms"] for f in figures),
                "p99_ms": _median(f["p99_ms"] for f in figures),
                "first_error": next((f["first_error"] for f in figures if f.get("first_error")), None),
                "cpu_us_per_request": _median_parts([f.get("cpu_us_per_request") for f in figures]),
            }
        combined[row_id] = row
    return combined


def _median_parts(measured: list[dict | None]) -> dict[str, float] | None:
    """Each part's median over the rounds that measured it (CPU per request by process)."""
    known = [m for m in measured if m]
    if not known:
        return None
    return {name: _median(m.get(name) for m in known) for name in dict.fromkeys(n for m in known for n in m)}


def _median(values) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 1) if known else None


def _ratio_of(row: dict, reference: dict, level: str) -> float | None:
    """req/s of `row` against `reference` at `level`: within each round both ran in, the median of those ratios
    (the machine's speed drifts over a run; a round's rows run minutes apart at most, its references beside them),
    else of the figures."""
    pairs = list(zip(row.get("rounds", []), reference.get("rounds", []), strict=False))
    per_round = [
        ratio(mine[level]["requests_per_s"], theirs[level]["requests_per_s"])
        for mine, theirs in pairs
        if level in mine and level in theirs
    ]
    per_round = [r for r in per_round if r is not None]
    if per_round:
        return round(statistics.median(per_round), 3)
    return ratio(row[level]["requests_per_s"], reference[level]["requests_per_s"])


def add_ratios(results: dict[str, dict]) -> None:
    """Each row's req/s against bare hello at the same client count; the model also against plain scikit-learn, the
    function also against the plain Celery round trip, the cached lookup also against the plain Redis read and against the serve script route. With rounds (`combine_rounds`), each ratio is the median of
    the ratios within each round.

    `results` maps a row id to `{"c16": figures, "c1": figures, ...}` (figures as dicts); ratios are added in place.
    """
    for row_id, row in results.items():
        levels = [level for level in row if level.startswith("c")]
        if row_id != HELLO and HELLO in results:
            row["vs_hello"] = {level: _ratio_of(row, results[HELLO], level) for level in levels}
        for own_row, reference, key in _OWN_REFERENCE:
            if row_id == own_row and reference in results:
                row[key] = {level: _ratio_of(row, results[reference], level) for level in levels}


# Issue 15's "Done when", as (row, clients, what, measured value getter, comparison, threshold); comparison and
# threshold None: a figure shown beside them, not one of the issue's targets.
_TARGETS = (
    (CACHED_LOOKUP, "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.5),
    ("lookup_uncached", "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.35),
    (MODEL, "c16", "req/s vs plain scikit-learn", lambda r: r.get("vs_sklearn", {}).get("c16"), ">=", 2.0),
    (MODEL, "c16", "p99 ms", lambda r: r["c16"]["p99_ms"], "<", 60.0),  # None (too few answers): not measured
    (MODEL, "c1", "p50 ms", lambda r: r["c1"]["p50_ms"], "<", 6.0),
    (FUNCTION, "c1", "p50 ms", lambda r: r["c1"]["p50_ms"], "<", 8.0),
    (FUNCTION, "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.2),
    (FUNCTION, "c16", "req/s vs plain Celery round trip", lambda r: r.get("vs_celery", {}).get("c16"), None, None),
    (CACHED_LOOKUP, "c16", "req/s vs plain Redis read", lambda r: r.get("vs_redis", {}).get("c16"), None, None),
    (CACHED_LOOKUP, "c16", "req/s vs serve script route", lambda r: r.get("vs_script", {}).get("c16"), None, None),
)


def issue_targets(results: dict[str, dict]) -> list[dict]:
    """Each target of issue 15 with the measured value and whether it is met (None when the row was not run, or for
    a figure without a target: its "target" is None)."""
    checked = []
    for row_id, level, what, get, op, threshold in _TARGETS:
        row = results.get(row_id)
        value = get(row) if row is not None and level in row else None
        if value is None or op is None:
            met = None
        else:
            met = value >= threshold if op == ">=" else value < threshold
        checked.append(
            {
                "row": row_id,
                "clients": int(level[1:]),
                "what": what,
                "target": None if op is None else f"{op} {threshold:g}",
                "measured": value,
                "met": met,
            }
        )
    return checked


def ms_text(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def format_table(labels: dict[str, str], results: dict[str, dict]) -> str:
    """A Markdown table: one line per row and client count."""
    lines = [
        "| call | clients | req/s | p50 ms | p99 ms | vs hello | vs plain sklearn | vs plain Celery | vs plain Redis "
        "| vs serve script | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row_id, label in labels.items():
        row = results.get(row_id)
        if row is None:
            continue
        for level in sorted((k for k in row if k.startswith("c")), key=lambda k: -int(k[1:])):
            f = row[level]
            lines.append(
                f"| {label} | {f['clients']} | {f['requests_per_s']:,.1f} | {ms_text(f['p50_ms'])} | {ms_text(f['p99_ms'])} | "
                f"{_cell(row.get('vs_hello', {}).get(level))} | {_cell(row.get('vs_sklearn', {}).get(level))} | "
                f"{_cell(row.get('vs_celery', {}).get(level))} | {_cell(row.get('vs_redis', {}).get(level))} | "
                f"{_cell(row.get('vs_script', {}).get(level))} | {f['errors']} |"
            )
    return "\n".join(lines)


def format_targets(targets: list[dict]) -> str:
    words = {True: "met", False: "missed", None: "not measured"}
    lines = []
    for t in targets:
        clients = f"{t['clients']} client{'s' if t['clients'] != 1 else ''}"
        if t["target"] is None:
            outcome = "not measured" if t["measured"] is None else "shown for reference, no target"
            lines.append(f"- {t['row']}, {clients}: {t['what']}: measured {t['measured']} ({outcome})")
        else:
            lines.append(
                f"- {t['row']}, {clients}: {t['what']} {t['target']}: measured {t['measured']} ({words[t['met']]})"
            )
    return "\n".join(lines)


def format_cpu_table(
    labels: dict[str, str], servers: dict[str, str], workers: tuple[str, ...], results: dict[str, dict], level="c16"
) -> str:
    """A Markdown table of where one request's CPU went at `level`, in microseconds: the row's own server, the
    workers, Redis, the load tool, the rest (the other servers, idle) and the total, also against bare hello's total
    (on two saturated shared cores, about the inverse of the req/s ratio)."""
    lines = [
        f"| call ({level[1:]} clients), CPU µs per request | server | workers | Redis | hey | rest | total | vs hello |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    hello = ((results.get(HELLO) or {}).get(level) or {}).get("cpu_us_per_request") or {}
    for row_id, label in labels.items():
        cpu = ((results.get(row_id) or {}).get(level) or {}).get("cpu_us_per_request")
        if not cpu:
            continue
        parts = {
            "server": cpu.get(servers[row_id]) or 0.0,
            "workers": sum(cpu.get(name) or 0.0 for name in workers),
            "redis": cpu.get(REDIS_PROCESS) or 0.0,
            "hey": cpu.get(LOAD_TOOL) or 0.0,
        }
        total = cpu.get("total") or 0.0
        rest = max(0.0, total - sum(parts.values()))
        cells = " | ".join(f"{v:,.0f}" for v in (*parts.values(), rest, total))
        lines.append(f"| {label} | {cells} | {_cell(ratio(total, hello.get('total') or 0))} |")
    return "\n".join(lines)
