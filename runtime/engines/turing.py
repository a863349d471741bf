"""Turing (compute capability 7.5) under TensorRT-RTX: the classifier's GEMM as a 1x1 convolution,
and what still cannot build, found before building.

TensorRT-RTX 1.x has no FP32 GEMM kernels for SM75: its builder stops with "Cannot compile
operation '/fc/Gemm' for Turing (SM75): FP32 GEMM is not supported" (measured with 1.7.1.116 on
resnet18, mobilenet_v3_small: fp32 and int8 graphs, whose classifier Gemm stays float). FP32
convolutions and FP16 GEMMs build; a Q/DQ (INT8) Gemm fails the same way as an FP32 one.

A Gemm on a [N, K] input is the same arithmetic as a 1x1 convolution of the [N, K, 1, 1] input
with the [M, K, 1, 1] weight, which SM75 builds in FP32 (and behind Q/DQ). So a build that targets
7.5 parses a copy of the graph where each such Gemm is Reshape -> Conv -> Reshape (the bundle's
file is unchanged; the sidecar records ``graph_rewrites``). What cannot be rewritten that way (a
MatMul inside attention, a Gemm with transA or alpha/beta) is refused before any build, with the
reason and what to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TURING = "7.5"
GEMM_OPS = ("Gemm", "MatMul")
GEMM_AS_CONV = "gemm-as-conv1x1"  # the sidecar's name for the rewrite (``EngineSidecar.graph_rewrites``)


def _elem_types(model) -> dict[str, int]:
    """Element type of every tensor the graph declares or ONNX shape inference finds."""
    import onnx

    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is best effort; declared types still count
        pass
    graph = model.graph
    types = {t.name: t.data_type for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
    for node in graph.node:  # Constant nodes (onnxsim leaves some) carry their type in the attribute
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _fp32_gemm_nodes(model) -> list:
    import onnx

    types = _elem_types(model)
    # Q/DQ operands do not help: TensorRT-RTX runs a Q/DQ Gemm on SM75 as an FP32 GEMM too
    # (DequantizeLinear's output is the float it computes in), and refuses it the same way.
    return [node for node in model.graph.node if node.op_type in GEMM_OPS
            and any(types.get(i) == onnx.TensorProto.FLOAT for i in node.input[:2])]


def _convertible(node) -> bool:
    """A plain Gemm (Y = A B^T + C, or A B + C): what a 1x1 convolution computes."""
    from onnx import helper

    if node.op_type != "Gemm":
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return not attrs.get("transA", 0) and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0


def fp32_gemms(onnx_path: Path, *, convertible: bool = True) -> list[str]:
    """Names of the Gemm/MatMul nodes of ``onnx_path`` that compute in FP32 (Turing cannot);
    ``convertible=False``: only those the 1x1-convolution rewrite cannot take."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return [n.name or n.output[0] for n in _fp32_gemm_nodes(model) if convertible or not _convertible(n)]


def gemms_as_conv(model) -> list[str]:
    """Rewrite, in place, each FP32 Gemm SM75 cannot build as Reshape -> 1x1 Conv -> Reshape;
    the names of the Gemms rewritten. The weight (an initializer or a DequantizeLinear's output,
    per-channel scales on its output axis) is reshaped, transposed first when transB is 0."""
    from onnx import helper, numpy_helper

    targets = {n.output[0] for n in _fp32_gemm_nodes(model) if _convertible(n)}  # outputs are unique
    graph, nodes, done = model.graph, [], []
    for node in graph.node:
        if node.op_type != "Gemm" or node.output[0] not in targets:
            nodes.append(node)
            continue
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        tag = f"{node.name or node.output[0]}/as_conv"
        graph.initializer.extend([numpy_helper.from_array(np.array(v, np.int64), f"{tag}/{k}")
                                  for k, v in (("x4", [0, -1, 1, 1]), ("w4", [0, 0, 1, 1]), ("y2", [0, -1]))])
        weight = node.input[1]
        if not trans_b:  # A B: the convolution wants B^T ([M, K])
            nodes.append(helper.make_node("Transpose", [weight], [f"{tag}/wT"], perm=[1, 0]))
            weight = f"{tag}/wT"
        nodes += [helper.make_node("Reshape", [node.input[0], f"{tag}/x4"], [f"{tag}/x"]),
                  helper.make_node("Reshape", [weight, f"{tag}/w4"], [f"{tag}/w"]),
                  helper.make_node("Conv", [f"{tag}/x", f"{tag}/w", *node.input[2:3]], [f"{tag}/y"], name=tag),
                  helper.make_node("Reshape", [f"{tag}/y", f"{tag}/y2"], [node.output[0]])]
        done.append(node.name or node.output[0])
    del graph.node[:]
    graph.node.extend(nodes)
    return done


def with_turing_rewrite(bundle, plan, targets, log):
    """``plan`` with the 1x1-convolution rewrite when it targets 7.5 and its graph has FP32 Gemms."""
    import dataclasses

    if TURING not in targets:
        return plan
    gemms = fp32_gemms(bundle.artifact_path(plan.source))
    if not gemms:
        return plan
    log(f"{plan.precision}: Turing (7.5) has no FP32 GEMM kernels: {len(gemms)} Gemm layer"
        f"{'s' if len(gemms) > 1 else ''} (first '{gemms[0]}') built as 1x1 convolutions, the same arithmetic")
    return dataclasses.replace(plan, graph_rewrites=(*plan.graph_rewrites, GEMM_AS_CONV))


def turing_refusal(bundle, plans, targets) -> tuple[str, str] | None:
    """(message, hint) when a TensorRT-RTX build for 7.5 cannot succeed; None when it can."""
    if TURING not in targets:
        return None
    blocked = {}
    for plan in plans:
        gemms = fp32_gemms(bundle.artifact_path(plan.source), convertible=False)
        if gemms:
            blocked[plan.precision] = (bundle.artifact_path(plan.source).name, gemms)
    if not blocked:
        return None
    parts = [f"{p} ({file}: {len(g)} FP32 GEMM layer{'s' if len(g) > 1 else ''}, first '{g[0]}')"
             for p, (file, g) in blocked.items()]
    others = [cc for cc in targets if cc != TURING]
    rest = ",".join(others) if others else "8.0,8.6,8.9,12.0"
    message = (f"TensorRT-RTX cannot build {', '.join(blocked)} for Turing (compute capability 7.5): it has no "
               f"FP32 GEMM kernels for SM75, and {'; '.join(parts)} that edgeport cannot run as a 1x1 convolution "
               f"(only a plain Gemm on a [batch, features] input can be).")
    hint = (f"For Turing GPUs (RTX 20xx) build --precision fp16 --compute-capability 7.5 (its GEMMs run in FP16); "
            f"build {', '.join(blocked)} for the other targets separately (--compute-capability {rest}).")
    return message, hint
