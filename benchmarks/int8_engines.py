"""What the INT8 engine is made of: the table of docs/int8.md ("Engine composition"), per bundle.

For every bundle given and each of its ONNX artifacts (fp16, int8; fp32 with --fp32), this
lints the Q/DQ graph (runtime/graph/qdq_lint.py), parses and builds it with NVIDIA's TensorRT-RTX
(strongly typed, CPU-only ahead-of-time, batch profile 1/8/32 as in issue 11), reads the
builder's layer information (runtime/engines/layers.py) and prints one row: layers, tensors
Float / Half / Int8 (every input, constant and output the layer information lists), compute
layers reading INT8 / FP16 / FP32, weights and activation memory (MB = 1e6 bytes), build
seconds, and the centered cosine min against PyTorch that ``edgeport verify`` wrote in the
bundle's report.json. Not a timed test: run it by hand (a densenet121 224 build takes
seconds to a minute on 2 cores).

``--concat-styles`` also builds two variants of each int8 graph that has Concats, to check the
lint's concat rule against the builder: ``modelopt`` (Concat inputs that come from a Conv left
float and the Concat's output quantized at the group's scale, as ModelOpt writes DenseNet) and
``unshared`` (each Concat input at its own calibrated
scale instead of the group's shared one); it says whether their layers (kind, input and
output types) are the same as the edgeport graph's.

    .venv/bin/python benchmarks/int8_engines.py exports/resnet50 exports/densenet121 [--fp32] [--concat-styles] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"}


def _cosine_min(bundle: Path, precision: str):
    try:
        report = json.loads((bundle / "report.json").read_text())
    except (OSError, ValueError):
        return None
    row = next((r for r in report.get("results", []) if r.get("precision") == precision), None)
    return row.get("cosine_min") if row else None


def concat_variant(bundle: Path, style: str, out: Path) -> Path | None:
    """model.int8.onnx with its Concats quantized another way (see --concat-styles); None without Concats."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / FILES["int8"]))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    concats = [n for n in g.node if n.op_type == "Concat"]
    if not concats:
        return None
    if style == "modelopt":
        from onnx import helper

        new_nodes = []
        for n in g.node:
            new_nodes.append(n)
            if n.op_type != "Concat":
                continue
            q_first = None
            for k, t in enumerate(n.input):
                dq = producer.get(t)
                q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
                src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
                q_first = q_first or q
                if src is not None and src.op_type == "Conv":
                    n.input[k] = q.input[0]
            if q_first is None:
                continue
            y = n.output[0]
            scale, zp = q_first.input[1], q_first.input[2]
            for c in g.node:  # every reader of the Concat's output reads it through the new Q/DQ
                c.input[:] = [f"{y}_mo_dq" if t == y else t for t in c.input]
            new_nodes.append(helper.make_node("QuantizeLinear", [y, scale, zp], [f"{y}_mo_q"], name=f"{y}_mo_Q"))
            new_nodes.append(helper.make_node("DequantizeLinear", [f"{y}_mo_q", scale, zp], [f"{y}_mo_dq"],
                                              name=f"{y}_mo_DQ"))
        del g.node[:]
        g.node.extend(new_nodes)
    else:  # unshared: every quantized Concat input back at its own calibrated range
        tensors = json.loads((bundle / "calibration.json").read_text())["tensors"]
        inits = {i.name: i for i in g.initializer}
        for n in concats:
            for t in n.input:
                dq = producer.get(t)
                q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
                if q is not None and q.op_type == "QuantizeLinear" and q.input[0] in tensors:
                    scale = tensors[q.input[0]]["amax"] / 127.0
                    inits[q.input[1]].CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(inits[q.input[1]]) * 0 + scale, q.input[1]))
    used = {i for n in g.node for i in n.input}
    keep = [n for n in g.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or n.output[0] in used]
    del g.node[:]
    g.node.extend(keep)
    path = out / f"{bundle.name}.{style}.onnx"
    onnx.save(model, str(path))
    return path


def _signature(summary) -> list:
    return sorted((la.kind, tuple(t.dtype for t in la.inputs), tuple(t.dtype for t in la.outputs))
                  for la in summary.layers)


