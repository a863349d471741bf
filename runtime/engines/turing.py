"""Turing (compute capability 7.5) under TensorRT-RTX: what it cannot build, found before building.

TensorRT-RTX 1.x has no FP32 GEMM kernels for SM75: its builder stops with "Cannot compile
operation '/fc/Gemm' for Turing (SM75): FP32 GEMM is not supported" (measured with 1.7.1.116 on
resnet18, mobilenet_v3_small: fp32 and int8 graphs, whose classifier Gemm stays float). FP32
convolutions and FP16 GEMMs build; a Q/DQ (INT8) Gemm fails the same way as an FP32 one. Reading the ONNX graph first
lets ``edgeport build`` refuse such a build with the reason and what to do, before any build.
"""

from __future__ import annotations

from pathlib import Path

TURING = "7.5"
GEMM_OPS = ("Gemm", "MatMul")


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


def fp32_gemms(onnx_path: Path) -> list[str]:
    """Names of the Gemm/MatMul nodes of ``onnx_path`` that compute in FP32 (Turing cannot)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    types = _elem_types(model)
    found = []
    for node in model.graph.node:
        if node.op_type not in GEMM_OPS:
            continue
        # Q/DQ operands do not help: TensorRT-RTX runs a Q/DQ Gemm on SM75 as an FP32 GEMM too
        # (DequantizeLinear's output is the float it computes in), and refuses it the same way.
        if any(types.get(i) == onnx.TensorProto.FLOAT for i in node.input[:2]):
            found.append(node.name or node.output[0])
    return found


def turing_refusal(bundle, plans, targets) -> tuple[str, str] | None:
    """(message, hint) when a TensorRT-RTX build for 7.5 cannot succeed; None when it can."""
    if TURING not in targets:
        return None
    blocked = {}
    for plan in plans:
        gemms = fp32_gemms(bundle.artifact_path(plan.source))
        if gemms:
            blocked[plan.precision] = (bundle.artifact_path(plan.source).name, gemms)
    if not blocked:
        return None
    parts = [f"{p} ({file}: {len(g)} FP32 GEMM layer{'s' if len(g) > 1 else ''}, first '{g[0]}')"
             for p, (file, g) in blocked.items()]
    others = [cc for cc in targets if cc != TURING]
    rest = ",".join(others) if others else "8.0,8.6,8.9,12.0"
    message = (f"TensorRT-RTX cannot build {', '.join(blocked)} for Turing (compute capability 7.5): it has no "
               f"FP32 GEMM kernels for SM75, and {'; '.join(parts)}.")
    hint = (f"For Turing GPUs (RTX 20xx) build --precision fp16 --compute-capability 7.5 (its GEMMs run in FP16); "
            f"build {', '.join(blocked)} for the other targets separately (--compute-capability {rest}).")
    return message, hint
