"""report.md: the typed report (runtime/report/document.py: Report) as Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.report.mdtext import md, md_code, md_table, render_table  # noqa: F401 - public here too
from runtime.report import numbers
from runtime.report.svg_plots import fmt_number as _fmt

if TYPE_CHECKING:
    from runtime.compare import Comparison
    from runtime.report.document import Report

SUMMARY_HEADER = ["precision", "backend", "samples", "max abs diff", "max rel diff",
                  "cosine min", "cosine mean", "top-1 agree", "top-5 overlap", "verdict"]


def summary_rows(results: list[Comparison]) -> list[list[str]]:
    return [[r.precision, f"{r.backend}/{r.provider}", str(r.samples), _fmt(r.max_abs_diff), _fmt(r.max_rel_diff),
             f"{r.cosine_min:.6f}", f"{r.cosine_mean:.6f}", f"{r.top1_agreement:.1%}", f"{r.top5_overlap:.1%}",
             "PASS" if r.passed else "FAIL"] for r in results]


def render_markdown(report: Report, manifest=None) -> str:
    """report.md; ``manifest`` (the bundle's) adds the model line report.html has under its title."""
    results = report.results
    lines = [f"## edgeport: {md(report.model or '?')} - {'PASS' if report.passed else 'FAIL'}", ""]
    if manifest is not None:
        lines += [md("Model: " + "; ".join(numbers.model_facts(manifest)) + "."), ""]
    failed = [r for r in results if not r.passed]
    if failed:
        lines += [f"- **{md(r.precision)} on {md(r.backend)}/{md(r.provider)} failed**: "
                  + md("; ".join(r.failures)) for r in failed]
        lines.append("")
    lines += [md_table(SUMMARY_HEADER, summary_rows(results)), ""]
    weights, golden = report.weights, report.golden
    lines.append(f"Weights: {md(weights.get('description', weights.get('spec', '?')))}. "
                 f"Reference: {md(report.reference or 'PyTorch FP32')} on {md(golden.get('samples', '?'))} held-out "
                 f"images ({md(golden.get('source', '?'))}). Cosine is over centered logits; "
                 "max rel diff is relative to each sample's reference logit range.")
    if weights.get("random_init"):
        lines += ["", "> Random-init weights: only fidelity to PyTorch is meaningful, not task accuracy; "
                      "top-1 agreement on a random-init net is not informative."]
    lines.append("")
    lines.append("Tolerances: " + md("; ".join(f"{r.precision} {r.backend}/{r.provider}: "
                                               f"{numbers.tolerance(r.tolerance)}" for r in results) or "-") + ".")
    lines += output_lines(results)
    lines += markdown_sections(report)
    return "\n".join(lines) + "\n"


def _calibration_lines(calibration: dict) -> list[str]:
    """report.md's INT8 calibration section: per artifact, the sample count and where it came from."""
    if not calibration:
        return []
    lines = ["", "### INT8 calibration", ""]
    few = []
    for precision, c in calibration.items():
        if c.get("shared_with"):
            ranges = f"the observed min/max of the {c['shared_with']} calibration pass"
        else:
            ranges = "reused from the calibration cache" if c.get("calibrated") is False else "calibrated"
        skipped = f", {c['skipped']} unreadable files skipped" if c.get("skipped") else ""
        lines.append("- " + md(f"{precision}: {c.get('samples', '?')} samples ({c.get('kind') or '?'} "
                               f"{c.get('source') or '?'}{skipped}), method {c.get('method', '?')}, ranges {ranges}"))
        if c.get("few") and isinstance(c.get("samples"), int):  # the count is what the note compares
            few.append((c.get("samples"), c.get("recommended_min")))
    if few:
        samples, minimum = min(few, key=lambda t: t[0])
        lines += ["", f"> Calibrated on only {samples} samples: with fewer than {minimum} the activation ranges "
                      "may miss inputs the model will see (NVIDIA recommends at least 500 for CNNs). Pass "
                      "`--calib-data DIR` with images typical of your inputs."]
    return lines


def output_lines(results: list[Comparison]) -> list[str]:
    """report.md's "Further outputs" table of a multi-output model (none otherwise)."""
    from runtime.report.html_sections import OUTPUTS_HEADER, output_rows

    rows = output_rows(results)
    if not rows:
        return []
    return ["", "### Further outputs", "",
            "The table above compares the classifier output; every other output of the model is compared "
            "here with the same tolerance (top-1 agreement aside).", "", md_table(OUTPUTS_HEADER, rows)]


def markdown_sections(report: Report) -> list[str]:
    """The sections after the verification table, for those the report has."""
    from runtime.report.diagnosis_sections import diagnosis_markdown
    from runtime.report.engines import engines_markdown

    lines = diagnosis_markdown(report.int8_diagnosis)  # why INT8 failed: first, next to the verdict
    lines += _calibration_lines(report.calibration)
    if report.lint and report.lint.artifacts:
        lines += ["", "### Q/DQ lint (TensorRT's INT8 rules)", ""]
        lines += ["- " + md(f"{p} ({d.file}): {'' if d.passed else 'FAIL, '}{d.summary}")
                  for p, d in report.lint.artifacts.items()]
    lines += engines_markdown(report.engines)  # edgeport build: what each engine is made of
    lines += _budget_lines(report)
    lines += _accuracy_lines(report)
    lines += _latency_lines(report)
    return lines


def _budget_lines(report: Report) -> list[str]:
    """export --max-drop (exporter/int8/mixed_precision.py)."""
    mp = report.mixed_precision.data if report.mixed_precision else {}
    if not isinstance(mp.get("budget_points"), (int, float)):
        return []
    lines = ["", "### INT8 accuracy budget", "",
             f"Budget {mp['budget_points']:g} points ({md(mp.get('metric', '?'))}, {md(mp.get('data', '?'))}): "
             f"{_fmt(mp.get('drop_points'))} reached (full INT8: {_fmt(mp.get('full_int8_drop_points'))}); "
             f"{mp.get('layers_out_of_int8', '?')} of {mp.get('quantized_layers', '?')} layers out of INT8, "
             f"{numbers.percent(mp.get('int8_macs_share'))} of MACs in INT8.", ""]
    return lines + [f"- {md_code(r.get('layer'))} " + md(f"({r.get('op_type')}, {r.get('precision')}): {r.get('reason', '')}")
                    for r in (mp.get("kept_float") or [])[:30] if isinstance(r, dict)]


def _accuracy_lines(report: Report) -> list[str]:
    acc = report.accuracy
    if acc is None:
        return []
    ref = acc.reference
    rows = [[f"reference: {ref.label}", f"{ref.backend}/{ref.provider}", f"{ref.top1:.2%}", f"{ref.top5:.2%}",
             "-", "-"]]
    rows += [[r.precision, f"{r.backend}/{r.provider}", f"{r.top1:.2%}", f"{r.top5:.2%}",
              f"{r.top1_drop_points:+.2f}", f"{r.top5_drop_points:+.2f}"] for r in acc.results]
    return ["", f"### Labeled accuracy: {acc.samples} images ({md(acc.data)})", "",
            md_table(["model", "backend", "top-1", "top-5", "top-1 drop (points)", "top-5 drop (points)"], rows),
            "", f"Reference: {md(ref.description)}. Drop = reference minus artifact, in percentage points."]


def _latency_lines(report: Report) -> list[str]:
    bench = report.benchmarks
    if bench is None or not bench.results:
        return []
    rows = [[b.precision, f"{b.backend}/{b.provider}", _fmt(b.batch), numbers.threads(b.threads),
             numbers.ms_value(b.p50_ms), numbers.ms_value(b.p90_ms), numbers.ms_value(b.p99_ms),
             numbers.rate(b.throughput_ips)] for b in bench.results]
    lines = ["", "### Latency", "",
             md_table(["precision", "backend", "batch", "threads", "p50 (ms)", "p90 (ms)", "p99 (ms)",
                       "throughput (img/s)"], rows)]
    if bench.machine:
        from runtime.machine import describe_machine_line

        lines += ["", f"Measured on: {md(describe_machine_line(bench.machine))}."]
    return lines
