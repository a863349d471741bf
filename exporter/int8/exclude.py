"""``--int8-exclude NAME_OR_OPTYPE``: layers the user keeps out of INT8, resolved to node names.

A value is a node name of model.onnx (what `edgeport verify`'s INT8 diagnosis and `edgeport
sensitivity` print), or an op type. An op type names every layer of that type the quantizers
would quantize, and every such layer whose input comes straight from a node of that type: the
Sigmoid-gated Mul of a squeeze-excitation block (or SiLU) is not itself quantized, the
convolution reading it is, so ``--int8-exclude Mul`` keeps those convolutions in float (as
NVIDIA's and Ultralytics' INT8 recipes do). Both quantizers (model.int8.onnx and
model.int8-cpu.onnx) leave the resolved nodes float; model.int8.onnx records them as kept in
float on purpose (``edgeport.kept_float``), so the Q/DQ lint lists them instead of reporting them.
"""

from __future__ import annotations

from runtime.errors import UsageError

QUANTIZABLE = ("Conv", "Gemm", "MatMul", "Add", "Concat", "AveragePool", "MaxPool", "GlobalAveragePool")


def excluded_nodes(model, values) -> list[str]:
    """Node names of ``model`` (an FP32 ModelProto) that ``values`` keep out of INT8, in graph
    order; a value that is neither a node name nor an op type of the graph is a UsageError."""
    if not values:
        return []
    nodes = list(model.graph.node)
    by_name = {n.name for n in nodes if n.name}
    op_types = {n.op_type for n in nodes}
    producer = {o: n for n in nodes for o in n.output}
    unknown = [v for v in values if v not in by_name and v not in op_types]
    if unknown:
        layers = [n.name for n in nodes if n.op_type in QUANTIZABLE and n.name][:4]
        raise UsageError(f"--int8-exclude {', '.join(unknown)}: no node of the model has that name and no node "
                         f"has that op type. Node names look like {', '.join(layers) or '(none)'}.",
                         hint="Use a name `edgeport verify` or `edgeport sensitivity` printed, or an op type "
                              "such as Mul or Gemm.")
    wanted_types = {v for v in values if v in op_types and v not in by_name}
    out = []
    for n in nodes:
        if n.op_type not in QUANTIZABLE:
            continue
        reads_type = any(producer.get(t) is not None and producer[t].op_type in wanted_types for t in n.input)
        if n.name in values or n.op_type in wanted_types or reads_type:
            out.append(n.name)
    return out
