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

from typing import TYPE_CHECKING

from runtime.report.engines import engines_html
from runtime.report.html_sections import (PRECISION_COLORS, PageFacts, calibration_section,  # noqa: F401
                                          definition_list, deployment_section, latency_section, lint_section,
                                          sensitivity_section)
from runtime.report.diagnosis_sections import diagnosis_html
from runtime.report.html_sections import color as _color
from runtime.report.html_sections import label as _label
from runtime.report.html_sections import table as _table
from runtime.report import numbers
from runtime.report.numbers import words
from runtime.report.svg_plots import COSINE_FLOOR, SERIES_COLORS, bar_chart, fmt_number, strip_plot  # noqa: F401

if TYPE_CHECKING:
    from runtime.benchmark import BenchmarkResult, Latency
    from runtime.compare import Comparison
    from runtime.labeled import LabeledAccuracy
    from runtime.manifest import Manifest
    from runtime.report.document import Report

_fmt = fmt_number
MAX_THUMBS = 48  # per artifact: a page with thousands of thumbnails helps nobody
MAX_TABLE_ROWS = 300

_esc = html.escape


# -- data helpers -------------------------------------------------------------------------
def _latency_for(result: Comparison, bench: BenchmarkResult | None) -> Latency | None:
    """The benchmark of the same artifact at the smallest batch (batch 1 when measured)."""
    same = [b for b in (bench.results if bench else []) if (b.backend, b.provider, b.precision) == result.key
            and isinstance(b.p50_ms, (int, float))]
    return min(same, key=lambda b: b.batch or 0) if same else None


def _artifact_bytes(manifest: Manifest | None, bundle_root: Path | None, precision: str):
    entry = manifest.artifacts.get(precision) if manifest else None
    if entry is None:
        return None, None
    nbytes = entry.bytes
    if nbytes is None and bundle_root is not None and (bundle_root / entry.file).is_file():
        nbytes = (bundle_root / entry.file).stat().st_size
    return entry.file, nbytes


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
_SUMMARY_HEADER = ["precision", "backend/provider", "ONNX file", "samples", "max abs diff", "max rel diff",
                   "cosine min", "cosine mean", "top-1 agree", "top-5 overlap", "latency p50", "verdict"]


def _summary_row(r: Comparison, report: Report, manifest: Manifest | None, root: Path | None) -> list[str]:
    fname, nbytes = _artifact_bytes(manifest, root, r.precision)
    lat = _latency_for(r, report.benchmarks)
    latency = f"{numbers.ms(lat.p50_ms)} (batch {lat.batch})" if lat else "not measured"
    verdict = "PASS" if r.passed else "FAIL: " + "; ".join(r.failures)
    return [_esc(r.precision), _esc(f"{r.backend}/{r.provider}"), _esc(f"{fname or '-'} ({numbers.size(nbytes)})"),
            _esc(str(r.samples)), _esc(_fmt(r.max_abs_diff)), _esc(_fmt(r.max_rel_diff)),
            _esc(f"{r.cosine_min:.6f}"), _esc(f"{r.cosine_mean:.6f}"), _esc(f"{r.top1_agreement:.1%}"),
            _esc(f"{r.top5_overlap:.1%}"), _esc(latency),
            f'<span class="badge {"pass" if r.passed else "fail"}">{_esc(verdict)}</span>']


def _summary_section(report: Report, manifest: Manifest | None, root: Path | None) -> str:
    if not report.results:
        return '<section id="summary-section"><h2>Summary</h2><p>No verification results yet: run ' \
               "<code>edgeport verify BUNDLE</code>.</p></section>"
    rows = [_summary_row(r, report, manifest, root) for r in report.results]
    classes = ["pass" if r.passed else "fail" for r in report.results]
    return ('<section id="summary-section"><h2>Summary</h2>\n'
            + _table(_SUMMARY_HEADER, rows, table_id="summary", row_classes=classes, raw=True) + "</section>")


def _reference_short(report: Report) -> str:
    """How the page names the reference in short labels: PyTorch, or ONNX Runtime FP32 of a given model."""
    return "PyTorch" if (report.reference or "PyTorch FP32") == "PyTorch FP32" else "the ONNX reference"


def _outputs_section(report: Report) -> str:
    """Multi-output models: the further outputs' comparison per artifact (html_sections.output_rows)."""
    from runtime.report.html_sections import OUTPUTS_HEADER, output_rows

    rows = output_rows(report.results)
    if not rows:
        return ""
    # The verdict column as the summary's badges; the other cells are bundle text, escaped.
    cells = [[_esc(c) for c in row[:-1]] + [f'<span class="badge {row[-1].lower()}">{_esc(row[-1])}</span>']
             for row in rows]
    classes = ["" if row[-1] == "PASS" else "fail" for row in rows]
    return ('<section id="outputs"><h2>Further outputs</h2><p>The summary compares the classifier output; '
            "every other output of the model is compared here with the same tolerance (top-1 agreement "
            "aside). A failing output fails its artifact.</p>\n"
            + _table(OUTPUTS_HEADER, cells, table_id="outputs-table", row_classes=classes, raw=True) + "</section>")


