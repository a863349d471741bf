"""FP16 float regions in a Q/DQ graph: what is not INT8 runs in FP16, not FP32.

A strongly typed TensorRT build (10.x, 11, TensorRT-RTX) takes every tensor's precision from
the ONNX types. In an FP32 Q/DQ graph every tensor outside the INT8 layers stays FP32
(DenseNet's pre-activation BatchNorms and ReLUs, a classifier's tail, layers an accuracy
budget kept out of INT8). This pass gives those regions FP16 types, as NVIDIA's ModelOpt
does (``--high_precision_dtype fp16``), in a form chosen by building the candidates with
NVIDIA's real builder (docs/int8.md, "FP16 float regions"):

- the opset stays (17 by default: TensorRT 8.6 parses up to 17), so QuantizeLinear and
  DequantizeLinear keep FP32 scales and FP32 data (FP16 scales need opset 19);
- every node that reads a DequantizeLinear output keeps FP32 types: TensorRT fuses Q/DQ into
  the layer only when the DequantizeLinear feeds it directly (measured: ``DQ -> Cast -> pool``
  made TensorRT-RTX pool in FP16 instead of INT8);
- every other float node gets FP16 types; Casts join the two (``<tensor>_to_fp16`` /
  ``<tensor>_to_fp32``); a Cast that would undo another one is not added;
- graph inputs and outputs stay FP32 (a graph output computed in FP16 is renamed
  ``<output>_fp16`` and Cast back);
- a node stays FP32 when its calibrated output range comes near FP16's limit, when a
  constant it reads exceeds FP16, or when it is in ``keep_fp32`` (``--fallback-precision
  fp32`` layers);
- a node also stays FP32 when a float tensor it reads or writes lies wholly below FP16's
  smallest normal (calibrated max |x| under 6.1e-5, not zero): in FP16 those values are
  subnormal or flushed to zero, and the INT8 layer after them would read zeros (random-init
  MobileNetV3 / EfficientNet: 71 of 123 tensors). Such nodes are listed in ``underflow``.

exporter/graph/qdq_graph.py's ``fp32_regions`` is the inverse (it reads these graphs back).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from runtime.graph.index import QDQ_OPS, GraphIndex

from exporter.graph.rewrites import prune_unused_initializers

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
FP16_MAX = 65504.0
FP16_SAFE = FP16_MAX / 4  # margin: calibration ranges underestimate the tails
FP16_MIN_NORMAL = 6.103515625e-05  # 2**-14: below it FP16 loses precision, then flushes to zero
# Inputs ONNX requires to be float32 whatever the data type (input index per op type).
_FP32_SLOTS = {"Resize": (1, 2), "Upsample": (1,)}
# Ops that read only the shape of their float inputs.
_TYPE_FREE = ("Shape", "Size")
_SUFFIX = {FLOAT16: "fp16", FLOAT: "fp32"}


@dataclasses.dataclass
class RegionStats:
    """What the pass did."""

    fp16_nodes: int = 0
    int8_adjacent_fp32: int = 0  # nodes kept FP32 because they read a DequantizeLinear
    fp32_nodes: list[str] = dataclasses.field(default_factory=list)  # kept FP32 for range or on request
    underflow: list[str] = dataclasses.field(default_factory=list)  # of fp32_nodes: tensors below FP16's normals
    casts: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def float_types(model) -> dict[str, int]:
    """Element type of every float32/float16 tensor (shape inference + declarations + constants)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - what the graph declares is still useful
        inferred = model
    g = inferred.graph
    types = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type in (FLOAT, FLOAT16):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        if init.data_type in (FLOAT, FLOAT16):
            types[init.name] = init.data_type
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value" and a.t.data_type in (FLOAT, FLOAT16):
                types[n.output[0]] = a.t.data_type
    return types


