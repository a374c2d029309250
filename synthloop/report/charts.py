"""Inline SVG charts for the HTML report: a line chart (one point per round), stacked bars, a histogram.

Written here rather than with a plotting library: the report must open from disk with no network, so a
JavaScript charting library would have to be vendored (tens of KB for three chart types), and matplotlib's
SVG output carries no per-point hooks (a hover title, `data-round`) that the page and its browser test use.
Each chart is a few dozen elements; labels go through markupsafe's escaping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563",
           "#65a30d"]
W, H = 520, 250
LEFT, RIGHT, TOP, BOTTOM = 54, 14, 26, 38


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (hi, lo)
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 12)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(ticks: list[float], y, title: str, chart_id: str) -> list[str]:
    parts = [f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>']
    for t in ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    return parts


def _legend(names: Sequence[str], colors: Sequence[str] | None = None) -> Markup:
    colors = colors or [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    items = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c in zip(names, colors,
                                                                                             strict=True))
    return Markup(f'<div class="legend">{items}</div>')


def line_chart(chart_id: str, title: str, rounds: Sequence[int], labels: Sequence[str],
               series: Sequence[tuple[str, str, Sequence[float | None]]]) -> Markup:
    """One line per series over the rounds; every known value is a `<circle class="pt" data-series=KEY
    data-round=R>` with a hover title. `series`: (key, label, one value or None per round)."""
    values = [v for _, _, vs in series for v in vs if v is not None and math.isfinite(v)]
    if not values or not rounds:
        return Markup("")
    lo, hi = min(values), max(values)
    if lo >= 0 and hi <= 1:
        lo, hi = 0.0, 1.0  # shares and scores: the whole 0-1 scale, so small changes do not look large
    ticks = nice_ticks(lo, hi)
    y0, y1 = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - y0) / ((y1 - y0) or 1))

    span = max(len(rounds) - 1, 1)

    def x(i: int) -> float:
        return LEFT + 12 + (W - LEFT - RIGHT - 24) * (i / span if len(rounds) > 1 else 0.5)

    parts = _frame(ticks, y, title, chart_id)
    for i, (r, label) in enumerate(zip(rounds, labels, strict=True)):
        parts.append(f'<text class="tick" x="{x(i):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{r}</text>'
                     f'<text class="tick small" x="{x(i):.1f}" y="{H - BOTTOM + 29}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    for n, (key, label, vs) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        pts = [(x(i), y(v), r, v) for i, (r, v) in enumerate(zip(rounds, vs, strict=True))
               if v is not None and math.isfinite(v)]
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in pts)
            parts.append(f'<polyline class="line" points="{path}" stroke="{color}"/>')
        for px, py, r, v in pts:
            parts.append(f'<circle class="pt" data-series="{escape(key)}" data-round="{r}" cx="{px:.1f}" '
                         f'cy="{py:.1f}" r="4" fill="{color}"><title>round {r}: {escape(label)} = {fmt(v)}'
                         f'</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts)) + _legend([label for _, label, _ in series])


#: colours that mean something wherever they appear (kept/accepted green, dropped/rejected red, as in the page)
MEANING = {"kept": "#16a34a", "accepted": "#16a34a", "dropped": "#dc2626", "rejected": "#dc2626"}


def _color(name: str, n: int) -> str:
    return MEANING.get(name, PALETTE[n % len(PALETTE)])


def stacked_bars(chart_id: str, title: str, groups: Sequence[str],
                 series: Sequence[tuple[str, Sequence[float]]], *, x_title: str = "") -> Markup:
    """Bars per group, each stacked from the series' values (e.g. seconds per stage per round, or kept and
    dropped records per histogram bin)."""
    totals = [sum(vs[i] for _, vs in series) for i in range(len(groups))]
    if not groups or not any(totals):
        return Markup("")
    ticks = nice_ticks(0.0, max(totals))
    y1 = ticks[-1] or 1

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - v / y1)

    slot = (W - LEFT - RIGHT) / len(groups)
    width = min(slot, 64.0)  # a few wide groups: bars of a readable width, centred in their slot
    parts = _frame(ticks, y, title, chart_id)
    every = max(1, math.ceil(len(groups) / 12))  # at most ~12 group labels
    for i, group in enumerate(groups):
        base = 0.0
        for n, (name, vs) in enumerate(series):
            v = vs[i]
            if v:
                left = LEFT + (i + 0.5) * slot - width / 2 + 1
                parts.append(f'<rect class="col" x="{left:.1f}" y="{y(base + v):.1f}" '
                             f'width="{max(width - 2, 1):.1f}" height="{y(base) - y(base + v):.1f}" '
                             f'fill="{_color(name, n)}"><title>{escape(group)}: {escape(name)} '
                             f'{fmt(v)}</title></rect>')
            base += v
        if i % every == 0:
            parts.append(f'<text class="tick" x="{LEFT + (i + 0.5) * slot:.1f}" y="{H - BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(group)}</text>')
    if x_title:
        parts.append(f'<text class="tick small" x="{(LEFT + W - RIGHT) / 2:.1f}" y="{H - 6}" '
                     f'text-anchor="middle">{escape(x_title)}</text>')
    parts.append("</svg>")
    names = [name for name, _ in series]
    return Markup("".join(parts)) + (_legend(names, [_color(x, n) for n, x in enumerate(names)]) if len(series) > 1
                                     else Markup(""))


def histogram_bins(values: Sequence[float], bins: int = 20) -> tuple[list[float], float]:
    """(bin starts, width) over the finite values; one bin of width 1 when they are all equal."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [], 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return [lo], 1.0
    if all(float(v).is_integer() for v in finite) and hi - lo < 2 * bins:
        return [lo + i for i in range(int(hi - lo) + 1)], 1.0  # counts (words, tokens): one bin per value
    width = (hi - lo) / bins
    return [lo + i * width for i in range(bins)], width


def histogram(chart_id: str, title: str, groups: Sequence[tuple[str, Sequence[float]]], *, bins: int = 20,
              x_title: str = "") -> Markup:
    """Counts of values per bin, stacked by group (e.g. kept / dropped); shared bins over all groups."""
    starts, width = histogram_bins([v for _, vs in groups for v in vs], bins)
    if not starts:
        return Markup("")
    counts = []
    for name, vs in groups:
        row = [0.0] * len(starts)
        for v in vs:
            if math.isfinite(v):
                row[min(int((v - starts[0]) / width), len(starts) - 1)] += 1
        counts.append((name, row))
    labels = [fmt(s) for s in starts]
    return stacked_bars(chart_id, title, labels, counts, x_title=x_title)
