"""The Turing rewrite (runtime/engines/turing.py): a Gemm as Reshape -> 1x1 Conv -> Reshape.

TensorRT-RTX has no FP32 GEMM kernels for SM75, so a build for 7.5 parses a copy of the graph
where each plain Gemm is a 1x1 convolution. Expected outputs come from ONNX Runtime on the
original graph; the rewritten copy must compute the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest


def gemm_graph(*, trans_b: int, bias: bool, qdq_weight: bool, alpha: float = 1.0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    k, m = 6, 4
    w = rng.normal(size=(m, k) if trans_b else (k, m)).astype(np.float32)
    inits, nodes, weight = [], [], "w"
    if qdq_weight:  # INT8 weights per output channel, as edgeport's INT8 graphs have them
        axis = 0 if trans_b else 1
        scale = (np.abs(w).max(axis=1 - axis) / 127).astype(np.float32)
        q = np.round(w / np.expand_dims(scale, 1 - axis)).astype(np.int8)
        inits += [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(scale, "w_scale"),
                  numpy_helper.from_array(np.zeros(m, np.int8), "w_zero")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=axis))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    inputs = ["x", weight]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=m).astype(np.float32), "b"))
        inputs.append("b")
    nodes.append(helper.make_node("Gemm", inputs, ["y"], name="/fc/Gemm", transB=trans_b, alpha=alpha))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", m])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def run(model, x):
    """The graph's meaning: ONNX Runtime with its graph optimizations off (with them on, ORT 1.32 fuses a
    DequantizeLinear(axis=1) -> Gemm(transB=0) into a kernel 0.01 away from the arithmetic)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("qdq_weight", [False, True])
def test_gemm_as_conv_computes_the_same_numbers(trans_b, bias, qdq_weight):
    import onnx

    from runtime.engines.turing import gemms_as_conv

    model = gemm_graph(trans_b=trans_b, bias=bias, qdq_weight=qdq_weight)
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    expected = run(model, x)
    assert gemms_as_conv(model) == ["/fc/Gemm"]
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "Gemm" not in ops and ops.count("Conv") == 1
    np.testing.assert_allclose(run(model, x), expected, rtol=1e-5, atol=1e-5)


def test_a_scaled_gemm_is_left_alone_and_refused_by_name(tmp_path):
    # alpha != 1 is not what a convolution computes: left for the refusal, which names it.
    import onnx

    from runtime.engines.turing import fp32_gemms, gemms_as_conv

    model = gemm_graph(trans_b=1, bias=True, qdq_weight=False, alpha=0.5)
    onnx.save(model, tmp_path / "m.onnx")
    assert fp32_gemms(tmp_path / "m.onnx") == ["/fc/Gemm"]
    assert fp32_gemms(tmp_path / "m.onnx", convertible=False) == ["/fc/Gemm"]
    assert gemms_as_conv(model) == [] and [n.op_type for n in model.graph.node] == ["Gemm"]
