"""`edgeport lint PATH.onnx`: check a Q/DQ graph against TensorRT's INT8 rules (runtime/qdq_lint.py)."""

from __future__ import annotations

import sys

import click

from .options import common_options, json_option, out, out_json


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@json_option
@click.option("--max-nodes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Offending nodes shown per rule.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (edgeport's own export does).")
@common_options
def lint(path, as_json, max_nodes, strict):
    """Check the Q/DQ nodes of PATH (an ONNX file) against TensorRT's INT8 rules.

    Lists, per rule, the offending nodes by name, then which Conv/Gemm/MatMul/Add/Concat/pools
    run in INT8 and which stay in float. Errors are what NVIDIA's parser refuses; warnings
    are graphs it builds with a layer in float or an accuracy/speed cost (docs/int8.md).
    Exit status: 0 no errors (warnings printed), 1 errors (or warnings with --strict).
    """
    from runtime.errors import EXIT_CHECK_FAILED
    from runtime.qdq_lint import ERROR, RULES, SEVERITY, lint_model

    report = lint_model(path)
    if as_json:
        out_json(report.to_dict())
    else:
        out(f"{path}: {report.qdq_nodes} Q/DQ nodes")
        for rule, items in report.by_rule().items():
            mark = "ok  " if not items else ("FAIL" if SEVERITY.get(rule, ERROR) == ERROR else "WARN")
            out(f"  {mark} {rule}: {RULES.get(rule, rule)}"
                       + (f" ({len(items)} violation{'s' if len(items) != 1 else ''})" if items else ""))
            for v in items[:max_nodes]:
                out(f"         {v.node}: {v.message}")
            if len(items) > max_nodes:
                out(f"         ... {len(items) - max_nodes} more (--max-nodes, --json)")
        counts = report.counts()
        out("layers: " + ", ".join(
            f"{op} {counts['int8'][op]} INT8 / {counts['float'][op]} float"
            for op in counts["int8"] if counts["int8"][op] or counts["float"][op]) or "layers: none listed")
        for op, names in report.float_nodes.items():
            if names:
                shown = ", ".join(names[:max_nodes]) + (" ..." if len(names) > max_nodes else "")
                out(f"  float {op}: {shown}")
        out("clean" if report.clean else f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    if not report.passed or (strict and not report.clean):
        sys.exit(EXIT_CHECK_FAILED)
