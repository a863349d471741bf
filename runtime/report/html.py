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
from pathlib import Path

import numpy as np

from runtime.report.engines import engines_html
from runtime.report.html_sections import (PRECISION_COLORS, PageFacts, benchmark_rows, calibration_section, definition_list, deployment_section, is_sensitivity_rows, latency_section, sensitivity_section)
from runtime.report.html_sections import color as _color
from runtime.report.html_sections import label as _label
from runtime.report.html_sections import table as _table
from runtime.report.svg_plots import COSINE_FLOOR, SERIES_COLORS, bar_chart, fmt_number, strip_plot  # noqa: F401

_fmt = fmt_number
MAX_THUMBS = 48  # per artifact: a page with thousands of thumbnails helps nobody
MAX_TABLE_ROWS = 300

_esc = html.escape


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


# -- data helpers -------------------------------------------------------------------------
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

    arr = np.ascontiguousarray(image, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:  # a grayscale (1-channel) crop
        arr = arr[:, :, 0]
    img = Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
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


def _reference_short(report: dict) -> str:
    """How the page names the reference in short labels: PyTorch, or ONNX Runtime FP32 of a given model."""
    return "PyTorch" if (report.get("reference") or "PyTorch FP32") == "PyTorch FP32" else "the ONNX reference"


def _outputs_section(report: dict) -> str:
    """Multi-output models: the further outputs' comparison per artifact (html_sections.output_rows)."""
    from runtime.report.html_sections import OUTPUTS_HEADER, output_rows

    rows = output_rows(report.get("results", []))
    if not rows:
        return ""
    return ('<section id="outputs"><h2>Further outputs</h2><p>The summary compares the classifier output; '
            "every other output of the model is compared here with the same tolerance (top-1 agreement "
            "aside). A failing output fails its artifact.</p>\n"
            + _table(OUTPUTS_HEADER, rows, table_id="outputs-table") + "</section>")


def _plots_section(report: dict, golden_names: list[str]) -> str:
    results = report.get("results", [])
    if not results:
        return ""
    cos_rows, abs_rows, agree_rows = [], [], []
    ref = _reference_short(report)
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
             strip_plot("plot-cosine", f"1 - centered cosine vs {ref} (lower is better)", cos_rows,
                        f"1 - cosine of centered logits, log scale (values below {COSINE_FLOOR:g} drawn at "
                        f"{COSINE_FLOOR:g})"),
             strip_plot("plot-maxabs", f"Max |logit difference| per image vs {ref}", abs_rows,
                        "max absolute logit difference per image, log scale"),
             f"<h2>Top-1 agreement with {_esc(ref)}</h2>",
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
    bench = report.get("benchmarks")
    machine = bench.get("machine") if isinstance(bench, dict) and isinstance(bench.get("machine"), dict) else None
    return latency_section(benchmark_rows(report), machine)


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


def _flip_caption(i: int, name: str, r: dict, to: int | None, probs, class_names,
                  ref_name: str = "PyTorch") -> list[str]:
    """Caption lines of one changed image: the reference's class and the artifact's, by name."""
    caption = [f"<b>{_esc(name)}</b>"]
    p = probs[i] if probs is not None and i < len(probs) else None
    if p is not None:
        ref = int(np.argmax(p))
        caption.append(f'<span class="ref">{_esc(ref_name)}: {_esc(_class_name(class_names, ref))} ({p[ref]:.0%})</span>')
    if to is None:
        caption.append(f"{_esc(r.get('precision', '?'))}: not recorded (run <code>edgeport verify</code> again)")
    else:
        ref_p = f" ({_esc(ref_name)} gave it {p[to]:.0%})" if p is not None and 0 <= to < len(p) else ""
        caption.append(f'<span class="got">{_esc(r.get("precision", "?"))}: '
                       f"{_esc(_class_name(class_names, to))}{ref_p}</span>")
    return caption


def _changed_section(report: dict, golden) -> str:
    """Thumbnails of the golden images whose top-1 changed, with both predictions (class names
    when the bundle has them) and the reference's probabilities: flips happen on near ties."""
    results = report.get("results", [])
    changed = [(r, r.get("top1_changed") or []) for r in results]
    if not results:
        return ""
    parts = ['<section id="top1-changed"><h2>Golden images whose top-1 changed</h2>']
    if not any(idx for _, idx in changed):
        parts.append(f"<p>None: every artifact picks {_esc(_reference_short(report))}'s top-1 class on every "
                     "golden image.</p></section>")
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
        to = r.get("top1_changed_to") or []
        parts.append(f"<h3>{_esc(_label(r))}: {len(idx)} of {r.get('samples', '?')} images</h3><div class=\"gallery\">")
        for k, i in enumerate(idx[:MAX_THUMBS]):
            name = names[i] if i < len(names) else f"#{i}"
            caption = _flip_caption(i, name, r, to[k] if k < len(to) else None, probs, class_names,
                                    _reference_short(report))
            img = ""
            if images is not None and i < len(images):
                if i not in thumbs:
                    thumbs[i] = _thumbnail(images[i])
                img = f'<img src="{thumbs[i]}" alt="{_esc(name)}">'
            parts.append(f"<figure>{img}<figcaption>{'<br>'.join(caption)}</figcaption></figure>")
        parts.append("</div>")
        if len(idx) > MAX_THUMBS:
            parts.append(f"<p>... and {len(idx) - MAX_THUMBS} more (indexes in report.json).</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _definition_list(d: dict) -> str:
    return definition_list(d)


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


def _optional_section(report: dict, key: str, title: str) -> str:
    if key not in report or report[key] in (None, {}, []):
        return ""
    value = report[key]
    if key == "sensitivity" and is_sensitivity_rows(value):
        return sensitivity_section(value, title)
    return f'<section id="{key}"><h2>{_esc(title)}</h2>\n' + render_generic(value, table_id=f"{key}-table") + "</section>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{margin:0 0 4px;font-size:26px}h2{margin:30px 0 10px;font-size:19px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}h4,h5,h6{font-size:13px;margin:12px 0 4px}.none{color:#5b6474}.meta{color:#5b6474;margin:0 0 14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border:1px solid #dde1e7;padding:5px 8px;text-align:left;vertical-align:top}
td,dd,figcaption,.meta,li,p{overflow-wrap:anywhere}
th{background:#eef1f5;font-weight:600}tr.fail td{background:#fdecec}tr.warn td{background:#fff6e0}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.badge.pass{background:#dcf3e3;color:#17672f}.badge.fail{background:#f9d7d7;color:#9b1c1c}
.verdict{font-size:15px;padding:3px 12px;margin-left:10px;vertical-align:middle}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:8px 12px;margin:10px 0}
.failures{background:#fdecec;border-left:4px solid #c44e52;padding:8px 12px 8px 28px}
svg.plot{display:block;margin:10px 0 18px;max-width:100%;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:160px;font-size:11px}
figcaption .ref{color:#4C72B0}figcaption .got{color:#9b1c1c;font-weight:600}
figure img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;display:block}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 14px;font-size:13px}dt{font-weight:600}dd{margin:0}
pre{background:#eef1f5;padding:10px 12px;border-radius:4px;font-size:13px;white-space:pre-wrap;overflow-wrap:anywhere}
pre code{padding:0}details{margin:8px 0}summary{cursor:pointer;font-size:13px;color:#2f4b7c}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}footer{color:#5b6474;font-size:12px;margin-top:30px}
"""


def render_html(report: dict, manifest: dict | None = None, golden: dict | None = None,
                bundle_root: Path | None = None, page_facts: PageFacts | None = None) -> str:
    """The whole page. ``golden``: ``images``, ``outputs``, ``names`` arrays and ``class_names``
    (for the top-1-changed thumbnails); ``manifest`` gives file sizes and model facts; ``page_facts``
    (``PageFacts.of(bundle)``) the calibration and deployment sections."""
    manifest = manifest or {}
    model = manifest.get("model") or {}
    results = report.get("results", [])
    verdict = "PASS" if results and all(r.get("passed") for r in results) else "FAIL"
    weights = report.get("weights") or manifest.get("weights") or {}
    gold = report.get("golden") or {}
    golden_names = list((golden or {}).get("names") or report.get("golden_names") or [])
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    try:
        from runtime import __version__ as version
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
    reference = report.get("reference") or ("ONNX Runtime FP32 of the given model"
                                            if manifest.get("reference") == "onnx" else "PyTorch FP32")
    facts.append(f"reference: {reference}")
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
    parts.append(_outputs_section(report))
    parts.append(_plots_section(report, golden_names))
    parts.append(_latency_section(report))
    parts.append(_accuracy_section(report))
    parts.append(_changed_section(report, golden))
    parts.append(calibration_section(page_facts))
    parts.append(deployment_section(page_facts))
    parts.append(_optional_section(report, "lint", "INT8 lint"))
    parts.append(engines_html(report))
    parts.append(_optional_section(report, "mixed_precision", "INT8 accuracy budget: layers kept out of INT8"))
    parts.append(_optional_section(report, "sensitivity", "Per-layer INT8 sensitivity"))
    tol = "; ".join(f"{_label(r)}: " + ", ".join(f"{k}={v}" for k, v in (r.get("tolerance") or {}).items()
                                                 if v is not None) for r in results)
    parts.append(
        "<footer><p><b>How to read this.</b> Every artifact runs the golden images and is compared with the "
        f"{_esc(reference)} outputs stored in the bundle. Cosine is over centered logits (each image's mean "
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
    from runtime.errors import EdgeportError

    try:
        g = bundle.golden()
    except EdgeportError:
        return None
    return {"images": g.images, "outputs": g.outputs, "names": g.names, "class_names": bundle.class_names}


def write_html(bundle, report: dict, path: Path | None = None) -> Path:
    """Render ``report`` for ``bundle`` into ``path`` (default: BUNDLE/report.html), atomically."""
    from runtime.fsutil import atomic_write_text

    target = Path(path) if path else bundle.report_path("html")
    page = render_html(report, bundle.manifest.to_dict(), golden_for_report(bundle), bundle.root, PageFacts.of(bundle))
    atomic_write_text(target, page)
    return target
