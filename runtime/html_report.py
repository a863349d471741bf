"""report.html: the accuracy diff as one self-contained page people read.

Everything is inline: CSS, SVG plots drawn here from report.json numbers, and thumbnails
as base64 data URIs. No JavaScript, no fonts or styles from a CDN, no network: the page is
opened on offline machines (a Jetson, an air-gapped lab PC) and attached to pull requests.

Sections: summary table (precision x backend/provider), error distribution per artifact,
top-1 agreement, latency (when a ``benchmarks`` section exists), labeled accuracy (when
an ``accuracy`` section exists), golden images whose top-1 changed, and the INT8 ``lint``
and per-layer ``sensitivity`` sections, rendered generically when present.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from .svg_plots import COSINE_FLOOR, SERIES_COLORS, bar_chart, fmt_number, strip_plot  # noqa: F401

_fmt = fmt_number

# Per-precision colours (colour-blind-safe palette); anything else gets grey.
PRECISION_COLORS = {"fp32": "#4C72B0", "fp16": "#DD8452", "int8": "#55A868", "int8-cpu": "#8172B3"}
MAX_THUMBS = 48  # per artifact: a page with thousands of thumbnails helps nobody
MAX_TABLE_ROWS = 300

_esc = html.escape


def _color(precision: str) -> str:
    return PRECISION_COLORS.get(precision, "#7f7f7f")


def _size(nbytes) -> str:
    if not isinstance(nbytes, (int, float)):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024.0
    return "-"  # pragma: no cover


def _key(r: dict) -> tuple:
    return (r.get("backend"), r.get("provider"), r.get("precision"))


def _label(r: dict) -> str:
    return f"{r.get('precision', '?')} {r.get('backend', '?')}/{r.get('provider', '?')}"


# -- SVG primitives -----------------------------------------------------------------------
def benchmark_rows(report: dict) -> list[dict]:
    """The ``benchmarks`` section as a list of dicts (it may be a list or {"results": [...]})."""
    bench = report.get("benchmarks")
    if isinstance(bench, list):
        return [b for b in bench if isinstance(b, dict)]
    if isinstance(bench, dict):
        for key in ("results", "runs", "entries"):
            if isinstance(bench.get(key), list):
                return [b for b in bench[key] if isinstance(b, dict)]
        for value in bench.values():
            if isinstance(value, list) and value and all(isinstance(b, dict) for b in value):
                return value
    return []


def _latency_for(result: dict, benches: list[dict]) -> dict | None:
    """The benchmark of the same artifact at the smallest batch (batch 1 when measured)."""
    same = [b for b in benches if _key(b) == _key(result) and isinstance(b.get("p50_ms"), (int, float))]
    if not same:
        return None
    return min(same, key=lambda b: b.get("batch") or 0)


def _artifact_bytes(manifest: dict, bundle_root: Path | None, precision: str):
    entry = (manifest.get("artifacts") or {}).get(precision)
    if not isinstance(entry, dict):
        return None, None
    nbytes = entry.get("bytes")
    if nbytes is None and bundle_root is not None and isinstance(entry.get("file"), str):
        path = bundle_root / entry["file"]
        if path.is_file():
            nbytes = path.stat().st_size
    return entry.get("file"), nbytes


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _thumbnail(image: np.ndarray, size: int = 96) -> str:
    """A small JPEG as a data URI; tiny crops (CIFAR 32x32) are enlarged without blurring."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if max(img.size) < size:
        scale = size // max(img.size) or 1
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    else:
        img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _class_name(names, idx: int) -> str:
    if names and 0 <= idx < len(names):
        return str(names[idx])
    return f"class {idx}"


