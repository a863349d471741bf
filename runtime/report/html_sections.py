"""report.html sections about where and how the numbers were made: latency with its machine,
INT8 calibration, deployment facts with the next commands, and per-layer INT8 sensitivity.

Also the HTML primitives the page shares (tables, definition lists, colours). Tables carry
human column names with units; report.html's CSS lets long cells wrap, so a 1280 px window
never needs a horizontal scrollbar (tests/runtime/report/test_report_html.py measures it in Chromium).
"""

from __future__ import annotations

import dataclasses
import html
import math
import re
from typing import TYPE_CHECKING

from runtime.bundle import FEW_CALIBRATION_SAMPLES
from runtime.precision import PRECISIONS, quantized_keys
from runtime.report import numbers
from runtime.report.svg_plots import bar_chart, fmt_number

if TYPE_CHECKING:
    from runtime.benchmark import BenchmarkResult, Latency
    from runtime.compare import Comparison
    from runtime.report.sections import Sensitivity, SensitivityRow

_esc = html.escape
# Per-precision colours (the registry's colour-blind-safe palette); anything else gets grey.
PRECISION_COLORS = {p.key: p.color for p in PRECISIONS.values()}
SENSITIVITY_SHOWN = 20  # rows and bars before the rest of the sensitivity ranking is folded
# The one quantity the sensitivity chart plots and its table column shows, under one name.
SENSITIVITY_METRIC = "1 \u2212 cosine"
FEW_CALIBRATION_IMAGES = FEW_CALIBRATION_SAMPLES  # below this the calibration section warns


def color(precision: str) -> str:
    return PRECISION_COLORS.get(precision, "#7f7f7f")


def label(r) -> str:
    """``precision backend/provider`` of a result row (Comparison, Latency, AccuracyRow)."""
    return f"{r.precision} {r.backend}/{r.provider}"


# A cell word longer than this (a path, an ONNX node name) may break anywhere; shorter words wrap
# only between words. Breaking every cell anywhere lets the table squeeze columns below their
# words ("1.00000" / "0"), since the browser then sizes each column down to one character.
LONG_WORD = 24


def cell(text: str, raw: bool = False) -> str:
    """One <td>: ``class="long"`` (CSS: overflow-wrap anywhere) when a word of it is longer than LONG_WORD."""
    plain = re.sub(r"<[^>]*>", " ", text) if raw else text
    long = any(len(w) > LONG_WORD for w in plain.split())
    attr = ' class="long"' if long else ""
    return f"<td{attr}>{text if raw else _esc(text)}</td>"


