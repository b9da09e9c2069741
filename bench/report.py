"""The serving benchmark's figures as a printed table, ratios and issue 15's targets."""

from __future__ import annotations

HELLO, SKLEARN, MODEL = "hello", "sklearn", "model"


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 3) if reference else None


def add_ratios(results: dict[str, dict]) -> None:
    """Each row's req/s against bare hello at the same client count; the model also against plain scikit-learn.

    `results` maps a row id to `{"c16": figures, "c1": figures, ...}` (figures as dicts); ratios are added in place.
    """
    for row_id, row in results.items():
        levels = [level for level in row if level.startswith("c")]
        if row_id != HELLO and HELLO in results:
            row["vs_hello"] = {
                level: ratio(row[level]["requests_per_s"], results[HELLO][level]["requests_per_s"]) for level in levels
            }
        if row_id == MODEL and SKLEARN in results:
            row["vs_sklearn"] = {
                level: ratio(row[level]["requests_per_s"], results[SKLEARN][level]["requests_per_s"])
                for level in levels
            }


# Issue 15's "Done when", as (row, clients, what, measured value getter, comparison, threshold).
_TARGETS = (
    ("lookup_cached", "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.5),
    ("lookup_uncached", "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.35),
    (MODEL, "c16", "req/s vs plain scikit-learn", lambda r: r.get("vs_sklearn", {}).get("c16"), ">=", 2.0),
    (MODEL, "c16", "p99 ms", lambda r: r["c16"]["p99_ms"], "<", 60.0),  # None (too few answers): not measured
    (MODEL, "c1", "p50 ms", lambda r: r["c1"]["p50_ms"], "<", 6.0),
    ("function", "c1", "p50 ms", lambda r: r["c1"]["p50_ms"], "<", 8.0),
    ("function", "c16", "req/s vs bare hello", lambda r: r.get("vs_hello", {}).get("c16"), ">=", 0.2),
)


def issue_targets(results: dict[str, dict]) -> list[dict]:
    """Each target of issue 15 with the measured value and whether it is met (None when the row was not run)."""
    checked = []
    for row_id, level, what, get, op, threshold in _TARGETS:
        row = results.get(row_id)
        value = get(row) if row is not None and level in row else None
        met = None if value is None else (value >= threshold if op == ">=" else value < threshold)
        checked.append(
            {
                "row": row_id,
                "clients": int(level[1:]),
                "what": what,
                "target": f"{op} {threshold:g}",
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
        "| call | clients | req/s | p50 ms | p99 ms | vs hello | vs plain sklearn | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
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
                f"{f['errors']} |"
            )
    return "\n".join(lines)


def format_targets(targets: list[dict]) -> str:
    words = {True: "met", False: "missed", None: "not measured"}
    return "\n".join(
        f"- {t['row']}, {t['clients']} client{'s' if t['clients'] != 1 else ''}: {t['what']} {t['target']}: "
        f"measured {t['measured']} ({words[t['met']]})"
        for t in targets
    )
