"""`edgeport sensitivity BUNDLE`: per-layer INT8 sensitivity of a bundle's Q/DQ artifact."""

from __future__ import annotations

import click

from edgeport.cli.options import common_options, json_option, out, out_envelope
from edgeport.cli.options import trusted_key_option


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--sensitivity-samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Golden images per layer (one ONNX Runtime session per quantized layer).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers printed.")
@json_option
@click.option("--no-report", is_flag=True, help="Do not write the result into report.json/.md/.html.")
@trusted_key_option
@common_options
def sensitivity(bundle, sensitivity_samples, threads, top, as_json, no_report):
    """Rank the INT8 layers of BUNDLE's model.int8.onnx by the error each adds alone.

    Each quantized layer (Conv/Gemm, residual Add, Concat) is quantized alone, every other
    layer kept FP32, and the logits are compared with model.onnx's on the golden images:
    ranked by the mean centered cosine (lowest = most harmful), with the centered-logit SQNR
    and top-1 agreement. Runs on ONNX Runtime CPU; needs the onnx package. The ranking goes
    into report.json ("sensitivity") and report.html. `edgeport export --int8 --max-drop
    POINTS` uses the same ranking to keep the most harmful layers out of INT8.
    """
    from runtime import console
    from runtime.bundle import Bundle
    from runtime.report.html_sections import sensitivity_rows
    from runtime.report.summary import load_report, render_table, save_report
    from exporter.int8.sensitivity import bundle_sensitivity

    b = Bundle.open(bundle)
    report = None if no_report else load_report(b)  # a malformed report.json is refused before the long part
    result = bundle_sensitivity(b, samples=sensitivity_samples, threads=threads, log=console.log)
    if report is not None:
        report.sensitivity = result
        save_report(b, report)
    if as_json:
        out_envelope({"rows": result.to_dict(), "samples": result.samples, "units": result.units}, bundle=b.root)
        return
    out(f"{result.units} quantized layers, each alone in INT8, on {result.samples} golden images "
        "(most harmful first: lowest centered cosine):")
    out(render_table(["rank", "layer", "op", "1 - cosine", "SQNR dB", "top-1 agree", "MACs", "runs in"],
                     sensitivity_rows(result.rows[:top])))
    if len(result.rows) > top:
        out(f"... {len(result.rows) - top} more (--top, --json)")
    if not no_report:
        out(f"report: {b.report_path('html')}")
