"""Charts drawn as inline SVG on the server (no build step, no script, nothing from a CDN): lines, bars, scatter,
heat map. Every label goes through `escape`; numbers are formatted by Python, so no value can inject markup."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 12, 14, 30
PALETTE = ("#1f5eff", "#d97706", "#157f3b", "#b42318", "#7c3aed", "#0e7490", "#be185d", "#4b5563")


@dataclass(frozen=True)
class Series:
    """One named line of a line chart; None where there is no value (drawn as a gap)."""

    name: str
    values: Sequence[float | None]


def _num(value: float) -> str:
    """A coordinate or value as SVG text: finite, short, never markup."""
    value = float(value)
    if not math.isfinite(value):
        value = 0.0
    return f"{value:.6g}"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _label(value: float | None) -> str:
    if _finite(value) is None:
        return "–"
    if abs(value) >= 1000 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _scale(lo: float, hi: float, out_lo: float, out_hi: float):
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (float(v) - lo) / span * (out_hi - out_lo)


def _nice_max(value: float) -> float:
    """The axis top: the value rounded up to 1, 2 or 5 times a power of ten (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _frame(
    kind: str, title: str, body: list[str], width: int = WIDTH, height: int = HEIGHT, fluid: bool = True
) -> Markup:
    """The <svg> around `body`: fluid charts fill their box; square ones keep their size (text stays legible)."""
    t = escape(title)
    shown = "100%" if fluid else str(width)
    head = (
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {width} {height}" width="{shown}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{t}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _axes(
    y_top: float, y_unit: str, x_labels: Sequence[str], x_at, width: int, height: int, y_bottom: float = 0.0
) -> list[str]:
    bottom, out = height - PAD_BOTTOM, []
    y = _scale(y_bottom, y_top, bottom, PAD_TOP)
    for frac in (0, 0.5, 1):
        value = y_bottom + (y_top - y_bottom) * frac
        out.append(
            f'<line class="grid" x1="{PAD_LEFT}" x2="{width - PAD_RIGHT}" y1="{_num(y(value))}" y2="{_num(y(value))}" '
            f'stroke="#e4e7ec"/><text x="{PAD_LEFT - 4}" y="{_num(y(value) + 4)}" text-anchor="end" font-size="10" '
            f'fill="#667085">{escape(_label(value))}{escape(y_unit)}</text>'
        )
    if x_labels:
        step = max(1, math.ceil(len(x_labels) / 6))  # at most ~6 labels under the axis
        for i in range(0, len(x_labels), step):
            out.append(
                f'<text class="x-label" x="{_num(x_at(i))}" y="{height - 10}" text-anchor="middle" font-size="10" '
                f'fill="#667085">{escape(x_labels[i])}</text>'
            )
    return out


def line_chart(
    series: Sequence[Series],
    x_labels: Sequence[str],
    title: str,
    y_unit: str = "",
    y_max: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """One line per series over the same x positions; each point is a circle carrying its value (`data-value`).
    Missing and non-finite values are gaps."""
    series = [Series(s.name, [_finite(v) for v in s.values]) for s in series]
    n = max((len(s.values) for s in series), default=0)
    values = [v for s in series for v in s.values if v is not None]
    top = y_max if y_max is not None else _nice_max(max(values, default=0))
    # Negative values (an R² below zero) extend the axis down; everything else starts at zero.
    floor = -_nice_max(-min(values)) if values and min(values) < 0 else 0.0
    x = _scale(0, max(n - 1, 1), PAD_LEFT + 6, width - PAD_RIGHT - 6)
    y = _scale(floor, top, height - PAD_BOTTOM, PAD_TOP)
    body = _axes(top, y_unit, x_labels, x, width, height, floor)
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        runs, run = [], []
        for i, v in enumerate(s.values):
            if v is None:
                runs, run = (runs + [run]) if run else runs, []
            else:
                run.append(f"{_num(x(i))},{_num(y(v))}")
        runs = runs + [run] if run else runs
        name = escape(s.name)
        body.append(f'<g class="series" data-series="{name}">')
        body += [f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(r)}"/>' for r in runs]
        for i, v in enumerate(s.values):
            if v is not None:
                label = x_labels[i] if i < len(x_labels) else str(i)
                body.append(
                    f'<circle class="point" cx="{_num(x(i))}" cy="{_num(y(v))}" r="2.5" fill="{color}" '
                    f'data-value="{_num(v)}"><title>{name} · {escape(label)}: {escape(_label(v))}{escape(y_unit)}'
                    "</title></circle>"
                )
        body.append("</g>")
    body.append(_legend([s.name for s in series], width) if len(series) > 1 else "")
    return _frame("line", title, body, width, height)


def _legend(names: Sequence[str], width: int) -> str:
    parts, x = [], PAD_LEFT
    for index, name in enumerate(names):
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="2" width="8" height="8" fill="{color}"/>'
            f'<text class="legend" x="{x + 11}" y="10" font-size="10" fill="#1d2330">{escape(name)}</text>'
        )
        x += 16 + 6 * min(len(name), 24)
    return '<g class="legend">' + "".join(parts) + "</g>"


def bar_chart(
    values: Sequence[float],
    labels: Sequence[str],
    title: str,
    y_unit: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
    kind: str = "bar",
) -> Markup:
    """One bar per value (`data-value`, `data-label`); labels under the axis, thinned when there are many."""
    values = [_finite(v) or 0.0 for v in values]
    n = len(values)
    top = _nice_max(max(values, default=0))
    slot = (width - PAD_LEFT - PAD_RIGHT) / max(n, 1)
    y = _scale(0, top, height - PAD_BOTTOM, PAD_TOP)
    body = _axes(top, y_unit, labels, lambda i: PAD_LEFT + slot * (i + 0.5), width, height)
    for i, v in enumerate(values):
        label = escape(labels[i] if i < len(labels) else str(i))
        top_y = y(v)
        body.append(
            f'<rect class="bar" x="{_num(PAD_LEFT + slot * i + slot * 0.1)}" y="{_num(top_y)}" '
            f'width="{_num(slot * 0.8)}" height="{_num(height - PAD_BOTTOM - top_y)}" fill="{PALETTE[0]}" '
            f'data-value="{_num(v)}" data-label="{label}"><title>{label}: {escape(_label(v))}{escape(y_unit)}</title>'
            "</rect>"
        )
    return _frame(kind, title, body, width, height)


def histogram(counts: Sequence[int], edges: Sequence[str], title: str) -> Markup:
    """Counts per bin, labelled by the bins' names (e.g. "≤ 5 ms"): a bar chart marked `data-chart="histogram"`."""
    return bar_chart(counts, edges, title, kind="histogram")


def scatter(
    points: Sequence[tuple[float, float]],
    title: str,
    x_name: str,
    y_name: str,
    diagonal: bool = True,
    line: bool = False,
    size: int = 300,
) -> Markup:
    """Points on equal axes (ROC curve, predicted vs actual); `diagonal` draws y = x, `line` joins the points."""
    points = [(px, py) for px, py in points if _finite(px) is not None and _finite(py) is not None]
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [p[1] for p in points] or [0.0, 1.0]
    lo, hi = min(min(xs), min(ys)), max(max(xs), max(ys))
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = 34
    x = _scale(lo, hi, pad, size - 8)
    y = _scale(lo, hi, size - pad, 8)
    body = [
        f'<rect x="{pad}" y="8" width="{size - pad - 8}" height="{size - pad - 8}" fill="none" stroke="#e4e7ec"/>',
        f'<text x="{size / 2}" y="{size - 4}" text-anchor="middle" font-size="10" fill="#667085">{escape(x_name)}</text>',
        f'<text x="10" y="{size / 2}" text-anchor="middle" font-size="10" fill="#667085" '
        f'transform="rotate(-90 10 {size / 2})">{escape(y_name)}</text>',
        f'<text x="{pad}" y="{size - pad + 12}" font-size="9" fill="#667085">{escape(_label(lo))}</text>',
        f'<text x="{size - 8}" y="{size - pad + 12}" text-anchor="end" font-size="9" fill="#667085">'
        f"{escape(_label(hi))}</text>",
    ]
    if diagonal:
        body.append(
            f'<line class="diagonal" x1="{_num(x(lo))}" y1="{_num(y(lo))}" x2="{_num(x(hi))}" y2="{_num(y(hi))}" '
            'stroke="#98a2b3" stroke-dasharray="4 3"/>'
        )
    if line and points:
        coords = " ".join(f"{_num(x(px))},{_num(y(py))}" for px, py in points)
        body.append(f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2" points="{coords}"/>')
    radius = "1.5" if line else "2.5"
    for px, py in points:
        body.append(
            f'<circle class="point" cx="{_num(x(px))}" cy="{_num(y(py))}" r="{radius}" fill="{PALETTE[0]}" '
            f'fill-opacity="0.6" data-x="{_num(px)}" data-y="{_num(py)}"/>'
        )
    return _frame("scatter", title, body, size, size, fluid=False)


def heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, cell: int | None = None) -> Markup:
    """A square matrix (rows: actual, columns: predicted), darker for larger counts; each cell shows its count.
    Cells are large for a few classes and shrink for many (the whole matrix stays about 420 px wide)."""
    n = len(labels)
    cell = cell or max(22, min(56, 420 // max(n, 1)))
    pad = 70
    size = pad + cell * n + 8
    top = max((v for row in matrix for v in row), default=0) or 1
    body = [
        f'<text x="{pad + cell * n / 2}" y="12" text-anchor="middle" font-size="10" fill="#667085">predicted</text>',
        f'<text x="10" y="{pad + cell * n / 2}" text-anchor="middle" font-size="10" fill="#667085" '
        f'transform="rotate(-90 10 {pad + cell * n / 2})">actual</text>',
    ]
    for i, name in enumerate(labels):
        short = escape(name if len(name) <= 10 else name[:9] + "…")
        body.append(
            f'<text x="{pad + cell * i + cell / 2}" y="{pad - 6}" text-anchor="middle" font-size="10">{short}</text>'
            f'<text x="{pad - 4}" y="{pad + cell * i + cell / 2 + 4}" text-anchor="end" font-size="10">{short}</text>'
        )
    for r, row in enumerate(matrix):
        for c, count in enumerate(row):
            shade = count / top
            fill = f"rgba(31,94,255,{_num(0.08 + 0.85 * shade)})"
            ink = "#fff" if shade > 0.55 else "#1d2330"
            body.append(
                f'<g class="cell" data-row="{r}" data-col="{c}" data-value="{int(count)}">'
                f'<rect x="{pad + cell * c}" y="{pad + cell * r}" width="{cell - 2}" height="{cell - 2}" fill="{fill}">'
                f"<title>actual {escape(labels[r])}, predicted {escape(labels[c])}: {int(count)}</title></rect>"
                f'<text x="{pad + cell * c + cell / 2 - 1}" y="{pad + cell * r + cell / 2 + 3}" text-anchor="middle" '
                f'font-size="11" fill="{ink}">{int(count)}</text></g>'
            )
    return _frame("heatmap", title, body, size, size, fluid=False)
