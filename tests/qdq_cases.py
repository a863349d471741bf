"""Small hand-made Q/DQ graphs for tests/runtime/test_lint_vs_parser.py: good ones and bad ones.

Each builder returns an ONNX ModelProto of a few nodes (input N x C x 8 x 8, dynamic batch),
written with onnx.helper so that every quantization parameter is exactly what the case says.
Only ``onnx`` and ``numpy`` are needed.
"""

from __future__ import annotations

import numpy as np

C = 8  # channels everywhere
HW = 8


def _h():
    from onnx import TensorProto, helper, numpy_helper

    return TensorProto, helper, numpy_helper


class G:
    """A graph under construction: nodes, initializers, one float input ``x``."""

    def __init__(self, opset: int = 17, float_type: str = "float32"):
        TP, helper, nh = _h()
        self.TP, self.helper, self.nh = TP, helper, nh
        self.opset = opset
        self.ftype = np.float16 if float_type == "float16" else np.float32
        self.nodes, self.inits = [], []
        self.n = 0
        self.x = "x"
        if self.ftype is np.float16:
            self.x = self.node("Cast", ["x"], to=TP.FLOAT16)

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, array, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(self.nh.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, name: str | None = None, **attrs):
        name = name or self.name(op.lower())
        outs = [f"{name}_out{i}" if outputs > 1 else f"{name}_out" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    # -- Q/DQ ------------------------------------------------------------------------------------
    def qdq(self, x: str, scale=0.05, zero_point=0, dtype=np.int8, name: str | None = None,
            scale_dtype=None) -> str:
        """x -> QuantizeLinear -> DequantizeLinear (per tensor)."""
        name = name or self.name("act")
        s = self.const(np.array(scale, scale_dtype or self.ftype), f"{name}_scale")
        z = self.const(np.array(zero_point, dtype), f"{name}_zp")
        q = self.node("QuantizeLinear", [x, s, z], name=f"{name}_Q")
        return self.node("DequantizeLinear", [q, s, z], name=f"{name}_DQ")

    def weight(self, shape, scales=None, axis=0, zero_point=0, dtype=np.int8, name: str | None = None,
               scale_dtype=None) -> str:
        """int8 constant -> DequantizeLinear (per channel on ``axis`` unless ``scales`` is a scalar)."""
        name = name or self.name("w")
        rng = np.random.default_rng(self.n)
        q = self.const(rng.integers(-100, 100, shape).astype(dtype), f"{name}_q")
        count = shape[axis] if scales is None else scales
        sc = np.full((count,), 0.01, scale_dtype or self.ftype) if count != "scalar" else np.array(
            0.01, scale_dtype or self.ftype)
        s = self.const(sc, f"{name}_scale")
        z = self.const(np.zeros(sc.shape, dtype) + zero_point, f"{name}_zp")
        attrs = {"axis": axis} if sc.ndim else {}
        return self.node("DequantizeLinear", [q, s, z], name=f"{name}_DQ", **attrs)

    def conv(self, x: str, w: str, bias: str | None = None, name: str | None = None, **attrs) -> str:
        """A 3x3 Conv; the first one of a graph is called ``conv`` unless named."""
        inputs = [x, w] + ([bias] if bias else [])
        if name is None:
            name = "conv" if not any(n.name == "conv" for n in self.nodes) else self.name("conv")
        return self.node("Conv", inputs, name=name, pads=[1, 1, 1, 1], **attrs)

    def bias(self, channels: int = C) -> str:
        return self.const(np.zeros(channels, self.ftype), "bias")

    def model(self, y: str, out_shape=("N", C, HW, HW)):
        TP, helper = self.TP, self.helper
        if self.ftype is np.float16:
            y = self.node("Cast", [y], to=TP.FLOAT)
        y = self.node("Identity", [y], name="output_identity")
        graph = helper.make_graph(self.nodes, "case", [helper.make_tensor_value_info("x", TP.FLOAT, ["N", C, HW, HW])],
                                  [helper.make_tensor_value_info(y, TP.FLOAT, list(out_shape))], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = min(model.ir_version, 9)  # onnxruntime reads IR <= 10
        return model


# -- the cases -----------------------------------------------------------------------------------
def conv_good(opset=17):
    g = G(opset)
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3)), g.bias()))


def conv_zero_point(zp=5, dtype=np.int8):
    g = G()
    return g.model(g.conv(g.qdq(g.x, zero_point=zp, dtype=dtype), g.weight((C, C, 3, 3)), g.bias()))


def conv_weight_zero_point():
    g = G()
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3), zero_point=3), g.bias()))


def conv_int32_bias():
    g = G()
    x = g.qdq(g.x)
    w = g.weight((C, C, 3, 3))
    b = g.weight((C,), dtype=np.int32, name="bias")
    return g.model(g.conv(x, w, b))


