"""`edgeport lint PATH`: check a Q/DQ graph against TensorRT's INT8 rules (runtime/graph/qdq_lint.py).

PATH is an ONNX file or a bundle folder (then its TensorRT INT8 artifact, model.int8.onnx, is
linted). A bundle artifact that TensorRT never builds with these rules (model.int8-cpu.onnx,
the float graphs) is still linted, but the output says so first. The exit status answers one
question whatever the file is meant for: would TensorRT refuse it, or is it no INT8 graph (1 on
lint errors, 0 otherwise; warnings too with --strict), so model.int8-cpu.onnx exits 1 like the
FP32 graph does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeport.cli.options import common_options, json_option, out, out_envelope
from edgeport.cli.options import trusted_key_option

def _not_for_tensorrt(role: str | None) -> str | None:
    """Why a bundle artifact is not built by TensorRT under the Q/DQ rules (None: it is, or no artifact)."""
    from runtime.precision import PRECISIONS

    p = PRECISIONS.get(role)
    if p is None or (p.quantized and p.engines):
        return None
    if not p.quantized:
        return (f"the bundle's {p.label} graph, which has no Q/DQ nodes; TensorRT builds its {p.key} engine without "
                "these rules")
    return (f"the bundle's {p.role.removeprefix('for ')} artifact ({p.summary}); TensorRT never builds it, so it "
            "breaks TensorRT's rules by design")


def _bundle_int8(folder: Path) -> Path:
    """The TensorRT INT8 artifact of the bundle in ``folder``, checked (Bundle.open names the
    bundles inside a parent folder; a bundle without int8 says what it has)."""
    from runtime.bundle import Bundle

    return Bundle.open(folder).artifact_path("int8")


def _artifact_role(path: Path) -> str | None:
    """The precision ``path`` has in the bundle around it (None when it is not a bundle artifact)."""
    from runtime.bundle import MANIFEST, Bundle
    from runtime.errors import BundleError

    if not (path.parent / MANIFEST).is_file():
        return None
    try:
        files = Bundle.open(path.parent).artifact_files
    except BundleError:
        return None
    return next((p for p, f in files.items() if f == path.name), None)


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@json_option
@click.option("--max-nodes", type=click.IntRange(min=1), default=10, show_default=True,
              help="Offending nodes shown per rule.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (edgeport's own export does).")
@trusted_key_option
@common_options
def lint(path, as_json, max_nodes, strict):
    """Check the Q/DQ nodes of PATH against TensorRT's INT8 rules.

    PATH is an ONNX file, or a bundle folder (its TensorRT INT8 artifact, model.int8.onnx).
    Lists, per rule, the offending nodes by name, then which Conv/Gemm/MatMul/Add/Concat/pools
    run in INT8 and which stay in float. Errors are what NVIDIA's parser refuses; warnings are
    graphs it builds with a layer in float or an accuracy/speed cost (docs/int8.md). Exit
    status: 0 no errors (warnings printed), 1 errors (or warnings with --strict), also for a
    bundle artifact not meant for TensorRT (model.int8-cpu.onnx), which the output names first.
    """
    from runtime import console
    from runtime.errors import EXIT_CHECK_FAILED, UsageError
    from runtime.graph.qdq_lint import lint_model

    target = Path(path)
    if not target.exists():  # a path the user typed: exit 2, before onnx is imported
        raise UsageError(f"'{path}' does not exist.", hint="Pass a .onnx file or a bundle folder.")
    if target.is_dir():
        target = _bundle_int8(target)
        console.log(f"linting {target}, the TensorRT INT8 artifact of bundle {path}")
    role = _artifact_role(target)
    reason = _not_for_tensorrt(role)
    note = None
    if reason is not None:
        note = (f"{target.name} is {reason}. The violations below are expected; the bundle's "
                f"TensorRT INT8 graph is checked with: edgeport lint {target.parent}")
    report = lint_model(target)
    failed = not report.passed or (strict and not report.clean)
    if as_json:
        out_envelope({**report.to_dict(), "path": str(target), "bundle_artifact": role,
                      "meant_for_tensorrt": reason is None, "note": note},
                     bundle=target.parent if role is not None else None, exit_code=EXIT_CHECK_FAILED if failed else 0)
    else:
        _print_report(report, target, note, max_nodes)
    if failed:
        sys.exit(EXIT_CHECK_FAILED)


def _print_report(report, target: Path, note: str | None, max_nodes: int) -> None:
    from runtime.graph.qdq_lint import ERROR, RULES, SEVERITY

    if note:
        out(f"note: {note}")
    out(f"{target}: {report.qdq_nodes} Q/DQ nodes")
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
    verdict = "clean" if report.clean else f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    if note and not report.clean:
        verdict += f" ({target.name} is not meant for TensorRT: see the note above)"
    out(verdict)
