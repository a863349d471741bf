"""Inline SVG plots for report.html: strip plots and horizontal bar charts, no JavaScript.

Drawn in Python from report.json numbers so the page stays one self-contained file.
"""

from __future__ import annotations

import html
import math

import numpy as np

SERIES_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")
COSINE_FLOOR = 1e-12  # 1 - cosine below this (FP32 often gives exactly 0) is drawn at the floor
# Text widths are estimated, not measured (no browser here): 12 px sans-serif averages under
# 7 px per character (DejaVu Sans, Helvetica); 7.2 keeps a margin so labels are never cut.
CHAR_W = 7.2
MIN_LEFT, MAX_LEFT = 110, 470  # the label column: wide enough for the longest label, up to this
_esc = html.escape


def text_width(text: str, char_w: float = CHAR_W) -> float:
    """Estimated width in px of ``text`` at 12 px (bold titles: pass ~7.8)."""
    return len(text) * char_w


def fit_label(text: str, max_width: float = MAX_LEFT - 16) -> str:
    """``text`` shortened from the left (``...tail``) to fit ``max_width``: the end of an ONNX node
    name (``.../conv2/Conv``) says more than its start."""
    chars = max(4, int(max_width // CHAR_W))
    return text if len(text) <= chars else "\u2026" + text[-(chars - 1):]


def label_margin(labels) -> int:
    """Left margin that holds the longest (fitted) row label plus its gap to the axis."""
    widest = max((text_width(fit_label(str(t))) for t in labels), default=0.0)
    return int(min(MAX_LEFT, max(MIN_LEFT, widest + 16)))


def fmt_number(x, digits: int = 3) -> str:
    """A number for a table cell or an axis tick: short, never misleadingly rounded to 0."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        if x == 0:
            return "0"
        if abs(x) < 1e-2 or abs(x) >= 1e5:
            return f"{x:.2e}"
        return f"{x:.{digits}f}"
    return str(x)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _svg_open(plot_id: str, width: int, height: int, title: str) -> list[str]:
    return [f'<svg class="plot" id="{_esc(plot_id)}" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
            f"<title>{_esc(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']


def _legend_width(names: list[str]) -> float:
    return sum(24 + text_width(n) for n in names)


def _legend(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    out = []
    for name, color in items:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="12" height="12" fill="{color}"/>'
                   f'<text x="{x + 16:.1f}" y="{y + 1:.1f}">{_esc(name)}</text>')
        x += 24 + text_width(name)
    return out


def _row_label(x: float, y: float, label: str) -> str:
    """A right-aligned row label; the full text is the tooltip when it had to be shortened."""
    shown = fit_label(label)
    tip = f"<title>{_esc(label)}</title>" if shown != label else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end">{tip}{_esc(shown)}</text>'


def _strip_axis(rows: list[dict], log: bool, floor: float, left: float, plot_w: float):
    """(x position of a value, [(x, tick label)]) for the values of ``rows`` and their thresholds."""
    finite = [v for r in rows for v in r["values"] if v is not None and math.isfinite(v)]
    if log:
        finite = [max(v, floor) for v in finite]
        lo = math.floor(math.log10(min(finite))) if finite else -6
        hi = math.ceil(math.log10(max(finite))) if finite else 0
        for r in rows:
            t = r.get("threshold")
            if t is not None and 0 < t < math.inf:  # a tolerance read from report.json may be inf
                lo, hi = min(lo, math.floor(math.log10(t))), max(hi, math.ceil(math.log10(t)))
        if hi <= lo:
            hi = lo + 1

        def xpos(v):
            v = max(v, floor)
            return left + (math.log10(v) - lo) / (hi - lo) * plot_w

        step = max(1, math.ceil((hi - lo) / 10))
        return xpos, [(left + (e - lo) / (hi - lo) * plot_w, f"1e{e}") for e in range(lo, hi + 1, step)]
    lo = min(finite) if finite else 0.0
    hi = max(finite) if finite else 1.0
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad

    def xpos(v):
        return left + (v - lo) / (hi - lo) * plot_w

    return xpos, [(xpos(t), fmt_number(float(t))) for t in _nice_ticks(lo, hi)]


def _strip_row(r: dict, cy: float, xpos, left: float, plot_w: float, log: bool) -> list[str]:
    """One artifact's row: label, quartile box, median bar, a dot per sample, the tolerance mark."""
    color = r["color"]
    out = [_row_label(left - 8, cy + 4, r["label"]),
           f'<line x1="{left}" y1="{cy:.1f}" x2="{left + plot_w}" y2="{cy:.1f}" stroke="#f0f0f0"/>']
    vals = np.array([v if v is not None and math.isfinite(v) else np.nan for v in r["values"]], dtype=float)
    good = vals[~np.isnan(vals)]
    if len(good):
        q1, med, q3 = np.percentile(good, [25, 50, 75])
        x1, x3, xm = xpos(q1), xpos(q3), xpos(med)
        out.append(f'<rect x="{x1:.1f}" y="{cy - 12:.1f}" width="{max(x3 - x1, 1.5):.1f}" height="24" '
                   f'fill="{color}" fill-opacity="0.15" stroke="{color}"/>'
                   f'<line x1="{xm:.1f}" y1="{cy - 13:.1f}" x2="{xm:.1f}" y2="{cy + 13:.1f}" '
                   f'stroke="{color}" stroke-width="2.5"/>')
    names = r.get("names") or []
    for j, v in enumerate(vals):
        jitter = ((j * 0.6180339887) % 1.0 - 0.5) * 18
        if np.isnan(v):
            # NaN/Inf outputs: a cross at the right edge, so they cannot go unnoticed.
            x = left + plot_w - 4
            out.append(f'<text x="{x:.1f}" y="{cy + jitter + 4:.1f}" fill="#C44E52" text-anchor="middle">x</text>')
            continue
        tip = f"{names[j] if j < len(names) else '#' + str(j)}: {v:.3g}"
        out.append(f'<circle cx="{xpos(v):.1f}" cy="{cy + jitter:.1f}" r="3" fill="{color}" '
                   f'fill-opacity="0.7"><title>{_esc(tip)}</title></circle>')
    t = r.get("threshold")
    if t is not None and (t > 0 or not log):
        xt = xpos(t)
        out.append(f'<line x1="{xt:.1f}" y1="{cy - 16:.1f}" x2="{xt:.1f}" y2="{cy + 16:.1f}" stroke="#C44E52" '
                   f'stroke-width="2" stroke-dasharray="4,3"><title>tolerance {t:.3g}</title></line>')
    return out


def strip_plot(plot_id: str, title: str, rows: list[dict], xlabel: str, *, log: bool = True,
               floor: float = COSINE_FLOOR, width: int = 1080) -> str:
    """One row per artifact: every sample as a dot, the quartiles as a box, the median as a bar.

    ``rows``: dicts with ``label``, ``values`` (list of floats), ``color``, optional
    ``threshold`` (a dashed red mark: the tolerance) and ``names`` (per-dot tooltips).
    """
    left, right, top, row_h = label_margin(r["label"] for r in rows), 24, 30, 38
    height = top + row_h * max(len(rows), 1) + 48
    plot_w = width - left - right
    xpos, ticks = _strip_axis(rows, log, floor, left, plot_w)
    out = _svg_open(plot_id, width, height, title)
    out.append(f'<text x="{left}" y="18" font-weight="bold">{_esc(title)}</text>')
    bottom = top + row_h * len(rows)
    for x, label in ticks:
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e3e3e3"/>'
                   f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">{_esc(label)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle" fill="#222">'
               f"{_esc(xlabel)}</text>")
    for i, r in enumerate(rows):
        out += _strip_row(r, top + row_h * i + row_h / 2, xpos, left, plot_w, log)
    out.append("</svg>")
    return "\n".join(out)


def _bar_scale(rows: list[dict], xmax: float | None, log: bool, left: float, plot_w: float):
    """(xpos, ticks as (value, x)) for bar_chart: linear from 0, or decades on a log axis."""
    cand = [v for r in rows for v in r["values"] if v is not None and math.isfinite(v)]
    cand += [w for r in rows for pair in (r.get("whiskers") or []) if pair for w in pair
             if w is not None and math.isfinite(w)]
    if log:
        pos = [v for v in cand if v > 0]
        lo = math.floor(math.log10(min(pos))) if pos else -6
        hi = math.ceil(math.log10(max(pos))) if pos else 0
        hi = max(hi, lo + 1)

        def xpos(v):  # zero (an exact match) sits at the axis start, drawn as a 1 px bar
            return left + (min(max(math.log10(v), lo), hi) - lo) / (hi - lo) * plot_w if v > 0 else left

        step = max(1, math.ceil((hi - lo) / 10))
        return xpos, [(10.0 ** e, xpos(10.0 ** e)) for e in range(lo, hi + 1, step)]
    vmax = xmax
    if vmax is None:
        vmax = max(cand) if cand else 1.0
        vmax = vmax * 1.05 if vmax > 0 else 1.0

    def xpos(v):
        return left + max(0.0, min(v, vmax)) / vmax * plot_w

    return xpos, [(t, xpos(t)) for t in _nice_ticks(0.0, vmax) if t <= vmax * 1.0001]


def bar_chart(plot_id: str, title: str, rows: list[dict], series: list[str], xlabel: str, *,
              xmax: float | None = None, fmt=lambda v: f"{v:.3g}", width: int = 1080,
              colors: list[str] | None = None, log: bool = False, tick_fmt=None) -> str:
    """Horizontal grouped bars: ``rows`` are dicts with ``label``, ``values`` (one per series,
    None allowed) and optional ``whiskers`` (per series ``(mid, hi)`` drawn as a line with a
    tick, e.g. p90/p99 over a p50 bar) and ``colors`` (per series, overriding ``colors``).
    ``log``: a log axis in decades (values must be >= 0; 0 is drawn at the axis start).
    Row labels get a margin as wide as the longest one needs (shortened from the left past
    MAX_LEFT, full text as tooltip); the legend moves under the title when they do not fit."""
    colors = colors or list(SERIES_COLORS)
    left, right = label_margin(r["label"] for r in rows), 80
    plot_w = width - left - right
    legend_x = left + text_width(title, 7.8) + 24
    legend_below = len(series) > 1 and legend_x + _legend_width(series) > width - 8
    top = 36 + (18 if legend_below else 0)
    bar_h = 14 if len(series) > 1 else 18
    group_h = bar_h * len(series) + 12
    height = top + group_h * max(len(rows), 1) + 44
    xpos, ticks = _bar_scale(rows, xmax, log, left, plot_w)
    tick_fmt = tick_fmt or ((lambda v: f"1e{round(math.log10(v))}") if log else fmt)

    out = _svg_open(plot_id, width, height, title)
    out.append(f'<text x="{left}" y="16" font-weight="bold">{_esc(title)}</text>')
    if len(series) > 1:
        out += _legend(list(zip(series, colors)), left if legend_below else legend_x, 34 if legend_below else 16)
    bottom = top + group_h * len(rows)
    for t, x in ticks:
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="#e3e3e3"/>'
                   f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" fill="#444">{_esc(tick_fmt(t))}</text>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle">{_esc(xlabel)}</text>')
    for i, r in enumerate(rows):
        y0 = top + group_h * i + 6
        out.append(_row_label(left - 8, y0 + group_h / 2, r["label"]))
        for s, v in enumerate(r["values"]):
            out += _bar(r, s, v, y0 + s * bar_h, bar_h, left, xpos, series, fmt, r.get("colors") or colors)
    out.append("</svg>")
    return "\n".join(out)


def _bar(row: dict, s: int, v, y: float, bar_h: int, left: float, xpos, series, fmt, colors) -> list[str]:
    """One bar of a bar_chart row: the bar, its optional whisker and its value label."""
    if v is None or not math.isfinite(v):
        return [f'<text x="{left + 4}" y="{y + bar_h - 3}" fill="#888">n/a</text>']
    color = colors[s % len(colors)]
    out = [f'<rect x="{left}" y="{y:.1f}" width="{max(xpos(v) - left, 1):.1f}" height="{bar_h - 2}" '
           f'fill="{color}"><title>{_esc(series[s])}: {_esc(fmt(v))}</title></rect>']
    end = xpos(v)
    whiskers = row.get("whiskers") or []
    if s < len(whiskers) and whiskers[s]:
        mid, hi = whiskers[s]
        cy = y + (bar_h - 2) / 2
        xh = xpos(hi)
        out.append(f'<line x1="{end:.1f}" y1="{cy:.1f}" x2="{xh:.1f}" y2="{cy:.1f}" stroke="#333"/>'
                   f'<line x1="{xh:.1f}" y1="{cy - 4:.1f}" x2="{xh:.1f}" y2="{cy + 4:.1f}" stroke="#333"/>')
        if mid is not None:
            xm = xpos(mid)
            out.append(f'<line x1="{xm:.1f}" y1="{cy - 3:.1f}" x2="{xm:.1f}" y2="{cy + 3:.1f}" stroke="#333"/>')
        end = max(end, xh)
    out.append(f'<text x="{end + 4:.1f}" y="{y + bar_h - 4:.1f}" fill="#222">{_esc(fmt(v))}</text>')
    return out