def conv_per_tensor_weight():
    g = G()
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3), scales="scalar"), g.bias()))


def conv_scale_count(count=C // 2):
    g = G()
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3), scales=count), g.bias()))


def conv_weight_axis1():
    g = G()
    # 4 output channels, 8 input channels: per-channel scales on the input-channel axis.
    return g.model(g.conv(g.qdq(g.x), g.weight((4, C, 3, 3), axis=1), g.const(np.zeros(4, np.float32))),
                   out_shape=("N", 4, HW, HW))


def conv_float_weight():
    """Activation quantized, weight a plain float constant."""
    g = G()
    w = g.const(np.full((C, C, 3, 3), 0.01, np.float32), "wf")
    return g.model(g.conv(g.qdq(g.x), w, g.bias()))


def conv_float_input():
    """Weight quantized, activation float."""
    g = G()
    return g.model(g.conv(g.x, g.weight((C, C, 3, 3)), g.bias()))


def conv_no_qdq():
    g = G()
    w = g.const(np.full((C, C, 3, 3), 0.01, np.float32), "wf")
    return g.model(g.conv(g.x, w, g.bias()))


def conv_scaled(scale: float):
    """The activation Q/DQ with the given scale."""
    g = G()
    return g.model(g.conv(g.qdq(g.x, scale=scale), g.weight((C, C, 3, 3)), g.bias()))


def conv_negative_scale():
    return conv_scaled(-0.05)


def conv_act_per_channel():
    """Activation quantized per channel (axis 1)."""
    g = G()
    s = g.const(np.full((C,), 0.05, np.float32), "as")
    z = g.const(np.zeros((C,), np.int8), "az")
    q = g.node("QuantizeLinear", [g.x, s, z], name="act_Q", axis=1)
    dq = g.node("DequantizeLinear", [q, s, z], name="act_DQ", axis=1)
    return g.model(g.conv(dq, g.weight((C, C, 3, 3)), g.bias()))


def q_without_dq():
    """A QuantizeLinear whose INT8 output feeds a float op (Cast) instead of a DequantizeLinear."""
    g = G()
    s = g.const(np.array(0.05, np.float32), "s")
    z = g.const(np.array(0, np.int8), "z")
    q = g.node("QuantizeLinear", [g.x, s, z], name="lonely_Q")
    f = g.node("Cast", [q], to=g.TP.FLOAT)
    return g.model(g.conv(g.qdq(f), g.weight((C, C, 3, 3)), g.bias()))


def _residual(g, residual_quantized=True, main_from_conv=True):
    x = g.qdq(g.x, name="in")
    a = g.conv(x, g.weight((C, C, 3, 3)), g.bias(), name="conv_a")
    main = a if main_from_conv else g.node("Relu", [a], name="relu_a")
    r = g.node("Relu", [g.x], name="identity_relu")
    r = g.qdq(r, name="res") if residual_quantized else r
    return g.node("Add", [main, r], name="add")


def add_residual_good():
    g = G()
    return g.model(g.node("Relu", [_residual(g)], name="relu_out"))


def add_residual_float():
    g = G()
    return g.model(g.node("Relu", [_residual(g, residual_quantized=False)], name="relu_out"))


def add_both_float():
    g = G()
    return g.model(g.node("Relu", [_residual(g, residual_quantized=False, main_from_conv=False)], name="relu_out"))


def _concat(g, scales=(0.05, 0.05), quantize=(True, True), output_qdq=False):
    x = g.qdq(g.x, name="in")
    branches = []
    for i, (s, qz) in enumerate(zip(scales, quantize)):
        y = g.conv(x, g.weight((C, C, 3, 3)), g.bias(), name=f"branch{i}")
        branches.append(g.qdq(y, scale=s, name=f"cat_in{i}") if qz else y)
    y = g.node("Concat", branches, name="concat", axis=1)
    if output_qdq:
        y = g.qdq(y, scale=scales[0], name="cat_out")
    return g.conv(y, g.weight((C, 2 * C, 3, 3)), g.bias(), name="after") if output_qdq else g.conv(
        g.qdq(y, scale=max(scales), name="after_in"), g.weight((C, 2 * C, 3, 3)), g.bias(), name="after")


def concat_shared_scale():
    g = G()
    return g.model(_concat(g))


def concat_mismatched_scales():
    g = G()
    return g.model(_concat(g, scales=(0.05, 0.09)))


def concat_mixed_inputs():
    g = G()
    return g.model(_concat(g, quantize=(True, False)))


def concat_float_inputs_quantized_output():
    """ModelOpt's DenseNet style: Concat inputs float, the output quantized."""
    g = G()
    return g.model(_concat(g, quantize=(False, False), output_qdq=True))


