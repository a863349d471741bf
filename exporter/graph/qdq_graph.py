"""Rewriting Q/DQ graphs: layers taken back to float (FP16 or FP32), and FP16 regions read back.

Falling back: ``MixedGraph.variant(float_units, fallback)`` removes the Q/DQ of the given
units from a copy of the Q/DQ graph (their inputs read the float tensors again, their
weights are the FP32 ones of model.onnx). With ``fallback="fp16"`` the weighted layers
among them get FP16 weights between two Casts, so a strongly typed TensorRT build runs
them in FP16 instead of FP32 (TensorRT 10+ takes every layer's precision from the ONNX
types; an un-quantized layer of an FP32 graph would run in FP32). The names of the units
kept in higher precision are recorded in the model's metadata under ``edgeport.kept_float``:
runtime/graph/qdq_lint.py then lists them as float by design instead of reporting them.

Graph facts (producers, constants, Concat groups) come from runtime/graph/index.py's
``GraphIndex``; ``onnx`` is imported lazily.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from runtime.errors import DependencyError, EdgeportError
from runtime.graph.index import KEEP_FLOAT_KEY, KEEP_FLOAT_PRECISION_KEY, GraphIndex, kept_float_names

from exporter.graph.rewrites import POOL_OPS, prune_dead_qdq, prune_unused_initializers, release_orphan_qdq

FALLBACKS = ("fp16", "fp32")
WEIGHTED = ("Conv", "Gemm", "MatMul")


def load_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise DependencyError(f"Rewriting Q/DQ graphs needs the Python package 'onnx', which is not importable "
                              f"here ({exc}).", hint="Install it with: pip install onnx") from exc
    return onnx


@dataclasses.dataclass(frozen=True)
class Unit:
    """One quantized layer of a Q/DQ graph."""

    name: str  # node name (the Q/DQ graph keeps model.onnx's node names)
    op_type: str
    output: str  # its output tensor (same name in model.onnx)
    macs: int  # multiply-accumulates per sample (0 for Add / Concat)
    group: int | None = None  # Concat: id of its shared-scale group


def set_metadata(model, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value


class MixedGraph:
    """A Q/DQ graph and its FP32 original: the quantized units, their MACs, and variants
    with some units taken back to float."""

    def __init__(self, qmodel, fp32model):
        onnx = load_onnx()
        self.onnx = onnx
        qmodel = fp32_regions(qmodel, fp32model)  # FP16 float regions read back as FP32 (exact)
        self.qmodel = qmodel
        self.fp32 = fp32model
        self.fp32_inits = {i.name: i for i in fp32model.graph.initializer}
        self.fp32_index = GraphIndex(fp32model)
        self.index = index = GraphIndex(qmodel)
        nodes = index.nodes
        self.producer = index.producer
        self.already_float = kept_float_names(qmodel)
        shapes = _output_shapes(onnx, fp32model)
        self.total_macs = 0
        units = []
        groups = index.concat_node_groups()
        for n in nodes:
            if n.op_type in WEIGHTED:
                # The FP32 node: a layer already behind FP16 Casts writes a renamed tensor.
                macs = _macs(self.fp32_node(n) or n, shapes, self._weight_dims(n))
                self.total_macs += macs
                if self._is_weighted_unit(n):
                    units.append(Unit(n.name, n.op_type, n.output[0], macs))
            elif n.op_type in ("Add", "Concat") + POOL_OPS and self._dq_inputs(n):
                act = [i for i in n.input if i and not self._is_const(i)]
                if n.op_type == "Add" and len(act) != 2:
                    continue  # a bias / constant add, not a residual join
                units.append(Unit(n.name, n.op_type, n.output[0], 0,
                                  groups.get(n.name) if n.op_type == "Concat" else None))
        self.units = units
        self.by_name = {u.name: u for u in units}

    # -- graph facts ---------------------------------------------------------------------
    def _is_const(self, name: str) -> bool:
        """A constant, or a constant behind Q/DQ (a quantized weight)."""
        return self.index.is_weight(name)

    def _dq_inputs(self, node) -> list[int]:
        return [i for i, t in enumerate(node.input)
                if t and self.producer.get(t) is not None and self.producer[t].op_type == "DequantizeLinear"]

    def _is_weighted_unit(self, node) -> bool:
        if len(node.input) < 2:
            return False
        if node.op_type == "MatMul" and not self._is_const(node.input[1]):
            return False  # activation x activation: not a weighted layer
        return bool(self._dq_inputs(node))

    def fp32_node(self, node):
        """The FP32 graph's node for a Q/DQ graph node: same output tensor (or, for a layer already
        behind FP16 Casts, same name)."""
        ref = self.fp32_index.producer.get(node.output[0]) if node.output else None
        if (ref is None or ref.op_type != node.op_type) and node.name:
            try:
                ref = self.fp32_index.node_named(node.name)
            except KeyError:
                ref = None
        return ref if ref is not None and ref.op_type == node.op_type else None

    def _weight_dims(self, node) -> tuple | None:
        ref = self.fp32_node(node)
        if ref is None or len(ref.input) < 2 or ref.input[1] not in self.fp32_inits:
            return None
        return tuple(self.fp32_inits[ref.input[1]].dims)

    def macs_share(self, names) -> float:
        """Share of the graph's weighted-layer MACs that the units ``names`` hold."""
        if not self.total_macs:
            return 0.0
        return sum(self.by_name[n].macs for n in names if n in self.by_name) / self.total_macs

    def int8_macs_share(self, float_units) -> float:
        """Share of all weighted-layer MACs still in INT8 when ``float_units`` fall back."""
        quantized = [u.name for u in self.units if u.op_type in WEIGHTED and u.name not in set(float_units)]
        return self.macs_share(quantized)

    def dependent_adds(self, float_units) -> dict[str, str]:
        """Adds fed directly by a weighted unit that falls back to FP16: {add: that unit}.

        TensorRT fuses an INT8 Conv with the Add it feeds; once the Conv runs in FP16 (behind
        a Cast) the Add runs in float anyway, so its own Q/DQ only adds rounding error.
        """
        wanted = {n for n in float_units if n in self.by_name and self.by_name[n].op_type in WEIGHTED}
        out = {}
        for u in self.units:
            if u.op_type != "Add" or u.name in float_units:
                continue
            node = self.node_named(u.name)
            for t in node.input:
                p = self.producer.get(t)
                if p is not None and p.name in wanted:
                    out[u.name] = p.name
        return out

    def node_named(self, name: str):
        """The Q/DQ graph's node called ``name``."""
        return self.index.node_named(name)

    # -- variants --------------------------------------------------------------------------
    def variant(self, float_units, fallback: str = "fp32", fp16_unsafe=frozenset()):
        """A copy of the Q/DQ graph with ``float_units`` (node names) out of INT8.

        ``fallback="fp16"``: weighted units run in FP16 (Casts around, FP16 weights), except
        those in ``fp16_unsafe`` (ranges beyond FP16), which stay FP32; Adds and Concats stay
        FP32. Returns the ModelProto; its metadata names every unit kept out of INT8.
        """
        if fallback not in FALLBACKS:
            raise EdgeportError(f"Unknown fallback precision '{fallback}'; choose one of {', '.join(FALLBACKS)}.")
        onnx = self.onnx
        names = [n for n in dict.fromkeys(float_units)]
        unknown = [n for n in names if n not in self.by_name]
        if unknown:
            raise EdgeportError(f"{len(unknown)} layer(s) to keep in float are not quantized layers of this graph: "
                                f"{', '.join(unknown[:5])}.")
        if fallback == "fp16":
            names += [a for a in self.dependent_adds(names) if a not in names]
        model = onnx.ModelProto()
        model.CopyFrom(self.qmodel)
        graph = model.graph
        producer = GraphIndex(model).producer
        have_inits = {i.name for i in graph.initializer}
        wanted = set(names)
        new_nodes = []
        for node in graph.node:
            if node.name not in wanted:
                new_nodes.append(node)
                continue
            ref = self.fp32_node(node)
            if ref is None:
                raise EdgeportError(f"Layer '{node.name}' of the Q/DQ graph has no counterpart in the FP32 graph "
                                    f"(no node writes '{node.output[0]}'); cannot take it back to float.")
            for idx, t in enumerate(node.input):
                p = producer.get(t)
                if not t or p is None or p.op_type != "DequantizeLinear":
                    continue
                original = ref.input[idx]
                if original in self.fp32_inits and original not in have_inits:
                    graph.initializer.append(self.fp32_inits[original])
                    have_inits.add(original)
                node.input[idx] = original
            if fallback == "fp16" and node.op_type in WEIGHTED and node.name not in fp16_unsafe:
                new_nodes += _fp16_island(onnx, node, graph, self.fp32_inits, have_inits)
            else:
                new_nodes.append(node)
        del graph.node[:]
        graph.node.extend(new_nodes)
        release_orphan_qdq(model, {u.name for u in self.units} - wanted)
        prune_dead_qdq(graph)
        kept = list(dict.fromkeys(self.already_float + names))
        set_metadata(model, KEEP_FLOAT_KEY, json.dumps(kept))
        if kept:
            set_metadata(model, KEEP_FLOAT_PRECISION_KEY, fallback)
        return model

    def only(self, unit: str):
        """The FP32 graph with only ``unit`` quantized (every other unit back to float)."""
        return self.variant([u.name for u in self.units if u.name != unit], "fp32")


