"""report.json and report.md: the accuracy diff, readable by people and by tools."""

from __future__ import annotations

import datetime as _dt
import json

from runtime.bundle import Bundle
from runtime.errors import BundleError
from runtime.fsutil import atomic_write_text  # noqa: F401  (re-exported for callers)
from runtime.report.svg_plots import fmt_number as _fmt
from runtime.compare import Comparison

REPORT_VERSION = 1


def load_report(bundle: Bundle, *, required: bool = False) -> dict:
    """The bundle's report.json (an empty report when there is none yet, unless ``required``).

    A report.json that is not an edgeport report is refused, never replaced: overwriting it
    would lose its accuracy and benchmark sections.
    """
    path = bundle.report_path("json")
    if not path.is_file():
        if required:
            raise BundleError(f"Bundle '{bundle.root}' has no report.json yet, so there is nothing to render.",
                              hint=f"Run `edgeport verify {bundle.root}` first (export writes it too unless --no-verify).")
        return {"report_version": REPORT_VERSION, "results": []}
    fix = (f"Move it aside (it is not overwritten) and run `edgeport verify {bundle.root}` to write a fresh one.")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}).", hint=fix) from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BundleError(f"{path} has no 'results' list, so it is not an edgeport report.", hint=fix)
    return data


def merge_results(report: dict, comparisons: list[Comparison], golden_names: list[str] | None = None) -> dict:
    """Replace results with the same (backend, provider, precision) key; keep the others."""
    keys = {(c.backend, c.provider, c.precision) for c in comparisons}
    kept = [r for r in report.get("results", [])
            if (r.get("backend"), r.get("provider"), r.get("precision")) not in keys]
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    new = []
    for c in comparisons:
        d = c.to_dict()
        d["verified_at"] = now
        new.append(d)
    report["results"] = kept + new
    if golden_names is not None:
        report["golden_names"] = golden_names
    return report


def write_reports(bundle: Bundle, comparisons: list[Comparison], sections: dict | None = None) -> dict:
    """Merge ``comparisons`` into the bundle's report.json and regenerate report.md and .html.

    ``sections``: other top-level report.json sections to set (e.g. ``{"accuracy": ...}``).
    """
    golden = bundle.manifest.golden
    report = load_report(bundle)
    report["report_version"] = REPORT_VERSION
    report["model"] = bundle.name
    report["weights"] = bundle.manifest.weights.to_dict()
    report["golden"] = {"samples": golden.samples if golden else None, "source": golden.source if golden else None}
    report["reference"] = bundle.reference_label
    calibration = calibration_section(bundle)
    if calibration:
        report["calibration"] = calibration
    else:
        report.pop("calibration", None)
    merge_results(report, comparisons)
    if getattr(comparisons, "lint", None):  # verify.VerifyResults: the Q/DQ lint per precision
        report.setdefault("lint", {}).update(comparisons.lint)
    if sections:
        report.update(sections)
    report["passed"] = all(r.get("passed") for r in report["results"])
    save_report(bundle, report)
    return report


def calibration_section(bundle: Bundle) -> dict:
    """report.json's ``calibration``: per INT8 artifact, the method, sample count and source
    (from the manifest), and whether the count is below the recommended minimum."""
    out = {}
    from runtime.precision import quantized_keys

    for precision in quantized_keys():
        info = bundle.calibration(precision)
        if info is not None:
            out[precision] = info.to_dict()
    return out


def record_engines(bundle: Bundle, entries: dict[str, dict]) -> bool:
    """Merge ``{engine file: entry}`` (runtime/engine_report.engine_entry) into report.json's
    ``engines`` section and rewrite report.md/.html. Only when report.json exists (a bundle
    exported with --no-verify has none, and a report without results reads as failed);
    returns whether it wrote."""
    from runtime.report.engines import SECTION

    if not entries or not bundle.report_path("json").is_file():
        return False
    report = load_report(bundle)
    report.setdefault(SECTION, {}).update(entries)
    save_report(bundle, report)
    return True