def pool(op: str, quantized=True):
    g = G()
    x = g.qdq(g.x, name="pool_in") if quantized else g.x
    attrs = {} if op == "GlobalAveragePool" else {"kernel_shape": [2, 2], "strides": [2, 2]}
    y = g.node(op, [x], name="pool", **attrs)
    y = g.qdq(y, name="pool_out")
    side = 1 if op == "GlobalAveragePool" else HW // 2
    return g.model(g.conv(y, g.weight((C, C, 3, 3)), g.bias()), out_shape=("N", C, side, side))


def gemm(trans_b=1, axis=None, quantize_input=True):
    g = G()
    flat = g.node("Flatten", [g.node("GlobalAveragePool", [g.x], name="gap")], name="flatten")
    x = g.qdq(flat, name="fc_in") if quantize_input else flat
    shape = (10, C) if trans_b else (C, 10)
    w = g.weight(shape, axis=(0 if trans_b else 1) if axis is None else axis)
    y = g.node("Gemm", [x, w, g.const(np.zeros(10, np.float32), "fc_b")], name="fc", transB=trans_b)
    return g.model(y, out_shape=("N", 10))


def matmul_const_b():
    g = G()
    flat = g.node("Flatten", [g.node("GlobalAveragePool", [g.x], name="gap")], name="flatten")
    y = g.node("MatMul", [g.qdq(flat, name="mm_in"), g.weight((C, 10), axis=1)], name="mm")
    return g.model(y, out_shape=("N", 10))


def fp16_scales(opset=19):
    """FP16 graph with FP16 Q/DQ scales (ModelOpt's form; ONNX allows it from opset 19)."""
    g = G(opset, "float16")
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3)), g.bias()))


def fp32_conv_fp16_regions():
    """edgeport's form: FP16 region -> Cast(fp32) -> Q/DQ -> Conv (FP32 types) -> Cast(fp16) -> FP16 region."""
    g = G(17, "float16")
    x32 = g.node("Cast", [g.node("Relu", [g.x], name="relu_in")], to=g.TP.FLOAT, name="to_fp32")
    g.ftype = np.float32
    y = g.conv(g.qdq(x32), g.weight((C, C, 3, 3)), g.bias())
    g.ftype = np.float16
    y16 = g.node("Cast", [y], to=g.TP.FLOAT16, name="to_fp16")
    return g.model(g.node("Relu", [y16], name="relu_out"))


def opset10_per_tensor():
    """Opset 10: Q/DQ exist but have no axis, so weights can only be per tensor."""
    g = G(10)
    return g.model(g.conv(g.qdq(g.x), g.weight((C, C, 3, 3), scales="scalar"), g.bias()))


# -- NVIDIA's parser and builder -------------------------------------------------------------------
def import_rtx():
    """NVIDIA's TensorRT-RTX module, or (None, why) where it does not import (aarch64, no wheel)."""
    from runtime.errors import DependencyError
    from runtime.engines.rtx import import_tensorrt_rtx

    try:
        return import_tensorrt_rtx("The lint-vs-parser checks"), ""
    except DependencyError as exc:
        return None, str(exc)


def aot_probe(trt, path, batches=(1, 2, 4)):
    """Parse and build ``path`` through edgeport's own builder (runtime/engines/builder.py, the code
    `edgeport build --runtime tensorrt-rtx` runs): strongly typed, CPU-only AOT, VERBOSE log and
    DETAILED profiling verbosity, a batch profile over the first input's dynamic dimension.

    Returns (verdict, errors, log): verdict "builds", "parse-error" or "build-error"; errors the
    library's messages as edgeport reports them; log every message of the build.
    """
    import onnx

    from runtime.errors import EdgeportError
    from runtime.engines.builder import build_serialized
    from runtime.engines.policy import TrtVersion, default_workspace_mib
    from runtime.engines.registry import ENGINE_RUNTIMES
    from runtime.engines.tensorrt_rtx import plan_build as plan_rtx_build

    graph_input = onnx.load(str(path), load_external_data=False).graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in graph_input.type.tensor_type.shape.dim]
    shapes = tuple(tuple(b if d == -1 else d for d in dims) for b in batches)
    plan = plan_rtx_build(TrtVersion.parse(trt.__version__), "int8", {"int8"})
    try:
        out = build_serialized(trt, plan, path, graph_input.name, shapes, engine_runtime=ENGINE_RUNTIMES[plan.runtime],
                               workspace_mib=default_workspace_mib(None, False), timing_cache=None, log_severity="VERBOSE", profiling_verbosity="DETAILED")
    except EdgeportError as exc:
        return ("parse-error" if "could not parse" in str(exc) else "build-error"), [str(exc)], []
    return "builds", [], out.log