def fp32_regions(qmodel, fp32model=None):
    """A copy of a Q/DQ graph with its FP16 float regions (exporter/graph/float_regions.py) and FP16
    fallback islands taken back to FP32: float-to-float Casts removed, FP16 constants FP32 again.

    A converted constant is named ``<name>_fp16``: when ``fp32model`` (model.onnx) has
    ``<name>``, its FP32 values come back exactly; other FP16 constants are widened. A Cast's
    input keeps its name, except for the ``<t>_fp16 -> <t>`` Casts that end an FP16 island
    or region (then the producer writes ``<t>`` again).
    """
    onnx = load_onnx()
    model = onnx.ModelProto()
    model.CopyFrom(qmodel)
    g = model.graph
    floats = _float_tensors(onnx, model)
    casts = [n for n in g.node if n.op_type == "Cast" and n.input[0] in floats
             and next((a.i for a in n.attribute if a.name == "to"), 0) in (1, 10)]
    if not casts and not any(i.data_type == 10 for i in g.initializer):
        return model
    rename: dict[str, str] = {}
    for n in casts:
        src, out = n.input[0], n.output[0]
        if src.endswith("_fp16") and src[: -len("_fp16")] == out:
            rename[src] = out  # the producer writes the original name again
        else:
            rename[out] = src

    def resolve(t: str) -> str:
        for _ in range(8):
            if t not in rename:
                break
            t = rename[t]
        return t

    kept = [n for n in g.node if n not in casts]
    for n in kept:
        n.input[:] = [resolve(t) if t else t for t in n.input]
        n.output[:] = [resolve(t) for t in n.output]
    del g.node[:]
    g.node.extend(kept)
    _constants_to_fp32(g, fp32model)
    return model