def table(header: list[str], rows: list[list[str]], *, table_id: str | None = None,
          row_classes: list[str] | None = None, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    idattr = f' id="{_esc(table_id)}"' if table_id else ""
    out = [f"<table{idattr}><thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(cell(c, raw) for c in row)
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def definition_list(items: dict, *, list_id: str | None = None, raw: bool = False) -> str:
    """``{term: value}`` as a <dl>; values are escaped unless ``raw``."""
    idattr = f' id="{_esc(list_id)}"' if list_id else ""
    body = "".join(f"<dt>{_esc(str(k))}</dt><dd>{v if raw else _esc(v if isinstance(v, str) else fmt_number(v))}</dd>"
                   for k, v in items.items())
    return f"<dl{idattr}>{body}</dl>"


@dataclasses.dataclass(frozen=True)
class PageFacts:
    """What the page needs from the bundle itself (read through ``Bundle``'s properties)."""

    folder: str  # the bundle folder's name, as the device commands use it
    opset: int | None
    batch_range: tuple[int, int]
    input_name: str
    output_name: str
    preprocessing: dict
    artifacts: dict  # precision -> file name
    versions: dict
    calibration: dict  # quantized precision -> runtime.bundle.CalibrationInfo

    @classmethod
    def of(cls, bundle) -> "PageFacts":
        calibration = {p: bundle.calibration(p) for p in quantized_keys()}
        m = bundle.manifest
        return cls(folder=bundle.root.name, opset=m.opset, batch_range=(bundle.min_batch, bundle.max_batch),
                   input_name=bundle.input_name,
                   output_name=", ".join([f"{bundle.output_name} (classifier)"] + [o.name for o in bundle.outputs[1:]])
                   if len(bundle.outputs) > 1 else bundle.output_name,
                   preprocessing=bundle.preprocessing.to_dict(), artifacts=bundle.artifact_files,
                   versions={str(k): str(v) for k, v in (m.versions or {}).items()},
                   calibration={k: v for k, v in calibration.items() if v})


# -- latency ---------------------------------------------------------------------------------------
BENCH_COLUMNS = [  # (header, result key, format)
    ("precision", "precision", str), ("backend / provider", None, None), ("artifact", "artifact", str),
    ("batch", "batch", str), ("threads", "threads", numbers.threads),
    ("p50 (ms)", "p50_ms", "ms"), ("p90 (ms)", "p90_ms", "ms"), ("p99 (ms)", "p99_ms", "ms"),
    ("mean (ms)", "mean_ms", "ms"), ("throughput (img/s)", "throughput_ips", "ips"), ("timed calls", "iterations", str),
]


def _bench_cell(b: Latency, key, kind) -> str:
    if key is None:
        return f"{b.backend}/{b.provider}"
    v = getattr(b, key)
    if v is None:
        return "-" if key != "threads" else kind(v)
    if kind == "ms":
        return numbers.ms_value(v)
    if kind == "ips":
        return numbers.rate(v)
    return kind(v)


def machine_facts(machine: dict, results: list[Latency]) -> dict:
    """The benchmark's machine as {term: text}: CPU, cores, threads, GPU, libraries, load, time."""
    facts = {"CPU": f"{machine.get('cpu', '?')} ({machine.get('arch', '?')})",
             "cores": f"{machine.get('usable_cores', '?')} usable of {machine.get('logical_cores', '?')} logical",
             "threads": "ONNX Runtime's default (one per physical core)" if machine.get("threads") is None
             else str(machine["threads"]),
             "INT8 dot product (VNNI)": "yes" if machine.get("vnni") else "no"}
    if machine.get("gpu"):
        facts["GPU"] = str(machine["gpu"])
    facts["OS"] = f"{machine.get('os', '?')} (host {machine.get('hostname', '?')})"
    versions = machine.get("versions") or {}
    if versions:
        facts["libraries"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    before, after = machine.get("load_avg_before"), machine.get("load_avg_after")
    if before or after:
        def fmt(load):
            return " / ".join(str(x) for x in load) if load else "?"
        facts["load average (1 / 5 / 15 min)"] = f"{fmt(before)} before, {fmt(after)} after"
    stamps = sorted(str(r.measured_at) for r in results if r.measured_at)
    if stamps:
        first, last = stamps[0].replace("T", " ")[:16], stamps[-1].replace("T", " ")[:16]
        facts["measured (UTC)"] = first if first == last else f"{first} to {last}"
    return facts


def _busy_note(machine: dict) -> str:
    """A warning when the 1-minute load was above half the usable cores: other work competed."""
    loads = [x for x in (machine.get("load_avg_before"), machine.get("load_avg_after")) if x]
    cores = machine.get("usable_cores")
    if not loads or not isinstance(cores, int) or cores < 1:
        return ""
    peak = max(float(x[0]) for x in loads)
    if peak <= cores / 2:
        return ""
    return (f'<p class="note">The machine was busy while measuring (1-minute load {peak:g} on {cores} usable '
            "cores): other processes competed for the CPU, so these latencies are slower and noisier than on "
            "an idle machine.</p>")


def latency_section(bench: BenchmarkResult | None) -> str:
    """Latency chart, the machine it ran on, and the table with human column names and units."""
    benches, machine = (bench.results, bench.machine) if bench else ([], None)
    parts = ['<section id="latency"><h2>Latency per artifact</h2>']
    if not benches:
        parts.append("<p>Not measured yet: <code>edgeport bench BUNDLE</code> adds latency and throughput "
                     "to report.json, and <code>edgeport report BUNDLE</code> redraws this page.</p></section>")
        return "\n".join(parts)
    warmups = sorted({b.warmup for b in benches if isinstance(b.warmup, int)})
    plural = "" if warmups == [1] else "s"
    warm = f" after {'/'.join(map(str, warmups))} untimed warm-up call{plural}" if warmups else ""
    parts.append(f"<p>One number = one call of edgeport's runner on a batch of golden images{_esc(warm)}; "
                 "throughput = images per second over the timed calls. Latency means little without the "
                 "machine and its load, listed under the chart.</p>")
    order = {p: i for i, p in enumerate(PRECISION_COLORS)}
    ranked = sorted(benches, key=lambda b: (order.get(b.precision, 99), str(b.backend), str(b.provider),
                                            b.batch or 0))
    rows = [{"label": f"{label(b)} batch {b.batch}", "values": [b.p50_ms],
             "whiskers": [(b.p90_ms, b.p99_ms if b.p99_ms is not None else b.p50_ms)], "colors": [color(b.precision)]}
            for b in ranked]
    parts.append(bar_chart("plot-latency", "Latency per batch: p50 bar, p90 tick, p99 whisker (ms)", rows,
                           ["p50 latency"], "milliseconds per batch", fmt=numbers.ms))
    parts.append("<h3>Machine</h3>")
    if machine:
        parts.append(definition_list(machine_facts(machine, benches), list_id="bench-machine"))
        parts.append(_busy_note(machine))
    else:
        parts.append('<p class="none">Not recorded (an older report.json): run <code>edgeport bench</code> again '
                     "to record the machine.</p>")
    parts.append(table([h for h, _, _ in BENCH_COLUMNS], [[_bench_cell(b, k, f) for _, k, f in BENCH_COLUMNS]
                                                          for b in ranked], table_id="benchmarks"))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


# -- calibration and deployment ------------------------------------------------------------------
_ARTIFACT_ROLE = {p.key: p.role for p in PRECISIONS.values() if p.role}


def calibration_section(facts: PageFacts | None) -> str:
    """Where the INT8 ranges came from: source, image count, method, per INT8 artifact."""
    parts = ['<section id="calibration"><h2>INT8 calibration</h2>']
    if facts is None or not facts.calibration:
        parts.append('<p class="none">This bundle has no INT8 artifact; <code>edgeport export --int8</code> '
                     "calibrates one (on <code>--calib-data DIR</code>, or the shipped default set).</p></section>")
        return "\n".join(parts)
    rows = []
    for precision, c in facts.calibration.items():
        kind = {"folder": "folder of images", "array": "array of preprocessed tensors"}.get(c.kind, c.kind or "?")
        if c.shared_with:
            ranges = f"the observed min/max of the {c.shared_with} calibration pass (no second calibration)"
        elif c.calibrated is False:
            ranges = "reused from the calibration cache (same graph, data and method)"
        else:
            ranges = f"calibrated in {c.seconds:.2f} s" if isinstance(c.seconds, (int, float)) else "calibrated"
        rows.append([f"{precision} ({facts.artifacts.get(precision, '?')}, {_ARTIFACT_ROLE.get(precision, '')})",
                     str(c.method or "?"), str(c.samples if c.samples is not None else "?"),
                     f"{c.source or '?'} ({kind})", str(c.skipped), ranges])
    parts.append(table(["artifact", "method", "images", "source", "unreadable files skipped", "ranges"], rows,
                       table_id="calibration-table"))
    few = [c.samples for c in facts.calibration.values() if isinstance(c.samples, int)
           and c.samples < FEW_CALIBRATION_IMAGES]
    if few:
        parts.append(f'<p class="note">Calibrated on only {min(few)} images. With fewer than '
                     f"{FEW_CALIBRATION_IMAGES} the activation ranges may miss inputs the model will see (NVIDIA "
                     "recommends at least 500 for CNNs): pass <code>--calib-data DIR</code> with images "
                     "typical of your inputs.</p>")
    parts.append("<p>The ranges are per tensor: symmetric for model.int8.onnx (the method is how they were "
                 "estimated from the activations, <code>--calib-method</code>), the observed min/max of the same "
                 "pass for model.int8-cpu.onnx (asymmetric uint8). Judge the result on images the calibration has not "
                 "seen: the golden set above never overlaps it.</p></section>")
    return "\n".join(parts)


def deployment_section(facts: PageFacts | None) -> str:
    """Opset, batch range, input/output, preprocessing, versions, and what to run on the device."""
    if facts is None:
        return ""
    lo, hi = facts.batch_range
    pre = ", ".join(f"{k} {v}" for k, v in facts.preprocessing.items())
    items = {"ONNX opset": str(facts.opset) if facts.opset is not None else "not recorded",
             "batch": f"{lo} to {hi} (dynamic batch axis; TensorRT engines are built for this range)",
             "input / output": f"{facts.input_name} / {facts.output_name}",
             "preprocessing": pre,
             "artifacts": ", ".join(f"{p}: {f}" for p, f in facts.artifacts.items()),
             "exported with": ", ".join(f"{k} {v}" for k, v in facts.versions.items()) or "not recorded"}
    folder = facts.folder
    bench_batches = ",".join(str(b) for b in dict.fromkeys((lo, min(8, hi), hi)) if lo <= b <= hi)
    commands = [f"edgeport build {folder} --precision all",
                f"edgeport verify {folder} --backend tensorrt",
                f"edgeport bench {folder} --backend tensorrt --batch {bench_batches}"]
    return "\n".join([
        '<section id="deployment"><h2>Deployment</h2>', definition_list(items, list_id="deployment-facts"),
        "<h3>Next, on the device</h3>",
        f"<p>Copy the bundle folder <code>{_esc(folder)}/</code> to the Jetson or GPU server (edgeport and "
        "TensorRT installed, no PyTorch needed), then, in the folder that holds it: build the TensorRT engines "
        "there (an engine only runs on the GPU and TensorRT version it was built with), check them against "
        "the same golden outputs, and time them.</p>",
        '<pre id="next-commands"><code>' + _esc("\n".join(commands)) + "</code></pre>",
        "</section>"])


# -- per-layer INT8 sensitivity (runtime/report/sections.py: Sensitivity) --------------------------
def one_minus_cosine(r: SensitivityRow):
    c = r.output_cosine
    return max(0.0, 1.0 - float(c)) if isinstance(c, (int, float)) and not isinstance(c, bool) else None


def _num(v, spec) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def sensitivity_rows(rows: list[SensitivityRow]) -> list[list[str]]:
    """Rows for SENSITIVITY_HEADER (report.html and `edgeport sensitivity`)."""
    return [[_num(r.rank, "d"), str(r.layer), str(r.op_type or ""), _num(one_minus_cosine(r), ".2e"),
             _num(r.sqnr_db, ".1f"), _num(r.top1_agreement, ".1%"), _num(r.macs_share, ".2%"),
             "kept out of INT8" if r.kept_float else "INT8"] for r in rows]


SENSITIVITY_HEADER = ["rank", "layer", "op", SENSITIVITY_METRIC, "SQNR (dB)", "top-1 agreement", "share of MACs",
                      "runs in"]


def sensitivity_section(section: Sensitivity | None, title: str) -> str:
    """The ranking: a chart and a table of the SENSITIVITY_SHOWN most harmful layers, the rest folded."""
    if section is None or not section.rows:
        return ""
    ranked = sorted(section.rows, key=lambda r: r.rank if isinstance(r.rank, int) else math.inf)
    top, rest = ranked[:SENSITIVITY_SHOWN], ranked[SENSITIVITY_SHOWN:]
    kept_color = PRECISION_COLORS["fp16"]
    bars = [{"label": str(r.layer), "values": [one_minus_cosine(r)],
             **({"colors": [kept_color]} if r.kept_float else {})} for r in top]
    chart_title = f"The {len(top)} most harmful layers, rank order: {SENSITIVITY_METRIC} (log scale)"
    if any(r.kept_float for r in top):
        chart_title += "; orange: kept out of INT8"
    parts = [f'<section id="sensitivity"><h2>{_esc(title)}</h2>',
             f"<p>Each layer quantized alone (every other layer FP32), on the golden images, compared with the "
             f"FP32 graph at the logits. <b>{SENSITIVITY_METRIC}</b> = 1 minus the mean cosine similarity of the "
             "centered logits (each image's mean logit subtracted): the ranking, higher is more harmful, 0 is "
             "no change. <b>SQNR (dB)</b> = 10&#8239;log<sub>10</sub>(&Sigma;&nbsp;reference&sup2; / &Sigma;&nbsp;"
             "(output &minus; reference)&sup2;) of the same centered logits: higher is better.</p>",
             bar_chart("plot-sensitivity", chart_title, bars, [SENSITIVITY_METRIC],
                       f"{SENSITIVITY_METRIC} with only that layer in INT8 (log scale; higher = more harmful)",
                       fmt=lambda v: f"{v:.2e}", log=True),
             table(SENSITIVITY_HEADER, sensitivity_rows(top), table_id="sensitivity-table",
                   row_classes=["warn" if r.kept_float else "" for r in top])]
    if rest:
        parts.append(f'<details id="sensitivity-more"><summary>The other {len(rest)} layers (ranks '
                     f"{SENSITIVITY_SHOWN + 1} to {len(ranked)})</summary>"
                     + table(SENSITIVITY_HEADER, sensitivity_rows(rest), table_id="sensitivity-table-more",
                             row_classes=["warn" if r.kept_float else "" for r in rest]) + "</details>")
    parts.append("</section>")
    return "\n".join(parts)


# -- multi-output models ---------------------------------------------------------------------
OUTPUTS_HEADER = ["precision", "backend", "output", "shape", "max abs diff", "max rel diff", "cosine min",
                  "verdict"]


def output_rows(results: list[Comparison]) -> list[list[str]]:
    """One row per further output of a multi-output model, per artifact (the summary table is the
    classifier output's): report.md, report.html and the CLI's table."""
    return [[r.precision, f"{r.backend}/{r.provider}", o.name, "[" + ", ".join(str(d) for d in o.shape) + "]",
             fmt_number(o.max_abs_diff), fmt_number(o.max_rel_diff), f"{o.cosine_min:.6f}",
             "PASS" if o.passed else "FAIL"] for r in results for o in r.outputs]


# -- INT8 lint (runtime/report/sections.py: LintSection) -------------------------------------------
def _counts(d: dict) -> str:
    """{op type: count or node names} as "Conv 12, Gemm 1" ("none" when empty)."""
    return ", ".join(f"{op} {v if isinstance(v, int) else len(v)}" for op, v in d.items()) or "none"


def lint_section(section) -> str:
    """Per INT8 artifact: the verdict as a badge, the Q/DQ node and layer counts in words, and a
    table of the rule violations (none: said in words)."""
    if section is None or not section.artifacts:
        return ""
    parts = ['<section id="lint"><h2>INT8 lint (TensorRT\'s Q/DQ rules)</h2>']
    for precision, lint in section.artifacts.items():
        verdict = "PASS" if lint.passed else "FAIL"
        parts.append(f'<h3>{_esc(precision)} ({_esc(str(lint.file))}) '
                     f'<span class="badge {verdict.lower()}">{verdict}</span></h3>')
        items = {"summary": str(lint.summary), "errors / warnings": f"{lint.errors} / {lint.warnings}",
                 "Q/DQ nodes": fmt_number(lint.qdq_nodes), "INT8 layers": _counts(lint.int8_layers or {}),
                 "float layers": _counts(lint.float_layers or {})}
        if lint.kept_float:
            items["kept out of INT8 on purpose"] = ", ".join(str(n) for n in lint.kept_float)
        parts.append(definition_list(items, list_id=f"lint-{precision}"))
        rows = [[str(rule), str(v.get("severity", "")), str(v.get("node", "")), str(v.get("message", ""))]
                for rule, found in (lint.violations or {}).items() for v in found if isinstance(v, dict)]
        if rows:
            parts.append(table(["rule", "severity", "node", "message"], rows, table_id=f"lint-{precision}-violations",
                               row_classes=["fail" if r[1] == "error" else "warn" for r in rows]))
        else:
            parts.append('<p class="none">No rule violations.</p>')
    parts.append("</section>")
    return "\n".join(parts)