def _plot_rows(results: list[Comparison], golden_names: list[str]) -> tuple[list, list, list]:
    cos_rows, abs_rows, agree_rows = [], [], []
    for r in results:
        tol = r.tolerance.get("cosine_min")
        cos_rows.append({"label": _label(r), "color": _color(r.precision), "names": golden_names,
                         "values": [1.0 - c if c is not None else None for c in r.per_sample_cosine],
                         "threshold": (1.0 - tol) if tol is not None else None})
        abs_rows.append({"label": _label(r), "color": _color(r.precision), "names": golden_names,
                         "values": list(r.per_sample_max_abs)})
        agree_rows.append({"label": _label(r), "values": [100 * r.top1_agreement, 100 * r.top5_overlap]})
    return cos_rows, abs_rows, agree_rows


def _plots_section(report: Report, golden_names: list[str]) -> str:
    if not report.results:
        return ""
    cos_rows, abs_rows, agree_rows = _plot_rows(report.results, golden_names)
    ref = _reference_short(report)
    parts = ['<section id="plots"><h2>Error distribution per artifact</h2>',
             "<p>Each dot is one golden image; the box spans the middle half of the images and the "
             "thick bar is the median. The dashed red mark is the tolerance (a dot right of it fails).</p>",
             strip_plot("plot-cosine", f"1 - centered cosine vs {ref} (lower is better)", cos_rows,
                        f"1 - cosine of centered logits, log scale (values below {COSINE_FLOOR:g} drawn at "
                        f"{COSINE_FLOOR:g})"),
             _pinned_note("plot-cosine-note", cos_rows, "1 - cosine"),
             strip_plot("plot-maxabs", f"Max |logit difference| per image vs {ref}", abs_rows,
                        "max absolute logit difference per image, log scale"),
             _pinned_note("plot-maxabs-note", abs_rows, "max |logit difference|"),
             f"<h2>Top-1 agreement with {_esc(ref)}</h2>",
             bar_chart("plot-agreement", "Top-1 agreement and top-5 overlap (%)", agree_rows,
                       ["top-1 agreement", "top-5 overlap"], "% of golden images", xmax=100.0,
                       fmt=lambda v: f"{v:.1f}%")]
    if report.weights.get("random_init"):
        parts.append('<p class="note">Random-init weights predict nearly the same class for every image, '
                     "so top-1 agreement proves little here; the cosine plot is the meaningful check.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _pinned_note(note_id: str, rows: list[dict], what: str) -> str:
    """Under a log-scale strip plot: how many values lay below its axis and were drawn at its left
    edge (an exact 0, common for FP32, has no place on a log scale)."""
    values = [v for r in rows for v in r["values"] if v is not None and v == v and abs(v) != float("inf")]
    pinned = sum(1 for v in values if v < COSINE_FLOOR)
    if not pinned:
        return ""
    return (f'<p class="note" id="{note_id}">{pinned} of {len(values)} values of the {_esc(what)} plot are below '
            f"{COSINE_FLOOR:g} (exactly 0 for {sum(1 for v in values if v == 0)}) and are drawn at "
            f"{COSINE_FLOOR:g}, the left edge of the axis.</p>")


def _accuracy_table(acc: LabeledAccuracy) -> tuple[list, list]:
    """The labeled-accuracy table rows and chart bars, the reference first."""
    def pct(v):
        return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "-"

    def pts(v):
        return f"{v:+.2f}" if isinstance(v, (int, float)) else "-"

    ref = acc.reference
    rows = [[f"reference: {ref.label}", f"{ref.backend}/{ref.provider}", pct(ref.top1), pct(ref.top5), "-", "-", "-"]]
    bars = [{"label": f"reference ({ref.precision})", "values": [100 * ref.top1, 100 * ref.top5]}]
    for r in acc.results:
        rows.append([r.precision, f"{r.backend}/{r.provider}", pct(r.top1), pct(r.top5), pts(r.top1_drop_points),
                     pts(r.top5_drop_points), pct(r.agreement_with_reference)])
        bars.append({"label": _label(r), "values": [100 * r.top1, 100 * r.top5]})
    return rows, bars


def _accuracy_section(report: Report) -> str:
    acc = report.accuracy
    if acc is None:
        return ""
    header = ["model", "backend/provider", "top-1", "top-5", "top-1 drop (points)", "top-5 drop (points)",
              "agrees with reference"]
    rows, bars = _accuracy_table(acc)
    parts = ['<section id="accuracy"><h2>Labeled accuracy</h2>',
             f"<p>{_esc(str(acc.samples))} labeled images from <code>{_esc(str(acc.data))}"
             f"</code> ({_esc(str(acc.layout))}; labels mapped by {_esc(str(acc.label_source))})"
             f"; {_esc(str(acc.skipped))} unreadable images skipped. The reference is "
             f"{_esc(str(acc.reference.description))}.</p>",
             _table(header, rows, table_id="accuracy-table"),
             bar_chart("plot-accuracy", "Top-1 and top-5 accuracy (%)", bars, ["top-1", "top-5"],
                       "% of labeled images", xmax=100.0, fmt=lambda v: f"{v:.1f}%")]
    if report.weights.get("random_init"):
        parts.append('<p class="note">Random-init weights: task accuracy is meaningless for this bundle.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _flip_caption(i: int, name: str, r: Comparison, to: int | None, probs, class_names,
                  ref_name: str = "PyTorch") -> list[str]:
    """Caption lines of one changed image: the reference's class and the artifact's, by name."""
    caption = [f'<b class="name">{_esc(name)}</b>']
    p = probs[i] if probs is not None and i < len(probs) else None
    if p is not None:
        ref = int(np.argmax(p))
        caption.append(f'<span class="ref">{_esc(ref_name)}: {_esc(_class_name(class_names, ref))} ({p[ref]:.0%})</span>')
    if to is None:
        caption.append(f"{_esc(r.precision)}: not recorded (run <code>edgeport verify</code> again)")
    else:
        ref_p = f" ({_esc(ref_name)} gave it {p[to]:.0%})" if p is not None and 0 <= to < len(p) else ""
        caption.append(f'<span class="got">{_esc(r.precision)}: '
                       f"{_esc(_class_name(class_names, to))}{ref_p}</span>")
    return caption


def _changed_section(report: Report, golden) -> str:
    """Thumbnails of the golden images whose top-1 changed, with both predictions (class names
    when the bundle has them) and the reference's probabilities: flips happen on near ties."""
    results = report.results
    changed = [(r, r.top1_changed) for r in results]
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
        to = r.top1_changed_to
        parts.append(f"<h3>{_esc(_label(r))}: {len(idx)} of {r.samples} images</h3><div class=\"gallery\">")
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


def _cell(v, key=None) -> str:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 160 else text[:157] + "..."
    if str(key).endswith("_share"):  # a fraction (int8_macs_share): a percentage that never rounds to 100%
        return numbers.percent(v)
    if isinstance(v, float) and 1e-2 <= abs(v) < 1e5:
        return numbers.significant(v, 3)  # 1.0 -> "1", 0.4 -> "0.4": no padded decimals
    return _fmt(v)


_SEVERITY = {"error": "fail", "fail": "fail", "failed": "fail", "warning": "warn", "warn": "warn"}


def render_generic(value, *, table_id: str | None = None, depth: int = 0) -> str:
    """Any JSON value as HTML: dicts as definition lists, lists of dicts as tables."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            cols = list(dict.fromkeys(k for v in value for k in v))
            rows = [[_cell(v.get(c), c) for c in cols] for v in value[:MAX_TABLE_ROWS]]
            classes = [_SEVERITY.get(str(v.get("severity", v.get("level", ""))).lower(), "")
                       for v in value[:MAX_TABLE_ROWS]]
            more = f"<p>... and {len(value) - MAX_TABLE_ROWS} more rows.</p>" if len(value) > MAX_TABLE_ROWS else ""
            return _table([words(c) for c in cols], rows, table_id=table_id, row_classes=classes) + more
        if not value:
            return '<p class="none">None.</p>'
        return "<ul>" + "".join(f"<li>{_esc(_cell(v))}</li>" for v in value[:MAX_TABLE_ROWS]) + "</ul>"
    if isinstance(value, dict):
        if not value:
            return '<p class="none">None.</p>'
        scalars = {words(k): _cell(v, k) for k, v in value.items() if not isinstance(v, (dict, list))}
        out = [_definition_list(scalars)] if scalars else []
        level = min(3 + depth, 6)
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                sub = f"{table_id}-{k}" if table_id else None
                out.append(f"<h{level}>{_esc(words(k))}</h{level}>"
                           + render_generic(v, table_id=sub, depth=depth + 1))
        return "\n".join(out)
    return f"<p>{_esc(_cell(value))}</p>"


def _generic_section(key: str, value, title: str) -> str:
    """A section without a renderer of its own: its report.json value, as tables and lists."""
    if value in (None, {}, []):
        return ""
    return f'<section id="{key}"><h2>{_esc(title)}</h2>\n' + render_generic(value, table_id=f"{key}-table") + "</section>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{margin:0 0 4px;font-size:26px}h2{margin:30px 0 10px;font-size:19px;border-bottom:1px solid #e3e6eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}h4,h5,h6{font-size:13px;margin:12px 0 4px}.none{color:#5b6474}.meta{color:#5b6474;margin:0 0 14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border:1px solid #dde1e7;padding:5px 8px;text-align:left;vertical-align:top}
td,dd,figcaption,.meta,li,p{overflow-wrap:break-word}td.long,figcaption .name{overflow-wrap:anywhere}
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


def _facts(report: Report, manifest: Manifest | None) -> list[str]:
    """The line under the title: architecture, size, input, weights, golden set, reference."""
    weights = report.weights or (manifest.weights.to_dict() if manifest else {})
    facts = numbers.model_facts(manifest)
    facts.append(f"weights: {weights.get('description', weights.get('spec', '?'))}")
    facts.append(f"golden set: {report.golden.get('samples', '?')} images ({report.golden.get('source', '?')})")
    facts.append(f"reference: {_reference_long(report, manifest)}")
    return facts


def _reference_long(report: Report, manifest: Manifest | None) -> str:
    return report.reference or ("ONNX Runtime FP32 of the given model"
                                if manifest and manifest.reference == "onnx" else "PyTorch FP32")


def _head(report: Report, manifest: Manifest | None) -> list[str]:
    """The page head, title, verdict, facts and the failures."""
    title = f"edgeport report: {report.model or (manifest.model.name if manifest else '?')}"
    verdict = "PASS" if report.passed else "FAIL"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>",
             f'<h1>{_esc(title)}<span class="badge verdict {verdict.lower()}" id="verdict">{verdict}</span></h1>',
             f'<p class="meta">{_esc("; ".join(_facts(report, manifest)))}.</p>']
    weights = report.weights or (manifest.weights.to_dict() if manifest else {})
    if weights.get("random_init"):
        parts.append('<p class="note">Random-init weights: only fidelity to PyTorch is meaningful here, '
                     "not task accuracy.</p>")
    failed = [r for r in report.results if not r.passed]
    if failed:
        parts.append('<ul class="failures">' + "".join(
            f"<li><b>{_esc(_label(r))} failed</b>: {_esc('; '.join(r.failures))}</li>" for r in failed) + "</ul>")
    return parts


def _footer(report: Report, manifest: Manifest | None) -> str:
    try:
        from runtime import __version__ as version
    except ImportError:  # pragma: no cover
        version = "?"
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    tol = "; ".join(f"{_label(r)}: {numbers.tolerance(r.tolerance)}" for r in report.results)
    return ("<footer><p><b>How to read this.</b> Every artifact runs the golden images and is compared with the "
            f"{_esc(_reference_long(report, manifest))} outputs stored in the bundle. Cosine is over centered logits "
            "(each image's mean subtracted); max rel diff is the largest logit difference relative to that "
            "image's reference logit range. NaN/Inf in any output fails the check.</p>"
            f"<p>Tolerances: {_esc(tol or '-')}.</p>"
            f"<p>Generated by edgeport {_esc(str(version))} at {now}. This page is self-contained (no scripts, "
            "no network).</p></footer>")


def render_html(report: Report, manifest: Manifest | None = None, golden: dict | None = None,
                bundle_root: Path | None = None, page_facts: PageFacts | None = None) -> str:
    """The whole page. ``golden``: ``images``, ``outputs``, ``names`` arrays and ``class_names``
    (for the top-1-changed thumbnails); ``manifest`` gives file sizes and model facts; ``page_facts``
    (``PageFacts.of(bundle)``) the calibration and deployment sections."""
    golden_names = list((golden or {}).get("names") or report.verification.golden_names or [])
    parts = _head(report, manifest)
    parts += [_summary_section(report, manifest, bundle_root), diagnosis_html(report.int8_diagnosis),
              _outputs_section(report),
              _plots_section(report, golden_names), latency_section(report.benchmarks), _accuracy_section(report),
              _changed_section(report, golden), calibration_section(page_facts), deployment_section(page_facts),
              lint_section(report.lint),
              engines_html(report.engines),
              _generic_section("mixed_precision", report.mixed_precision.data if report.mixed_precision else None,
                               "INT8 accuracy budget: layers kept out of INT8"),
              sensitivity_section(report.sensitivity, "Per-layer INT8 sensitivity")]
    parts += [_footer(report, manifest), "</main></body></html>"]
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


def write_html(bundle, report: Report, path: Path | None = None) -> Path:
    """Render ``report`` for ``bundle`` into ``path`` (default: BUNDLE/report.html), atomically."""
    from runtime.fsutil import atomic_write_text

    target = Path(path) if path else bundle.report_path("html")
    page = render_html(report, bundle.manifest, golden_for_report(bundle), bundle.root, PageFacts.of(bundle))
    atomic_write_text(target, page)
    return target
