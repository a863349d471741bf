"""The INT8 diagnosis (runtime/int8_diagnosis.py) on graphs whose fault is placed by construction.

A four-layer conv net built with onnx.helper (no torch), quantized by ONNX Runtime's static
quantizer with TensorRT's rules (symmetric INT8, per-channel weights, Q/DQ). Then one fault:
- weights: conv1's output channel 7 is dead (zero weights, bias -1, then ReLU: always 0), and
  conv2 reads it with weight 100. In FP32 that weight multiplies zeros and changes nothing; per
  output channel it sets conv2's INT8 weight scale to 100/127, so every other conv2 weight
  (about 0.1) rounds to zero. The error must appear at conv2, carried by its weights.
- activations: the scale of the QuantizeLinear in front of conv3 is multiplied by 300, so its
  input (ReLU output, up to a few units) rounds to 0 or one step. Conv3, its activations.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from runtime.int8_diagnosis import diagnose, quantized_layers  # noqa: E402
from runtime.int8_variants import variant  # noqa: E402

RNG_SEED = 7


def _net(dead_channel: bool, gate: bool = False):
    """``gate``: relu2's output is multiplied by its own Sigmoid (SiLU-like) before conv3."""
    rng = np.random.default_rng(RNG_SEED)
    inits, nodes = [], []
    chans = [3, 8, 8, 8]
    x = "input"
    for i in range(1, 4):
        if gate and i == 3:
            nodes += [helper.make_node("Sigmoid", [x], ["sig"], name="sigmoid"),
                      helper.make_node("Mul", [x, "sig"], ["gated"], name="gate_mul")]
            x = "gated"
        w = rng.normal(0, 0.3, (chans[i], chans[i - 1], 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, chans[i]).astype(np.float32)
        if dead_channel and i == 1:
            w[7], b[7] = 0.0, -1.0
        if dead_channel and i == 2:
            w[:, 7, 1, 1] = 100.0
        inits += [numpy_helper.from_array(w, f"conv{i}.weight"), numpy_helper.from_array(b, f"conv{i}.bias")]
        nodes += [helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"c{i}"], name=f"conv{i}",
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        x = f"r{i}"
    inits += [numpy_helper.from_array(rng.normal(0, 0.3, (10, 8)).astype(np.float32), "fc.weight"),
              numpy_helper.from_array(np.zeros(10, np.float32), "fc.bias")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
              helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _inputs(n=16, seed=1):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, 16, 16)).astype(np.float32)


def _quantize(model, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[None]} for x in _inputs(16, seed=3)])

        def get_next(self):
            return next(self.items, None)

    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "Gemm"],
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                                   "OpTypesToExcludeOutputQuantization": ["Conv", "Gemm"]})
    return onnx.load(str(dst))


def _scale_activation_q(qmodel, consumer: str, factor: float) -> None:
    """Multiply the scale of the activation QuantizeLinear feeding node ``consumer``."""
    prod = {o: n for n in qmodel.graph.node for o in n.output}
    node = next(n for n in qmodel.graph.node if n.name == consumer)
    q = prod[prod[node.input[0]].input[0]]
    assert q.op_type == "QuantizeLinear"
    for init in qmodel.graph.initializer:
        if init.name == q.input[1]:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))


@pytest.fixture(scope="module")
def weight_fault(tmp_path_factory):
    fp32 = _net(dead_channel=True)
    return fp32, _quantize(fp32, tmp_path_factory.mktemp("w"))


@pytest.fixture(scope="module")
def activation_fault(tmp_path_factory):
    fp32 = _net(dead_channel=False)
    q = _quantize(fp32, tmp_path_factory.mktemp("a"))
    _scale_activation_q(q, "conv3", 300.0)
    return fp32, q


def test_boundaries_are_the_quantized_layer_outputs_in_topological_order(weight_fault):
    fp32, q = weight_fault
    assert [layer[0] for layer in quantized_layers(q, fp32)] == ["conv1", "conv2", "conv3", "fc"]


def test_weight_outlier_is_blamed_on_that_layers_weights(weight_fault):
    fp32, q = weight_fault
    d = diagnose(fp32, q, _inputs(), calibration={"method": "minmax", "samples": 16})
    assert (d.layer, d.op_type, d.carrier) == ("conv2", "Conv", "weights")
    assert d.cosine_at < 0.9 < d.cosine_before
    assert d.weights_only["layer_cosine"] < 0.9 < d.activations_only["layer_cosine"]
    assert d.next_steps[0].startswith("--int8-exclude 'conv2'")
    assert any(s.startswith("--max-drop") for s in d.next_steps)
    assert not any(s.startswith("--calib-method") for s in d.next_steps)  # calibration cannot fix weights


def test_poisoned_activation_scale_is_blamed_on_that_layers_activations(activation_fault):
    fp32, q = activation_fault
    d = diagnose(fp32, q, _inputs(), calibration={"method": "minmax", "samples": 16, "few": True})
    assert (d.layer, d.carrier) == ("conv3", "activations")
    assert d.activations_only["layer_cosine"] < 0.9 < d.weights_only["layer_cosine"]
    assert d.next_steps[0].startswith("--calib-method percentile")
    assert any(s.startswith("--calib-data") for s in d.next_steps)
    lines = "\n".join(d.lines())
    assert "conv3" in lines and "activations" in lines and "--calib-method percentile" in lines


def test_a_culprit_reading_a_sigmoid_gated_mul_suggests_excluding_mul(tmp_path):
    fp32 = _net(dead_channel=False, gate=True)
    q = _quantize(fp32, tmp_path)
    _scale_activation_q(q, "conv3", 300.0)
    d = diagnose(fp32, q, _inputs(), calibration={"method": "minmax", "samples": 16})
    assert (d.layer, d.carrier) == ("conv3", "activations")
    assert d.next_steps[0].startswith("--int8-exclude Mul")


def test_streaming_caps_the_samples(activation_fault):
    fp32, q = activation_fault
    d = diagnose(fp32, q, _inputs(20), max_samples=6, batch=4)
    assert d.samples == 6 and d.layer == "conv3"


def test_unquantized_graph_blames_nothing(weight_fault):
    # The FP32 graph as its own "INT8" graph: no Q/DQ, nothing maps, no layer is named.
    fp32, _ = weight_fault
    d = diagnose(fp32, fp32, _inputs(4))
    assert d.layer is None and d.boundaries == [] and "do not map" in d.note


def test_variant_holds_only_one_kind_of_qdq(weight_fault):
    fp32, q = weight_fault
    ops = lambda m: [n.op_type for n in m.graph.node]  # noqa: E731
    assert ops(variant(fp32, q, "c2", "weights")).count("DequantizeLinear") == 1
    assert "QuantizeLinear" not in ops(variant(fp32, q, "c2", "weights"))
    acts = ops(variant(fp32, q, "c2", "activations"))
    assert (acts.count("QuantizeLinear"), acts.count("DequantizeLinear")) == (1, 1)


def test_round_trip_through_report_json(activation_fault):
    from runtime.int8_diagnosis import Int8Diagnosis

    fp32, q = activation_fault
    d = diagnose(fp32, q, _inputs(4))
    assert Int8Diagnosis.from_dict(d.to_dict()) == d
