"""`edgeport sensitivity BUNDLE`: per-layer INT8 sensitivity of a bundle's Q/DQ artifact."""

from __future__ import annotations

import click

from edgeport.cli.options import common_options, json_option, out, out_json


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--sensitivity-samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Golden images per layer (one ONNX Runtime session per quantized layer).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers printed.")
@json_option
@click.option("--no-report", is_flag=True, help="Do not write the result into report.json/.md/.html.")
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
    from runtime.report.summary import load_report, render_table, save_report
    from exporter.int8.sensitivity import bundle_sensitivity

    b = Bundle.open(bundle)
    result = bundle_sensitivity(b, samples=sensitivity_samples, threads=threads, log=console.log)
    rows = result["rows"]
    if not no_report:
        report = load_report(b)
        report["sensitivity"] = rows
        save_report(b, report)
    if as_json:
        out_json(rows)
        return

    def num(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"

    table = [[str(r["rank"]), r["layer"], r["op_type"],
              num(1 - r["output_cosine"], ".2e") if isinstance(r.get("output_cosine"), (int, float)) else "-",
              num(r["sqnr_db"], ".1f"),
              num(r["top1_agreement"], ".1%"), num(r["macs_share"], ".2%"),
              "kept out of INT8" if r["kept_float"] else "INT8"] for r in rows[:top]]
    out(f"{result['units']} quantized layers, each alone in INT8, on {result['samples']} golden images "
               "(most harmful first: lowest centered cosine):")
    out(render_table(["rank", "layer", "op", "1 - cosine", "SQNR dB", "top-1 agree", "MACs", "runs in"],
                            table))
    if len(rows) > top:
        out(f"... {len(rows) - top} more (--top, --json)")
    if not no_report:
        out(f"report: {b.report_path('html')}")
