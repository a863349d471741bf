"""`edgeport lint` against NVIDIA's real ONNX parser and builder, case by case.

Every case is a hand-made graph of a few nodes (tests/qdq_cases.py). The table says what the
lint reports (error rules, warning rules) and what TensorRT-RTX's parser and builder do with
it (builds / refuses, with the library's own message), and, for built graphs, in which
precision the builder runs the main layer (read from the engine's layer information,
runtime/engines/layers.py). The test runs the real library, so the table cannot drift from it.

The lint's errors are meant to be exactly what the parser refuses; the few cases where they
differ on purpose are listed in DISAGREEMENTS, each explained in docs/int8.md ("Lint vs
parser"). Warnings are graphs TensorRT builds with a layer in higher precision or an
accuracy/speed cost. Skips where TensorRT-RTX does not import (aarch64/Jetson: NVIDIA ships
no wheel there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import qdq_cases as QC

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    build: object
    errors: frozenset = frozenset()
    warnings: frozenset = frozenset()
    parser: str = "builds"  # "builds", or "refuses: <text the parser's message contains>"
    engine: tuple = ()  # ((ONNX node, precision of the compute layer that runs it), ...)


def _c(name, build, errors=(), warnings=(), parser="builds", engine=()):
    return Case(name, build, frozenset(errors), frozenset(warnings), parser, tuple(engine))


ZP = "refuses: Non-zero zero point is not supported"
CASES = [
    # Good graphs: lint clean, NVIDIA builds the layer in INT8.
    _c("conv_good", QC.conv_good, engine=[("conv", "int8")]),
    _c("conv_good_opset13", lambda: QC.conv_good(13), engine=[("conv", "int8")]),
    _c("conv_good_opset19", lambda: QC.conv_good(19), engine=[("conv", "int8")]),
    _c("conv_good_opset21", lambda: QC.conv_good(21), engine=[("conv", "int8")]),
    _c("fp16_scales_opset19", QC.fp16_scales, engine=[("conv", "int8")]),
    _c("fp16_regions_fp32_conv", QC.fp32_conv_fp16_regions, engine=[("conv", "int8")]),
    _c("gemm_transB1", lambda: QC.gemm(1), engine=[("fc", "int8")]),
    _c("gemm_transB0", lambda: QC.gemm(0), engine=[("fc", "int8")]),
    _c("matmul_const_b", QC.matmul_const_b, engine=[("mm", "int8")]),
    _c("add_residual_quantized", QC.add_residual_good, engine=[("conv_a", "int8")]),
    _c("concat_shared_scale", QC.concat_shared_scale, engine=[("branch0", "int8"), ("after", "int8")]),
    _c("concat_mixed_inputs", QC.concat_mixed_inputs, engine=[("branch1", "int8"), ("after", "int8")]),
    _c("concat_float_inputs_quantized_output", QC.concat_float_inputs_quantized_output,
       engine=[("branch0", "int8"), ("after", "int8")]),
    _c("maxpool_quantized", lambda: QC.pool("MaxPool"), engine=[("pool", "int8")]),
    _c("maxpool_float_input", lambda: QC.pool("MaxPool", quantized=False), engine=[("pool", "int8")]),
    # A small AveragePool runs in float here even with Q/DQ around it (DenseNet's run INT8).
    _c("avgpool_quantized", lambda: QC.pool("AveragePool"), engine=[("pool", "fp32")]),
    _c("globalavgpool_quantized", lambda: QC.pool("GlobalAveragePool"), engine=[("conv", "int8")]),
    # Errors: NVIDIA's parser refuses the graph.
    _c("act_zero_point_5", QC.conv_zero_point, errors=["zero-point"], parser=ZP),
    _c("weight_zero_point_3", QC.conv_weight_zero_point, errors=["zero-point"], parser=ZP),
    _c("uint8_zero_point_128", lambda: QC.conv_zero_point(128, np.uint8), errors=["int8", "zero-point"], parser=ZP),
    _c("int16_activations", lambda: QC.conv_zero_point(0, np.int16), errors=["int8"], parser="refuses: "),
    _c("int32_bias_dq", QC.conv_int32_bias, errors=["int32-bias"], parser="refuses: input has type Int32"),
    _c("negative_scale", QC.conv_negative_scale, errors=["scale"],
       parser="refuses: Scale coefficients must all be positive"),
    _c("zero_scale", lambda: QC.conv_scaled(0.0), errors=["scale"],
       parser="refuses: Scale coefficients must all be positive"),
    _c("weight_scale_count", QC.conv_scale_count, errors=["weight-scale-count"],
       parser="refuses: The number of scales is not equal to the number of output channels"),
    # Warnings: NVIDIA builds the graph; the layer runs in float, or accuracy/speed advice.
    _c("weight_per_tensor", QC.conv_per_tensor_weight, warnings=["weight-per-channel"], engine=[("conv", "int8")]),
    _c("opset10_weight_per_tensor", QC.opset10_per_tensor, warnings=["weight-per-channel"],
       engine=[("conv", "int8")]),
    _c("weight_axis_1", QC.conv_weight_axis1, warnings=["weight-per-channel"], engine=[("conv", "fp32")]),
    _c("gemm_weight_axis_1", lambda: QC.gemm(1, axis=1), warnings=["weight-per-channel"], engine=[("fc", "int8")]),
    _c("conv_float_weight", QC.conv_float_weight, warnings=["weighted-inputs"], engine=[("conv", "fp32")]),
    _c("conv_float_input", QC.conv_float_input, warnings=["weighted-inputs"], engine=[("conv", "fp32")]),
    _c("gemm_float_input", lambda: QC.gemm(1, quantize_input=False), warnings=["weighted-inputs"],
       engine=[("fc", "fp32")]),
    _c("activation_per_channel", QC.conv_act_per_channel, warnings=["activation-per-tensor"],
       engine=[("conv", "fp32")]),
    _c("add_residual_float", QC.add_residual_float, warnings=["residual-add"], engine=[("conv_a", "int8")]),
    _c("add_both_inputs_float", QC.add_both_float, warnings=["residual-add"], engine=[("conv_a", "int8")]),
    _c("concat_mismatched_scales", QC.concat_mismatched_scales, warnings=["concat-scale"],
       engine=[("branch0", "int8"), ("after", "int8")]),
    _c("q_feeds_cast", QC.q_without_dq, warnings=["q-dq-pair"], engine=[("conv", "int8")]),
    # Errors the parser does not raise: on purpose, explained in docs/int8.md.
    _c("no_qdq_at_all", QC.conv_no_qdq, errors=["has-qdq"], engine=[("conv", "fp32")]),
    _c("uint8_zero_point_0", lambda: QC.conv_zero_point(0, np.uint8), errors=["int8"], engine=[("conv", "int8")]),
    _c("fp16_scales_opset17", lambda: QC.fp16_scales(17), errors=["scale"], engine=[("conv", "int8")]),
]
DISAGREEMENTS = {"no_qdq_at_all", "uint8_zero_point_0", "fp16_scales_opset17"}


@pytest.fixture(scope="module")
def trt():
    module, why = QC.import_rtx()
    if module is None:
        pytest.skip(f"needs NVIDIA TensorRT-RTX (x86_64 Linux/Windows wheels only; none for aarch64/Jetson): {why}")
    return module


@pytest.fixture(scope="module")
def verdicts(trt, tmp_path_factory):
    """Every case through the lint and through NVIDIA's parser + builder, once."""
    import onnx

    from runtime.graph.qdq_lint import lint_model
    from runtime.engines.layers import summarize_build_log

    out = {}
    folder = tmp_path_factory.mktemp("lint_vs_parser")
    for case in CASES:
        model = case.build()
        path = folder / f"{case.name}.onnx"
        onnx.save(model, str(path))
        report = lint_model(path)
        verdict, errors, log = QC.aot_probe(trt, path)
        out[case.name] = (report, verdict, errors, summarize_build_log(log) if verdict == "builds" else None)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_lint_and_parser_verdicts(case, verdicts):
    report, verdict, errors, layers = verdicts[case.name]
    assert {v.rule for v in report.errors} == case.errors, report.summary()
    assert {v.rule for v in report.warnings} == case.warnings, report.summary()
    if case.parser == "builds":
        assert verdict == "builds", errors
    else:
        assert verdict == "parse-error", (verdict, errors)
        wanted = case.parser.split(": ", 1)[1]
        assert any(wanted in e for e in errors), errors
    assert layers is not None or verdict != "builds", "a DETAILED verbose build logs its layers"
    for node, precision in case.engine:
        runs = [la for la in layers.layers if la.compute and node in la.onnx_layers]
        assert runs, f"no compute layer holds ONNX node {node!r}: {[(la.kind, la.onnx_layers) for la in layers.layers]}"
        assert {la.precision for la in runs} == {precision}, [(la.name, la.kind, la.precision) for la in runs]