def measure(trt, bundle: Path, precision: str, path: Path | None = None, label: str | None = None) -> dict:
    """One artifact: lint, NVIDIA's parse + build, the layer information, the recorded accuracy."""
    from qdq_cases import aot_probe

    from runtime.graph.qdq_lint import lint_model
    from runtime.engines.layers import summarize_build_log

    path = path or bundle / FILES[precision]
    row = {"bundle": bundle.name, "precision": precision, "file": label or path.name}
    if precision == "int8":
        lint = lint_model(path)
        row["lint"] = "clean" if lint.clean else f"{len(lint.errors)} errors, {len(lint.warnings)} warnings"
    t0 = time.perf_counter()
    verdict, errors, log = aot_probe(trt, path, batches=(1, 8, 32))
    row["build_seconds"] = round(time.perf_counter() - t0, 1)
    row["parser"] = verdict if verdict == "builds" else f"{verdict}: {'; '.join(errors)[:200]}"
    summary = summarize_build_log(log) if verdict == "builds" else None
    if summary is not None:
        d = summary.to_dict()
        row.update(layers=d["layers"], tensors=d["tensors"], compute=d["compute_layers_by_precision"],
                   weights_mb=round(summary.weights_bytes / 1e6, 2), activation_mb=round(summary.activation_bytes / 1e6, 1),
                   not_int8=[f"{x['type']} {x['layer']} ({x['reads']})" for x in d["other_compute_layers"]])
        row["signature"] = _signature(summary)
    row["cosine_min"] = _cosine_min(bundle, precision) if label is None else None
    return row


def markdown(rows: list[dict]) -> str:
    head = ("| bundle | graph | lint | parser | layers | tensors Float / Half / Int8 | compute layers INT8 / FP16 / FP32 "
            "| weights MB | activation MB | build s | cosine min |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        t, c = r.get("tensors", {}), r.get("compute", {})
        cosine = f"{r['cosine_min']:.6f}" if r["cosine_min"] is not None else "-"
        lines.append(
            f"| {r['bundle']} | `{r['file']}` | {r.get('lint', '-')} | {r['parser']} | {r.get('layers', '-')} | "
            f"{t.get('Float', 0)} / {t.get('Half', 0)} / {t.get('Int8', 0)} | "
            f"{c.get('int8', 0)} / {c.get('fp16', 0)} / {c.get('fp32', 0)} | {r.get('weights_mb', '-')} | "
            f"{r.get('activation_mb', '-')} | {r['build_seconds']} | "
            f"{cosine} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--fp32", action="store_true", help="also build model.onnx")
    parser.add_argument("--concat-styles", action="store_true", help="also build the int8 graphs' Concats "
                        "quantized ModelOpt's way (modelopt) and at unshared scales")
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    args = parser.parse_args(argv)
    from qdq_cases import import_rtx

    trt, why = import_rtx()
    if trt is None:
        print(f"TensorRT-RTX does not import here: {why}", file=sys.stderr)
        return 2
    import tempfile

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-int8-engines-"))
    for bundle in args.bundles:
        for precision in (("fp32",) if args.fp32 else ()) + ("fp16", "int8"):
            if (bundle / FILES[precision]).is_file():
                rows.append(measure(trt, bundle, precision))
                print(f"{bundle.name} {precision}: {rows[-1].get('layers')} layers, {rows[-1].get('activation_mb')} MB "
                      f"activations, {rows[-1]['build_seconds']} s", file=sys.stderr)
        base = rows[-1] if rows and rows[-1]["precision"] == "int8" else None
        for style in ("modelopt", "unshared") if args.concat_styles and base else ():
            variant = concat_variant(bundle, style, tmp)
            if variant is not None:
                rows.append(measure(trt, bundle, "int8", variant, f"int8, Concats {style}"))
                rows[-1]["same_layers_as_edgeport"] = rows[-1].get("signature") == base.get("signature")
    print(f"TensorRT-RTX {trt.__version__}, CPU-only AOT build, batch profile 1/8/32\n")
    print(markdown(rows))
    for r in rows:
        if "same_layers_as_edgeport" in r:
            print(f"\n{r['bundle']} {r['file']}: same layers (kind, input and output types) as edgeport's graph: "
                  f"{r['same_layers_as_edgeport']}")
        if r.get("not_int8") and r["precision"] == "int8":
            print(f"\n{r['bundle']} {r['file']}: compute layers not reading INT8: {'; '.join(r['not_int8'])}")
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "signature"} for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
