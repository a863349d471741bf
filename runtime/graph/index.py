"""One index of an ONNX graph, for everything that reads Q/DQ graphs.

The lint (runtime/graph/qdq_lint.py), the quantizer (exporter/int8/quantize.py), the exporter's
graph rewrites (exporter/graph/: rewrites.py, float_regions.py, qdq_graph.py) and sensitivity
all ask the same questions of a graph:
who produces a tensor, who reads it, is it a constant, what does a Q/DQ pair quantize,
which Concats share a scale. They ask them here. This module only reads graphs; rewriting
them is the exporter's job.
"""

from __future__ import annotations

import json

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
FLOAT_TYPES = (1, 10, 16)  # float32, float16, bfloat16: Casts between them are looked through
# Metadata written by `export --max-drop` (exporter/graph/qdq_graph.py): the node names kept out of
# INT8 on purpose (a JSON list), and the precision they were kept in ("fp16" or "fp32").
KEEP_FLOAT_KEY = "edgeport.kept_float"
KEEP_FLOAT_PRECISION_KEY = "edgeport.kept_float_precision"


def attr_int(node, name: str, default):
    """An integer attribute of ``node`` (``default`` when absent)."""
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def kept_float_names(model) -> list[str]:
    """Node names a Q/DQ graph declares as kept in higher precision on purpose."""
    for prop in model.metadata_props:
        if prop.key == KEEP_FLOAT_KEY:
            try:
                names = json.loads(prop.value)
            except ValueError:
                return []
            return [str(n) for n in names] if isinstance(names, list) else []
    return []


class GraphIndex:
    """Producers, consumers and constants (initializers and Constant nodes) of one graph.

    Built once from a ModelProto; rewriting the graph afterwards makes it stale.
    """

    def __init__(self, model):
        g = model.graph
        self.model = model
        self.nodes = list(g.node)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in g.output}
        self.const_tensors: dict[str, object] = {init.name: init for init in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and n.output:
                value = next((a.t for a in n.attribute if a.name == "value"), None)
                if value is not None:
                    self.const_tensors[n.output[0]] = value
                else:  # value_float(s) / value_int(s): still a constant, of unknown layout here
                    self.const_tensors.setdefault(n.output[0], None)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self._arrays: dict[str, np.ndarray] = {}
        self._by_name: dict[str, object] | None = None

    # -- constants -------------------------------------------------------------------------------
    @property
    def constants(self) -> set[str]:
        return set(self.const_tensors)

    def is_const(self, name: str) -> bool:
        return name in self.const_tensors

    def const_dtype(self, name: str) -> int | None:
        t = self.const_tensors.get(name)
        return t.data_type if t is not None else None

    def const_shape(self, name: str) -> tuple | None:
        t = self.const_tensors.get(name)
        return tuple(t.dims) if t is not None else None

    def array(self, name: str) -> np.ndarray | None:
        """A constant's values (cached), or None for an activation."""
        if self.const_tensors.get(name) is None:
            return None
        if name not in self._arrays:
            from onnx import numpy_helper

            self._arrays[name] = np.asarray(numpy_helper.to_array(self.const_tensors[name]))
        return self._arrays[name]

    def node_named(self, name: str):
        if self._by_name is None:
            self._by_name = {n.name: n for n in self.nodes if n.name}
        return self._by_name[name]

    # -- seeing through ---------------------------------------------------------------------------
    def _up_through(self, name: str, passes) -> str:
        """Walk from ``name`` to the input of its producer while ``passes(producer)`` (at most 4 steps)."""
        for _ in range(4):
            p = self.producer.get(name)
            if p is None or not passes(p):
                return name
            name = p.input[0]
        return name

    def through_casts(self, name: str) -> str:
        """``name`` seen through Casts between float types (FP16 regions, FP16 fallback islands)."""
        return self._up_through(name, lambda p: p.op_type == "Cast" and attr_int(p, "to", 0) in FLOAT_TYPES)

    def through_qdq(self, name: str) -> str:
        """The tensor a chain of Q/DQ nodes quantizes (``name`` itself when none)."""
        return self._up_through(name, lambda p: p.op_type in QDQ_OPS)

    def producer_of(self, name: str):
        """The node producing ``name``, looking through float Casts."""
        return self.producer.get(self.through_casts(name))

    def is_weight(self, name: str) -> bool:
        """A constant, or a constant seen through DequantizeLinear (and QuantizeLinear) and Casts."""
        for _ in range(6):
            name = self.through_casts(name)
            if self.is_const(name):
                return True
            p = self.producer.get(name)
            if p is None or p.op_type not in QDQ_OPS:
                return False
            name = p.input[0]
        return False

    def dq_input(self, tensor: str):
        """The DequantizeLinear producing ``tensor``, directly or through float Casts (None when
        it is not quantized)."""
        p = self.producer_of(tensor)
        return p if p is not None and p.op_type == "DequantizeLinear" else None

    def qdq_dtype(self, node) -> int | None:
        """The integer type a Q produces / a DQ consumes."""
        if len(node.input) > 2 and node.input[2]:
            return self.const_dtype(node.input[2])
        if node.op_type == "QuantizeLinear":
            out = attr_int(node, "output_dtype", 0)
            return out or 2  # uint8: the ONNX default when no zero point is given
        x = node.input[0]
        if self.is_const(x):
            return self.const_dtype(x)
        p = self.producer.get(x)
        if p is not None and p.op_type == "QuantizeLinear":
            return self.qdq_dtype(p)
        return None

    # -- Concat groups ---------------------------------------------------------------------------
    def concat_groups(self, keep=None) -> dict[str, str]:
        """Tensors joined by Concats (inputs and outputs, seen through Q/DQ): {tensor: group root}.

        Such tensors should share one INT8 scale: TensorRT then drops the Concat (each producer
        writes INT8 into its slice) instead of re-quantizing every input. ``keep(tensor)``
        limits the tensors considered (e.g. those with a calibrated range); constants never join.
        """
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for n in self.nodes:
            if n.op_type != "Concat":
                continue
            members = [self.through_qdq(t) for t in [*n.input, *n.output] if t and not self.is_const(t)]
            members = [t for t in members if keep is None or keep(t)]
            for t in members[1:]:
                parent[find(t)] = find(members[0])
        return {t: find(t) for t in parent}

    def concat_node_groups(self) -> dict[str, int]:
        """Concat node name -> id of its shared-scale group (numbered in graph order)."""
        roots = self.concat_groups()
        ids: dict[str, int] = {}
        return {n.name: ids.setdefault(roots.get(self.through_qdq(n.output[0]), n.output[0]), len(ids))
                for n in self.nodes if n.op_type == "Concat"}