class _Rewriter:
    """One pass over the nodes in graph order, assigning FP16/FP32 and adding Casts."""

    def __init__(self, model, ranges: dict, keep_fp32: set):
        from onnx import helper, numpy_helper

        self.helper, self.nh = helper, numpy_helper
        self.g = model.graph
        self.types = float_types(model)
        self.ranges, self.keep_fp32 = ranges, keep_fp32
        index = GraphIndex(model)
        # Constants with a tensor value (initializers and Constant nodes): their float type is
        # changed by converting the values, not by a Cast.
        self.consts = {t: v for t, v in index.const_tensors.items() if v is not None}
        self.dq_out = {n.output[0] for n in index.nodes if n.op_type == "DequantizeLinear"}
        self.outputs = {o.name for o in self.g.output}
        self.cur = {i.name: i.type.tensor_type.elem_type for i in self.g.input}
        self.alias: dict[str, str] = {}  # output of a dropped no-op Cast -> its input
        self.widened: dict[str, str] = {}  # FP32 tensor made by Cast from FP16 -> that FP16 tensor
        self.converted: dict[tuple[str, int], str] = {}
        self.casts: dict[tuple[str, int], str] = {}
        self.nodes: list = []
        self.stats = RegionStats()

    def const_max(self, name: str) -> float:
        init = self.consts.get(name)
        if init is None or init.data_type not in (FLOAT, FLOAT16):
            return 0.0
        arr = self.nh.to_array(init)
        return float(np.abs(arr).max()) if arr.size else 0.0

    def precision(self, node) -> str:
        """fp16 / fp32 (compute types), or qdq / cast / free / none (kept as they are)."""
        if node.op_type in QDQ_OPS:
            return "qdq"
        if node.op_type == "Cast":
            return "cast"
        if node.op_type in _TYPE_FREE:
            return "free"
        if node.op_type == "Constant" or not any(t in self.types for t in [*node.input, *node.output] if t):
            return "none"
        if any(self.alias.get(i, i) in self.dq_out for i in node.input):
            self.stats.int8_adjacent_fp32 += 1
            return "fp32"
        ranged = [self.ranges[o] for o in node.output if o in self.ranges]
        tiny = self.underflowing([self.alias.get(i, i) for i in node.input] + list(node.output))
        if tiny:
            self.stats.fp32_nodes.append(node.name)
            self.stats.underflow.append(tiny)
            return "fp32"
        if (node.name in self.keep_fp32 or any(max(abs(lo), abs(hi)) > FP16_SAFE for lo, hi in ranged)
                or any(self.const_max(i) > FP16_MAX for i in node.input if i)):
            self.stats.fp32_nodes.append(node.name)
            return "fp32"
        self.stats.fp16_nodes += 1
        return "fp16"

    def underflowing(self, tensors) -> str | None:
        """The first of ``tensors`` whose calibrated range lies wholly below FP16's smallest normal."""
        for t in tensors:
            if t in self.ranges and t not in self.consts:
                amax = max(abs(self.ranges[t][0]), abs(self.ranges[t][1]))
                if 0.0 < amax < FP16_MIN_NORMAL:
                    return t
        return None

    def constant_as(self, name: str, to: int) -> str:
        key = (name, to)
        if key not in self.converted:
            arr = self.nh.to_array(self.consts[name]).astype(np.float16 if to == FLOAT16 else np.float32)
            new = f"{name}_{_SUFFIX[to]}"
            self.g.initializer.append(self.nh.from_array(arr, new))
            self.converted[key] = new
        return self.converted[key]

    def cast_to(self, name: str, to: int) -> str:
        if to == FLOAT16 and name in self.widened:  # FP16 -> FP32 -> FP16: read the FP16 tensor
            return self.widened[name]
        key = (name, to)
        if key not in self.casts:
            out = f"{name}_to_{_SUFFIX[to]}"
            self.nodes.append(self.helper.make_node("Cast", [name], [out], name=f"{out}_Cast", to=to))
            self.casts[key] = out
            self.cur[out] = to
            self.stats.casts += 1
            if to == FLOAT:
                self.widened[out] = name
        return self.casts[key]

    def visit(self, node) -> None:
        for idx, t in enumerate(node.input):
            if t in self.alias:
                node.input[idx] = self.alias[t]
        prec = self.precision(node)
        if prec == "cast":
            self.visit_cast(node)
            return
        want = {"fp16": FLOAT16, "fp32": FLOAT, "qdq": FLOAT}.get(prec)
        for idx, t in enumerate(node.input):
            if want is None or not t or t not in self.types:
                continue
            need = FLOAT if idx in _FP32_SLOTS.get(node.op_type, ()) else want
            if t in self.consts:
                if self.types[t] != need:
                    node.input[idx] = self.constant_as(t, need)
            elif self.cur.get(t, self.types[t]) != need:
                node.input[idx] = self.cast_to(t, need)
        for o in node.output:
            if o in self.types:
                self.cur[o] = want if prec in ("fp16", "fp32") else self.types[o]
        self.nodes.append(node)

    def visit_cast(self, node) -> None:
        to = next(a.i for a in node.attribute if a.name == "to")
        src, out = node.input[0], node.output[0]
        have = self.cur.get(src, self.types.get(src))
        if have == to and out not in self.outputs:
            self.alias[out] = src  # a no-op now that its input already has that type
            return
        if have == FLOAT16 and to == FLOAT:
            self.widened[out] = src
        self.cur[out] = to
        self.nodes.append(node)

    def finish(self) -> None:
        """FP32 graph outputs, dead Casts and initializers out, stale value_info cleared."""
        for out in self.g.output:
            if self.cur.get(out.name) == FLOAT16:
                renamed = f"{out.name}_fp16"
                for n in self.nodes:
                    n.output[:] = [renamed if t == out.name else t for t in n.output]
                    n.input[:] = [renamed if t == out.name else t for t in n.input]
                self.nodes.append(self.helper.make_node("Cast", [renamed], [out.name], name=f"{out.name}_CastToFp32",
                                                        to=FLOAT))
                self.stats.casts += 1
        while True:
            used = {i for n in self.nodes for i in n.input} | self.outputs
            dead = [n for n in self.nodes if n.op_type == "Cast" and n.output[0] not in used]
            if not dead:
                break
            self.nodes = [n for n in self.nodes if n not in dead]
        del self.g.node[:]
        self.g.node.extend(self.nodes)
        del self.g.value_info[:]  # stale types; ONNX Runtime and TensorRT infer their own
        prune_unused_initializers(self.g)


def fp16_float_regions(model, ranges: dict | None = None, keep_fp32=()) -> RegionStats:
    """Give ``model`` (a Q/DQ ModelProto) FP16 float regions, in place; returns what changed.

    ``ranges``: calibrated ``{tensor: [min, max]}`` (calibration.json); nodes whose output
    range comes near FP16's limit stay FP32. ``keep_fp32``: node names that stay FP32.
    """
    rw = _Rewriter(model, ranges or {}, set(keep_fp32))
    for node in list(model.graph.node):
        rw.visit(node)
    rw.finish()
    return rw.stats