def save_report(bundle: Bundle, report: dict) -> None:
    """Write report.json, report.md and report.html from ``report`` (one call for every writer,
    so the three never disagree)."""
    from runtime.report.html import write_html

    atomic_write_text(bundle.report_path("json"), json.dumps(report, indent=2) + "\n")
    atomic_write_text(bundle.report_path("md"), render_markdown(report))
    write_html(bundle, report)


def summary_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        rows.append([
            r["precision"], f'{r["backend"]}/{r["provider"]}', str(r["samples"]),
            _fmt(r["max_abs_diff"]), _fmt(r["max_rel_diff"]), f'{r["cosine_min"]:.6f}',
            f'{r["cosine_mean"]:.6f}', f'{r["top1_agreement"]:.1%}', f'{r["top5_overlap"]:.1%}',
            "PASS" if r["passed"] else "FAIL",
        ])
    return rows


SUMMARY_HEADER = ["precision", "backend", "samples", "max abs diff", "max rel diff",
                  "cosine min", "cosine mean", "top-1 agree", "top-5 overlap", "verdict"]


def render_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    results = report.get("results", [])
    verdict = "PASS" if results and all(r.get("passed") for r in results) else "FAIL"
    failed = [r for r in results if not r.get("passed")]
    lines = [f"## edgeport: {report.get('model', '?')} - {verdict}", ""]
    if failed:
        for r in failed:
            lines.append(f"- **{r['precision']} on {r['backend']}/{r['provider']} failed**: "
                         + "; ".join(r.get("failures", [])))
        lines.append("")
    lines.append(render_table(SUMMARY_HEADER, summary_rows(results)))
    lines.append("")
    weights = report.get("weights", {})
    golden = report.get("golden", {})
    lines.append(f"Weights: {weights.get('description', weights.get('spec', '?'))}. "
                 f"Reference: {report.get('reference') or 'PyTorch FP32'} on {golden.get('samples', '?')} "
                 "held-out images "
                 f"({golden.get('source', '?')}). Cosine is over centered logits; "
                 "max rel diff is relative to each sample's reference logit range.")
    if weights.get("random_init"):
        lines.append("")
        lines.append("> Random-init weights: only fidelity to PyTorch is meaningful, not task accuracy; "
                     "top-1 agreement on a random-init net is not informative.")
    lines.append("")
    lines.append("Tolerances: " + "; ".join(
        f"{r['precision']}: " + ", ".join(f"{k}={v}" for k, v in r["tolerance"].items() if v is not None)
        for r in results))
    lines += output_lines(results)
    lines += markdown_sections(report)
    return "\n".join(lines) + "\n"


def _calibration_lines(calibration) -> list[str]:
    """report.md's INT8 calibration section: per artifact, the sample count and where it came from."""
    if not isinstance(calibration, dict) or not calibration:
        return []
    lines = ["", "### INT8 calibration", ""]
    few = []
    for precision, c in calibration.items():
        if not isinstance(c, dict):
            continue
        if c.get("shared_with"):
            ranges = f"the observed min/max of the {c['shared_with']} calibration pass"
        else:
            ranges = "reused from the calibration cache" if c.get("calibrated") is False else "calibrated"
        skipped = f", {c['skipped']} unreadable files skipped" if c.get("skipped") else ""
        lines.append(f"- {precision}: {c.get('samples', '?')} samples ({c.get('kind') or '?'} "
                     f"{c.get('source') or '?'}{skipped}), method {c.get('method', '?')}, ranges {ranges}")
        if c.get("few"):
            few.append((c.get("samples"), c.get("recommended_min")))
    if few:
        samples, minimum = min(few, key=lambda t: t[0])
        lines += ["", f"> Calibrated on only {samples} samples: with fewer than {minimum} the activation ranges "
                      "may miss inputs the model will see (NVIDIA recommends at least 500 for CNNs). Pass "
                      "`--calib-data DIR` with images typical of your inputs."]
    return lines