def test_lint_errors_are_what_the_parser_refuses(verdicts):
    """Lint errors <=> NVIDIA refuses, except the disagreements docs/int8.md explains."""
    differ = {name for name, (report, verdict, _, _) in verdicts.items()
              if bool(report.errors) != (verdict != "builds")}
    assert differ == DISAGREEMENTS
    assert not any(verdict != "builds" and not report.errors for report, verdict, _, _ in verdicts.values())
    docs = (REPO / "docs" / "int8.md").read_text()
    section = docs[docs.index("## Lint vs parser"):]
    for name in sorted(DISAGREEMENTS):
        assert f"`{name}`" in section, f"docs/int8.md does not explain the disagreement {name}"


def test_warnings_that_say_float_match_the_engine(verdicts):
    """Every 'the layer runs in float' warning case: the builder runs that layer in FP32."""
    floaty = {"weighted-inputs", "activation-per-tensor"}
    checked = 0
    for case in CASES:
        if case.warnings & floaty:
            _, _, _, layers = verdicts[case.name]
            for node, _precision in case.engine:
                runs = [la for la in layers.layers if la.compute and node in la.onnx_layers]
                assert runs and all(la.precision == "fp32" for la in runs), case.name
                checked += 1
    assert checked >= 4


def test_concat_styles_build_the_same_engine(verdicts):
    """Shared scale, mixed float/quantized inputs, ModelOpt's float inputs with a quantized output,
    different scales: NVIDIA builds the same kernels with the same types and memory (no
    re-quantization layer), which is why the lint reports only the scale mismatch, as a warning."""
    styles = ("concat_shared_scale", "concat_mixed_inputs", "concat_float_inputs_quantized_output",
              "concat_mismatched_scales")

    def signature(layers):
        return sorted((la.kind, tuple(t.dtype for t in la.inputs), tuple(t.dtype for t in la.outputs))
                      for la in layers.layers), layers.activation_bytes

    first = signature(verdicts[styles[0]][3])
    assert any(kind == "kgen" and "Int8" in outs for kind, _, outs in first[0])  # the Concat's kernel writes INT8
    for name in styles[1:]:
        assert signature(verdicts[name][3]) == first, name