# -- sections ------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]], *, table_id: str | None = None,
           row_classes: list[str] | None = None, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    idattr = f' id="{_esc(table_id)}"' if table_id else ""
    out = [f"<table{idattr}><thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f"<td>{c if raw else _esc(c)}</td>" for c in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _summary_section(report: dict, manifest: dict, root: Path | None) -> str:
    results = report.get("results", [])
    benches = benchmark_rows(report)
    header = ["precision", "backend/provider", "ONNX file", "samples", "max abs diff", "max rel diff",
              "cosine min", "cosine mean", "top-1 agree", "top-5 overlap", "latency p50", "verdict"]
    rows, classes = [], []
    for r in results:
        fname, nbytes = _artifact_bytes(manifest, root, r.get("precision"))
        lat = _latency_for(r, benches)
        latency = f"{lat['p50_ms']:.2f} ms (batch {lat.get('batch', '?')})" if lat else "not measured"
        verdict = "PASS" if r.get("passed") else "FAIL: " + "; ".join(r.get("failures", []))
        rows.append([
            _esc(r.get("precision", "?")), _esc(f"{r.get('backend')}/{r.get('provider')}"),
            _esc(f"{fname or '-'} ({_size(nbytes)})"), _esc(str(r.get("samples", "-"))),
            _esc(_fmt(r.get("max_abs_diff"))), _esc(_fmt(r.get("max_rel_diff"))),
            _esc(f"{r['cosine_min']:.6f}" if isinstance(r.get("cosine_min"), float) else "-"),
            _esc(f"{r['cosine_mean']:.6f}" if isinstance(r.get("cosine_mean"), float) else "-"),
            _esc(f"{r.get('top1_agreement', 0):.1%}"), _esc(f"{r.get('top5_overlap', 0):.1%}"),
            _esc(latency), f'<span class="badge {"pass" if r.get("passed") else "fail"}">{_esc(verdict)}</span>',
        ])
        classes.append("pass" if r.get("passed") else "fail")
    if not rows:
        return '<section id="summary-section"><h2>Summary</h2><p>No verification results yet: run ' \
               "<code>edgeport verify BUNDLE</code>.</p></section>"
    return ('<section id="summary-section"><h2>Summary</h2>\n'
            + _table(header, rows, table_id="summary", row_classes=classes, raw=True) + "</section>")


def _plots_section(report: dict, golden_names: list[str]) -> str:
    results = report.get("results", [])
    if not results:
        return ""
    cos_rows, abs_rows, agree_rows = [], [], []
    for r in results:
        tol = (r.get("tolerance") or {}).get("cosine_min")
        cos_rows.append({"label": _label(r), "color": _color(r.get("precision")), "names": golden_names,
                         "values": [1.0 - c if c is not None else None for c in r.get("per_sample_cosine", [])],
                         "threshold": (1.0 - tol) if tol is not None else None})
        abs_rows.append({"label": _label(r), "color": _color(r.get("precision")), "names": golden_names,
                         "values": list(r.get("per_sample_max_abs", []))})
        agree_rows.append({"label": _label(r), "values": [100 * r.get("top1_agreement", 0.0),
                                                          100 * r.get("top5_overlap", 0.0)]})
    parts = ['<section id="plots"><h2>Error distribution per artifact</h2>',
             "<p>Each dot is one golden image; the box spans the middle half of the images and the "
             "thick bar is the median. The dashed red mark is the tolerance (a dot right of it fails).</p>",
             strip_plot("plot-cosine", "1 - centered cosine vs PyTorch (lower is better)", cos_rows,
                        f"1 - cosine of centered logits, log scale (values below {COSINE_FLOOR:g} drawn at "
                        f"{COSINE_FLOOR:g})"),
             strip_plot("plot-maxabs", "Max |logit difference| per image vs PyTorch", abs_rows,
                        "max absolute logit difference per image, log scale"),
             "<h2>Top-1 agreement with PyTorch</h2>",
             bar_chart("plot-agreement", "Top-1 agreement and top-5 overlap (%)", agree_rows,
                       ["top-1 agreement", "top-5 overlap"], "% of golden images", xmax=100.0,
                       fmt=lambda v: f"{v:.1f}%")]
    weights = report.get("weights") or {}
    if weights.get("random_init"):
        parts.append('<p class="note">Random-init weights predict nearly the same class for every image, '
                     "so top-1 agreement proves little here; the cosine plot is the meaningful check.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _latency_section(report: dict) -> str:
    benches = benchmark_rows(report)
    parts = ['<section id="latency"><h2>Latency per artifact</h2>']
    if not benches:
        parts.append("<p>Not measured yet: <code>edgeport bench BUNDLE</code> adds latency and throughput "
                     "to report.json, and <code>edgeport report BUNDLE</code> redraws this page.</p></section>")
        return "\n".join(parts)
    rows = []
    order = {p: i for i, p in enumerate(PRECISION_COLORS)}
    for b in sorted(benches, key=lambda b: (order.get(b.get("precision"), 99), str(b.get("backend")),
                                            str(b.get("provider")), b.get("batch") or 0)):
        p50 = b.get("p50_ms")
        rows.append({"label": f"{_label(b)} b{b.get('batch', '?')}", "values": [p50],
                     "whiskers": [(b.get("p90_ms"), b.get("p99_ms") if b.get("p99_ms") is not None else p50)],
                     "colors": [_color(b.get("precision"))]})
    parts.append(bar_chart("plot-latency", "Latency per batch: p50 bar, p90 tick, p99 whisker (ms)", rows,
                           ["p50 latency"], "milliseconds per batch", fmt=lambda v: f"{v:.3g} ms"))
    meta = report.get("benchmarks") if isinstance(report.get("benchmarks"), dict) else {}
    scalars = {k: v for k, v in meta.items() if not isinstance(v, (list, dict))}
    if scalars:
        parts.append(_definition_list(scalars))
    cols = ["backend", "provider", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "throughput_ips"]
    extra = [k for b in benches for k in b if k not in cols and not isinstance(b[k], (list, dict))]
    cols += list(dict.fromkeys(extra))
    parts.append(_table(cols, [[_fmt(b.get(c)) for c in cols] for b in benches], table_id="benchmarks"))
    parts.append("</section>")
    return "\n".join(parts)


def _accuracy_section(report: dict) -> str:
    acc = report.get("accuracy")
    if not isinstance(acc, dict):
        return ""
    ref = acc.get("reference") or {}
    results = [r for r in acc.get("results", []) if isinstance(r, dict)]
    header = ["model", "backend/provider", "top-1", "top-5", "top-1 drop (points)", "top-5 drop (points)",
              "agrees with reference"]

    def pct(v):
        return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "-"

    def pts(v):
        return f"{v:+.2f}" if isinstance(v, (int, float)) else "-"

    rows = [[f"reference: {ref.get('label', 'FP32')}", f"{ref.get('backend')}/{ref.get('provider')}",
             pct(ref.get("top1")), pct(ref.get("top5")), "-", "-", "-"]]
    bars = [{"label": f"reference ({ref.get('precision', 'fp32')})",
             "values": [100 * ref.get("top1", 0.0), 100 * ref.get("top5", 0.0)]}]
    for r in results:
        rows.append([r.get("precision", "?"), f"{r.get('backend')}/{r.get('provider')}", pct(r.get("top1")),
                     pct(r.get("top5")), pts(r.get("top1_drop_points")), pts(r.get("top5_drop_points")),
                     pct(r.get("agreement_with_reference"))])
        bars.append({"label": _label(r), "values": [100 * r.get("top1", 0.0), 100 * r.get("top5", 0.0)]})
    parts = ['<section id="accuracy"><h2>Labeled accuracy</h2>',
             f"<p>{_esc(str(acc.get('samples', '?')))} labeled images from <code>{_esc(str(acc.get('data', '?')))}"
             f"</code> ({_esc(str(acc.get('layout', '')))}; labels mapped by {_esc(str(acc.get('label_source', '?')))})"
             f"; {_esc(str(acc.get('skipped', 0)))} unreadable images skipped. The reference is "
             f"{_esc(str(ref.get('description', ref.get('label', 'the FP32 ONNX graph'))))}.</p>",
             _table(header, rows, table_id="accuracy-table"),
             bar_chart("plot-accuracy", "Top-1 and top-5 accuracy (%)", bars, ["top-1", "top-5"],
                       "% of labeled images", xmax=100.0, fmt=lambda v: f"{v:.1f}%")]
    weights = report.get("weights") or {}
    if weights.get("random_init"):
        parts.append('<p class="note">Random-init weights: task accuracy is meaningless for this bundle.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _changed_section(report: dict, golden) -> str:
    results = report.get("results", [])
    changed = [(r, r.get("top1_changed") or []) for r in results]
    if not results:
        return ""
    parts = ['<section id="top1-changed"><h2>Golden images whose top-1 changed</h2>']
    if not any(idx for _, idx in changed):
        parts.append("<p>None: every artifact picks PyTorch's top-1 class on every golden image.</p></section>")
        return "\n".join(parts)
    class_names = golden.get("class_names") if golden else None
    images = golden.get("images") if golden else None
    outputs = golden.get("outputs") if golden else None
    names = (golden or {}).get("names") or []
    probs = _softmax(outputs.astype(np.float64)) if outputs is not None and len(outputs) else None
    thumbs: dict[int, str] = {}
    for r, idx in changed:
        if not idx:
            continue
        parts.append(f"<h3>{_esc(_label(r))}: {len(idx)} of {r.get('samples', '?')} images</h3><div class=\"gallery\">")
        for i in idx[:MAX_THUMBS]:
            caption = [_esc(names[i] if i < len(names) else f"#{i}")]
            if probs is not None and i < len(probs):
                order = np.argsort(-probs[i])
                top, second = int(order[0]), int(order[1]) if len(order) > 1 else int(order[0])
                margin = probs[i][top] - probs[i][second]
                caption.append(f"PyTorch: {_esc(_class_name(class_names, top))} ({probs[i][top]:.0%}, "
                               f"margin {margin:.1%} over {_esc(_class_name(class_names, second))})")
            img = ""
            if images is not None and i < len(images):
                if i not in thumbs:
                    thumbs[i] = _thumbnail(images[i])
                img = f'<img src="{thumbs[i]}" alt="{_esc(names[i] if i < len(names) else str(i))}">'
            parts.append(f"<figure>{img}<figcaption>{'<br>'.join(caption)}</figcaption></figure>")
        parts.append("</div>")
        if len(idx) > MAX_THUMBS:
            parts.append(f"<p>... and {len(idx) - MAX_THUMBS} more (indexes in report.json).</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _definition_list(d: dict) -> str:
    items = "".join(f"<dt>{_esc(str(k))}</dt><dd>{_esc(_fmt(v) if not isinstance(v, str) else v)}</dd>"
                    for k, v in d.items())
    return f"<dl>{items}</dl>"


def _cell(v) -> str:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 160 else text[:157] + "..."
    return _fmt(v)


_SEVERITY = {"error": "fail", "fail": "fail", "failed": "fail", "warning": "warn", "warn": "warn"}


def render_generic(value, *, table_id: str | None = None, depth: int = 0) -> str:
    """Any JSON value as HTML: dicts as definition lists, lists of dicts as tables."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            cols = list(dict.fromkeys(k for v in value for k in v))
            rows = [[_cell(v.get(c)) for c in cols] for v in value[:MAX_TABLE_ROWS]]
            classes = [_SEVERITY.get(str(v.get("severity", v.get("level", ""))).lower(), "")
                       for v in value[:MAX_TABLE_ROWS]]
            more = f"<p>... and {len(value) - MAX_TABLE_ROWS} more rows.</p>" if len(value) > MAX_TABLE_ROWS else ""
            return _table(cols, rows, table_id=table_id, row_classes=classes) + more
        if not value:
            return '<p class="none">(none)</p>'
        return "<ul>" + "".join(f"<li>{_esc(_cell(v))}</li>" for v in value[:MAX_TABLE_ROWS]) + "</ul>"
    if isinstance(value, dict):
        if not value:
            return '<p class="none">(none)</p>'
        scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list))}
        out = [_definition_list(scalars)] if scalars else []
        level = min(3 + depth, 6)
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                sub = f"{table_id}-{k}" if table_id else None
                out.append(f"<h{level}>{_esc(str(k))}</h{level}>"
                           + render_generic(v, table_id=sub, depth=depth + 1))
        return "\n".join(out)
    return f"<p>{_esc(_cell(value))}</p>"


def _first_table(value) -> list[dict]:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    if isinstance(value, dict):
        for v in value.values():
            found = _first_table(v)
            if found:
                return found
    return []


_NAME_KEYS = ("layer", "node", "name", "tensor", "op")
_METRIC_KEYS = ("sqnr_db", "sqnr", "cosine", "cosine_min", "top1_drop", "drop", "delta", "error", "mse", "score")


def _sensitivity_plot(value) -> str:
    """Bars of the most sensitive layers, when the section has a (name, number) table."""
    rows = _first_table(value)
    if not rows:
        return ""
    ranked_rows = [r for r in rows if isinstance(r.get("rank"), int) and isinstance(r.get("output_cosine"), (int, float))
                   and not isinstance(r.get("output_cosine"), bool)]
    if ranked_rows and "layer" in ranked_rows[0]:  # runtime/sensitivity.py: ranked by the centered cosine
        top = sorted(ranked_rows, key=lambda r: r["rank"])[:25]
        vals = [-10 * math.log10(max(1.0 - float(r["output_cosine"]), 1e-12)) for r in top]
        kept = PRECISION_COLORS["fp16"]
        bars = [{"label": _tail(str(r["layer"]), 28), "values": [v], **({"colors": [kept]} if r.get("kept_float") else {})}
                for r, v in zip(top, vals)]
        title = "Most sensitive layers in rank order (lower = more harmful)"
        if any(r.get("kept_float") for r in top):
            title += "; orange: kept out of INT8"
        return bar_chart("plot-sensitivity", title, bars, ["-10 log10(1 - cosine)"],
                         "-10 log10(1 - centered cosine) of the logits with only that layer in INT8, dB")
    name_key = next((k for k in _NAME_KEYS if k in rows[0]), None)
    metric = next((k for k in _METRIC_KEYS if all(isinstance(r.get(k), (int, float)) for r in rows)), None)
    if metric is None:
        metric = next((k for k in rows[0] if k != name_key and not isinstance(rows[0][k], bool)
                       and all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)
                               for r in rows)), None)
    if name_key is None or metric is None:
        return ""
    # Low SQNR / cosine means sensitive; for error-like metrics high means sensitive.
    ascending = "sqnr" in metric or "cosine" in metric
    ranked = sorted(rows, key=lambda r: r[metric], reverse=not ascending)[:25]
    vals = [float(r[metric]) for r in ranked]
    offset = min(0.0, min(vals))  # bars start at zero; shift when the metric can be negative
    # Layers an accuracy budget kept out of INT8 (export --max-drop) are drawn in the FP16 colour.
    kept = PRECISION_COLORS["fp16"]
    bars = [{"label": _tail(str(r[name_key]), 28), "values": [v - offset],
             **({"colors": [kept]} if r.get("kept_float") else {})} for r, v in zip(ranked, vals)]
    title = f"Most sensitive layers by {metric}" + (" (lowest first)" if ascending else " (highest first)")
    if any(r.get("kept_float") for r in ranked):
        title += "; orange: kept out of INT8"
    return bar_chart("plot-sensitivity", title, bars, [metric], metric + (f" (+{-offset:g})" if offset else ""),
                     fmt=lambda v: f"{v + offset:.3g}")


def _tail(text: str, width: int) -> str:
    return text if len(text) <= width else "\u2026" + text[-(width - 1):]


def _sensitivity_table(rows: list[dict]) -> str:
    """The ranked layers of runtime/sensitivity.py: cosine as 1 - cosine (0.99997 and 0.9958 both read
    1.000 at three digits), MAC share in percent, where each layer runs."""
    def num(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    body = [[num(r.get("rank"), "d"), str(r.get("layer")), str(r.get("op_type", "")),
             num(1 - r["output_cosine"], ".2e") if isinstance(r.get("output_cosine"), (int, float)) else "-",
             num(r.get("sqnr_db"), ".1f"),
             num(r.get("top1_agreement"), ".1%"), num(r.get("macs_share"), ".2%"),
             "kept out of INT8" if r.get("kept_float") else "INT8"] for r in rows[:MAX_TABLE_ROWS]]
    return _table(["rank", "layer", "op", "1 - cosine", "SQNR dB", "top-1 agreement", "MACs", "runs in"], body,
                  table_id="sensitivity-table", row_classes=["warn" if r.get("kept_float") else "" for r in rows])


def _optional_section(report: dict, key: str, title: str) -> str:
    if key not in report or report[key] in (None, {}, []):
        return ""
    plot = _sensitivity_plot(report[key]) if key == "sensitivity" else ""
    value = report[key]
    if key == "sensitivity" and isinstance(value, list) and value and all(
            isinstance(r, dict) and "rank" in r and "layer" in r for r in value):
        body = ("<p>Each layer quantized alone (every other layer FP32), compared with the FP32 graph at the "
                "centered logits; ranked by the mean cosine, most harmful first.</p>" + _sensitivity_table(value))
    else:
        body = render_generic(value, table_id=f"{key}-table")
    return f'<section id="{key}"><h2>{_esc(title)}</h2>\n{plot}\n' + body + "</section>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{margin:0 0 4px;font-size:26px}h2{margin:30px 0 10px;font-size:19px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}h4,h5,h6{font-size:13px;margin:12px 0 4px}.none{color:#5b6474}.meta{color:#5b6474;margin:0 0 14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border:1px solid #dde1e7;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}tr.fail td{background:#fdecec}tr.warn td{background:#fff6e0}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.badge.pass{background:#dcf3e3;color:#17672f}.badge.fail{background:#f9d7d7;color:#9b1c1c}
.verdict{font-size:15px;padding:3px 12px;margin-left:10px;vertical-align:middle}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:10px 0}
.failures{background:#fdecec;border-left:4px solid #c44e52;padding:8px 12px 8px 28px}
svg.plot{display:block;margin:10px 0 18px;max-width:100%;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:150px;font-size:11px}
figure img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;display:block}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}dt{font-weight:600}dd{margin:0}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}footer{color:#5b6474;font-size:12px;margin-top:30px}
"""


def render_html(report: dict, manifest: dict | None = None, golden: dict | None = None,
                bundle_root: Path | None = None) -> str:
    """The whole page. ``golden``: ``images``, ``outputs``, ``names`` arrays and ``class_names``
    (for the top-1-changed thumbnails); ``manifest`` gives file sizes and model facts."""
    manifest = manifest or {}
    model = manifest.get("model") or {}
    results = report.get("results", [])
    verdict = "PASS" if results and all(r.get("passed") for r in results) else "FAIL"
    weights = report.get("weights") or manifest.get("weights") or {}
    gold = report.get("golden") or {}
    golden_names = list((golden or {}).get("names") or report.get("golden_names") or [])
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        from . import __version__ as version
    except ImportError:  # pragma: no cover
        version = "?"
    title = f"edgeport report: {report.get('model', model.get('name', '?'))}"
    facts = [f"architecture {model.get('architecture', '?')}"]
    if model.get("params"):
        n = model["params"]
        facts.append(f"{n / 1e6:.2f} M parameters" if n >= 1e5 else f"{n:,} parameters")
    if model.get("gmacs"):
        facts.append(f"{model['gmacs']} GMACs")
    if manifest.get("input"):
        facts.append("input " + "x".join(str(d) for d in manifest["input"].get("shape", [])))
    facts.append(f"weights: {weights.get('description', weights.get('spec', '?'))}")
    facts.append(f"golden set: {gold.get('samples', '?')} images ({gold.get('source', '?')})")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>",
             f'<h1>{_esc(title)}<span class="badge verdict {verdict.lower()}" id="verdict">{verdict}</span></h1>',
             f'<p class="meta">{_esc("; ".join(facts))}.</p>']
    if weights.get("random_init"):
        parts.append('<p class="note">Random-init weights: only fidelity to PyTorch is meaningful here, '
                     "not task accuracy.</p>")
    failed = [r for r in results if not r.get("passed")]
    if failed:
        parts.append('<ul class="failures">' + "".join(
            f"<li><b>{_esc(_label(r))} failed</b>: {_esc('; '.join(r.get('failures', [])))}</li>" for r in failed)
            + "</ul>")
    parts.append(_summary_section(report, manifest, bundle_root))
    parts.append(_plots_section(report, golden_names))
    parts.append(_latency_section(report))
    parts.append(_accuracy_section(report))
    parts.append(_changed_section(report, golden))
    parts.append(_optional_section(report, "lint", "INT8 lint"))
    parts.append(_optional_section(report, "mixed_precision", "INT8 accuracy budget: layers kept out of INT8"))
    parts.append(_optional_section(report, "sensitivity", "Per-layer INT8 sensitivity"))
    tol = "; ".join(f"{_label(r)}: " + ", ".join(f"{k}={v}" for k, v in (r.get("tolerance") or {}).items()
                                                 if v is not None) for r in results)
    parts.append(
        "<footer><p><b>How to read this.</b> Every artifact runs the golden images and is compared with the "
        "PyTorch FP32 outputs stored in the bundle. Cosine is over centered logits (each image's mean "
        "subtracted); max rel diff is the largest logit difference relative to that image's reference logit "
        "range. NaN/Inf in any output fails the check.</p>"
        f"<p>Tolerances: {_esc(tol or '-')}.</p>"
        f"<p>Generated by edgeport {_esc(str(version))} at {now}. This page is self-contained (no scripts, "
        "no network).</p></footer>")
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def golden_for_report(bundle) -> dict | None:
    """Golden images, outputs and names from the bundle; None when they cannot be read (the
    page then shows the changed images by name only)."""
    from .errors import EdgeportError

    try:
        g = bundle.golden()
    except EdgeportError:
        return None
    return {"images": g.images, "outputs": g.outputs, "names": g.names, "class_names": bundle.class_names}


def write_html(bundle, report: dict, path: Path | None = None) -> Path:
    """Render ``report`` for ``bundle`` into ``path`` (default: BUNDLE/report.html), atomically."""
    from .report import atomic_write_text

    target = Path(path) if path else bundle.report_path("html")
    page = render_html(report, bundle.manifest.to_dict(), golden_for_report(bundle), bundle.root)
    atomic_write_text(target, page)
    return target