def _constants_to_fp32(g, fp32model) -> None:
    """FP16 initializers and Constants back to FP32: model.onnx's own values where it has them."""
    from onnx import numpy_helper

    ref = {i.name: i for i in fp32model.graph.initializer} if fp32model is not None else {}
    have = {i.name for i in g.initializer}
    inits = []
    for init in g.initializer:
        if init.data_type != 10:
            inits.append(init)
            continue
        base = init.name[: -len("_fp16")] if init.name.endswith("_fp16") else None
        if base and base in ref and ref[base].data_type == 1:
            if base not in have:
                inits.append(ref[base])
                have.add(base)
            for n in g.node:
                n.input[:] = [base if t == init.name else t for t in n.input]
        else:
            inits.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    del g.initializer[:]
    g.initializer.extend(inits)
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == 10:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
    del g.value_info[:]
    prune_unused_initializers(g)


def _float_tensors(onnx, model) -> set[str]:
    """Names of the float32/float16 tensors (shape inference, initializers, graph inputs)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - the declared types are still useful
        inferred = model
    g = inferred.graph
    out = {vi.name for vi in [*g.input, *g.output, *g.value_info] if vi.type.tensor_type.elem_type in (1, 10)}
    return out | {i.name for i in g.initializer if i.data_type in (1, 10)}


def _fp16_island(onnx, node, graph, fp32_inits: dict, have_inits: set) -> list:
    """[Cast(x -> fp16), node with FP16 constants, Cast(y -> fp32)], keeping the output name."""
    from onnx import TensorProto, helper, numpy_helper

    x16 = f"{node.input[0]}_{node.name}_fp16in"
    inputs = [x16]
    for t in node.input[1:]:
        if not t:
            inputs.append(t)
            continue
        name16 = f"{t}_fp16"
        if name16 not in have_inits:
            arr = numpy_helper.to_array(fp32_inits[t]) if t in fp32_inits else None
            if arr is None:
                arr = next(numpy_helper.to_array(i) for i in graph.initializer if i.name == t)
            graph.initializer.append(numpy_helper.from_array(arr.astype(np.float16), name16))
            have_inits.add(name16)
        inputs.append(name16)
    out = node.output[0]
    y16 = f"{out}_fp16"
    cast_in = helper.make_node("Cast", [node.input[0]], [x16], name=f"{node.name}_CastToFp16", to=TensorProto.FLOAT16)
    del node.input[:]
    node.input.extend(inputs)
    node.output[0] = y16
    cast_out = helper.make_node("Cast", [y16], [out], name=f"{node.name}_CastToFp32", to=TensorProto.FLOAT)
    return [cast_in, node, cast_out]


def _output_shapes(onnx, model) -> dict[str, list]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - MACs are informative; a graph shape inference cannot do gets 0
        inferred = model
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def _macs(node, shapes: dict, wdims: tuple | None) -> int:
    """MACs per sample of a weighted layer: output elements x weights per output element."""
    out = shapes.get(node.output[0])
    if not out or wdims is None or any(d is None for d in out[1:]) or not wdims:
        return 0
    if node.op_type == "Conv":
        per_output = int(np.prod(wdims[1:]))
    elif node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        per_output = wdims[1] if trans_b else wdims[0]
    else:  # MatMul with a constant [K, N] weight
        per_output = wdims[-2] if len(wdims) >= 2 else 1
    return int(np.prod(out[1:])) * int(per_output)