def output_lines(results: list[dict]) -> list[str]:
    """report.md's "Further outputs" table of a multi-output model (none otherwise)."""
    from runtime.report.html_sections import OUTPUTS_HEADER, output_rows

    rows = output_rows(results)
    if not rows:
        return []
    return ["", "### Further outputs", "",
            "The table above compares the classifier output; every other output of the model is compared "
            "here with the same tolerance (top-1 agreement aside).", "", render_table(OUTPUTS_HEADER, rows)]


def markdown_sections(report: dict) -> list[str]:
    """Labeled accuracy and benchmark sections for report.md, when report.json has them."""
    lines = _calibration_lines(report.get("calibration"))
    lint = report.get("lint")
    if isinstance(lint, dict) and lint:
        lines += ["", "### Q/DQ lint (TensorRT's INT8 rules)", ""]
        lines += [f"- {p} ({d.get('file', '?')}): {'' if d.get('passed') else 'FAIL, '}{d.get('summary', '')}"
                  for p, d in lint.items() if isinstance(d, dict)]
    from runtime.report.engines import engines_markdown

    lines += engines_markdown(report)  # edgeport build: what each engine is made of
    mp = report.get("mixed_precision")  # export --max-drop (exporter/int8/mixed_precision.py)
    if isinstance(mp, dict) and isinstance(mp.get("budget_points"), (int, float)):
        lines += ["", "### INT8 accuracy budget", "",
                  f"Budget {mp['budget_points']:g} points ({mp.get('metric', '?')}, {mp.get('data', '?')}): "
                  f"{_fmt(mp.get('drop_points'))} reached (full INT8: {_fmt(mp.get('full_int8_drop_points'))}); "
                  f"{mp.get('layers_out_of_int8', '?')} of {mp.get('quantized_layers', '?')} layers out of INT8, "
                  f"{_fmt(100 * float(mp.get('int8_macs_share') or 0), 1)} % of MACs in INT8.", ""]
        lines += [f"- `{r.get('layer')}` ({r.get('op_type')}, {r.get('precision')}): {r.get('reason', '')}"
                  for r in (mp.get("kept_float") or [])[:30] if isinstance(r, dict)]
    acc = report.get("accuracy")
    if isinstance(acc, dict) and acc.get("reference"):
        ref = acc["reference"]
        lines += ["", f"### Labeled accuracy: {acc.get('samples', '?')} images ({acc.get('data', '?')})", ""]
        rows = [[f"reference: {ref.get('label', 'fp32')}", f"{ref.get('backend')}/{ref.get('provider')}",
                 f"{ref['top1']:.2%}", f"{ref['top5']:.2%}", "-", "-"]]
        for r in acc.get("results", []):
            rows.append([r["precision"], f"{r['backend']}/{r['provider']}", f"{r['top1']:.2%}", f"{r['top5']:.2%}",
                         f"{r['top1_drop_points']:+.2f}", f"{r['top5_drop_points']:+.2f}"])
        lines.append(render_table(["model", "backend", "top-1", "top-5", "top-1 drop (points)",
                                   "top-5 drop (points)"], rows))
        lines += ["", f"Reference: {ref.get('description', ref.get('label', '?'))}. "
                      "Drop = reference minus artifact, in percentage points."]
    from runtime.report.html_sections import benchmark_rows

    benches = benchmark_rows(report)
    if benches:
        lines += ["", "### Latency", ""]
        def cell(v):
            return _fmt(v)

        # `edgeport bench` writes throughput_ips (images/s); "throughput" is the older name.
        rows = [[str(b.get("precision")), f"{b.get('backend')}/{b.get('provider')}", cell(b.get("batch")),
                 cell(b.get("threads")), cell(b.get("p50_ms")), cell(b.get("p90_ms")), cell(b.get("p99_ms")),
                 cell(b.get("throughput_ips", b.get("throughput")))]
                for b in benches]
        lines.append(render_table(["precision", "backend", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "img/s"],
                                  rows))
        machine = (report.get("benchmarks") or {}).get("machine") if isinstance(report.get("benchmarks"), dict) else None
        if isinstance(machine, dict):
            from runtime.machine import describe_machine_line

            lines += ["", f"Measured on: {describe_machine_line(machine)}."]
    return lines
