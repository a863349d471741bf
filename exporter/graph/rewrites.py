"""The exporter's graph rewrites, on one graph index (runtime/graph/index.py's ``GraphIndex``).

Every rewrite of a quantized or about-to-be-quantized graph lives here or next door:

- ``fuse_residual_inputs``: residual Adds read their Conv input in float (TensorRT fusion);
- ``quantize_pool_inputs``: Q/DQ on pool inputs (TensorRT pools INT8 data);
- ``fold_preactivation_bn``: pre-activation BatchNorms as depthwise 1x1 Convs (ORT CPU);
- ``float_graph_outputs``: graph outputs written in float, without a last Q/DQ (ORT CPU);
- ``constant_weights_as_initializers``: weights held by Constant nodes (onnxsim folds GELU's x0.5
  into the next Conv that way) become initializers, so the quantizer quantizes them;
- ``lowercase_einsum``: Einsum equations in lowercase letters without spaces (torchvision's MaxViT
  writes "B G H I D, ..."; NVIDIA's parser accepts lowercase letters only);
- ``release_orphan_qdq`` / ``prune_dead_qdq`` / ``prune_unused_initializers``: clean-up;
- FP16 float regions: exporter/graph/float_regions.py; layers back to float and FP16
  regions read back: exporter/graph/qdq_graph.py.

An index is built once per rewrite, before it changes the graph; ``onnx`` is imported lazily.
"""

from __future__ import annotations

import math

import numpy as np

from runtime.graph.index import QDQ_OPS, GraphIndex

POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")


def prune_unused_initializers(graph) -> int:
    """Drop initializers no node reads; returns how many went."""
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    dropped = len(graph.initializer) - len(keep)
    if dropped:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return dropped


def prune_dead_qdq(graph) -> None:
    """Drop Q/DQ nodes nobody reads any more, then unused initializers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    prune_unused_initializers(graph)


def release_orphan_qdq(model, quantized_units: set[str]) -> None:
    """An activation Q/DQ that no quantized layer reads any more goes, for every reader.

    ONNX Runtime rewires *every* consumer of a quantized tensor to its DequantizeLinear: in a
    DenseNet the first BatchNorm of a block reads the block input through the Q/DQ that its
    Concats asked for. Once those Concats fall back, that Q/DQ is there for nobody; keeping
    it would leave rounding in a graph whose layers are all float.
    """
    index = GraphIndex(model)
    for dq in [n for n in index.nodes if n.op_type == "DequantizeLinear"]:
        q = index.producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight (constant) DQ
        users = index.consumers.get(dq.output[0], [])
        if dq.output[0] in index.outputs or any(u.name in quantized_units for u in users):
            continue
        for u in users:
            for idx, t in enumerate(u.input):
                if t == dq.output[0]:
                    u.input[idx] = q.input[0]


def fuse_residual_inputs(model) -> int:
    """Leave float the Add input that comes straight from a Conv/Gemm (one per Add).

    TensorRT fuses Conv + Add(+ReLU) when the Conv's output feeds the Add directly and the
    other (residual) input is quantized; a Q/DQ pair between them would block the fusion.
    In a PyTorch ResNet the first Add input is the main branch (``out += identity``).
    """
    producer = GraphIndex(model).producer
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        dq = [producer.get(i) for i in node.input]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in dq):
            continue
        for idx in (0, 1):
            q = producer.get(dq[idx].input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            src = producer.get(q.input[0])
            if src is not None and src.op_type in ("Conv", "Gemm"):
                node.input[idx] = q.input[0]
                changed += 1
                break
    prune_dead_qdq(model.graph)  # the Q/DQ pairs the fused inputs no longer read
    return changed


def quantize_pool_inputs(model, ranges: dict) -> int:
    """Q/DQ (symmetric INT8, per tensor, scale amax/127 as ORT computes it) on the input of every
    MaxPool/AveragePool/GlobalAveragePool not already quantized; returns how many were added."""
    producer = GraphIndex(model).producer
    added: dict[str, str] = {}
    new_nodes = []
    for node in model.graph.node:
        x = node.input[0] if node.op_type in POOL_OPS and node.input else ""
        p = producer.get(x)
        if x and (p is None or p.op_type != "DequantizeLinear") and x in ranges:
            amax = max(abs(ranges[x][0]), abs(ranges[x][1]))
            if x not in added and math.isfinite(amax) and amax > 0:
                new_nodes += _qdq_pair(model, x, amax)
                added[x] = new_nodes[-1].output[0]
            if x in added:
                node.input[0] = added[x]
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return len(added)


def _qdq_pair(model, x: str, amax: float) -> list:
    """QuantizeLinear -> DequantizeLinear of ``x`` (symmetric INT8, zero point 0), initializers added."""
    from onnx import helper, numpy_helper

    base = f"{x}_pool"
    scale, zero = f"{base}_scale", f"{base}_zero_point"
    model.graph.initializer.extend([numpy_helper.from_array(np.array(amax / 127.0, np.float32), scale),
                                    numpy_helper.from_array(np.array(0, np.int8), zero)])
    q_out = f"{base}_QuantizeLinear_Output"
    return [helper.make_node("QuantizeLinear", [x, scale, zero], [q_out], name=f"{base}_QuantizeLinear"),
            helper.make_node("DequantizeLinear", [q_out, scale, zero], [f"{base}_DequantizeLinear_Output"],
                             name=f"{base}_DequantizeLinear")]


def float_graph_outputs(model) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair in front of each graph output, in place:
    the producing layer writes the output in float. Returns how many outputs were changed."""
    index = GraphIndex(model)
    producer = index.producer

    def readers(t: str) -> int:
        return len(index.consumers.get(t, []))

    dead, changed = [], 0
    for out in model.graph.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or readers(q.input[0]) != 1 or readers(dq.input[0]) != 1:
            continue
        src.output[list(src.output).index(q.input[0])] = out.name
        dead += [q, dq]
        changed += 1
    for n in dead:
        model.graph.node.remove(n)
    prune_unused_initializers(model.graph)
    return changed


WEIGHT_SLOTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,)}


def constant_weights_as_initializers(model) -> int:
    """Turn Constant nodes read as a Conv/ConvTranspose/Gemm weight or bias (or a MatMul's B) into
    initializers of the same name, in place; returns how many were.

    ONNX Runtime's quantizer treats only initializers as weights: a weight held by a Constant
    node (onnxsim folds GELU's x0.5 into the next Conv's weight that way) would be quantized
    as an activation, per tensor, and the lint rightly refuses that graph.
    """
    from onnx import numpy_helper

    index = GraphIndex(model)
    slots = {n.input[i] for n in index.nodes for i in WEIGHT_SLOTS.get(n.op_type, ()) if i < len(n.input)}
    moved = []
    for node in index.nodes:
        if node.op_type != "Constant" or not node.output or node.output[0] not in slots:
            continue
        value = index.const_tensors.get(node.output[0])
        if value is None:  # value_float(s)/value_int(s): not a weight tensor
            continue
        model.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(value), node.output[0]))
        moved.append(node)
    for node in moved:
        model.graph.node.remove(node)
    return len(moved)


def ensure_node_names(model) -> None:
    """Name every unnamed node ``<op>_<i>`` (ORT's nodes_to_exclude and the lint refer to names)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


# -- pre-activation BatchNorms as depthwise convolutions (the CPU INT8 graph) --------------------
def fold_preactivation_bn(model) -> int:
    """Rewrite BatchNormalizations that no Conv precedes as depthwise 1x1 Convs, in place.

    A BN right after a Conv is left alone (ONNX Runtime folds it into that Conv). Only 4-D
    BNs with constant parameters are rewritten; returns how many were.
    """
    import onnx

    index = GraphIndex(model)
    ranks = _tensor_ranks(model)
    rewritten = 0
    new_nodes = []
    for node in model.graph.node:
        if not _foldable_bn(node, index, ranks):
            new_nodes.append(node)
            continue
        new_nodes.append(_bn_as_depthwise_conv(model, node, index))
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        prune_unused_initializers(model.graph)
        onnx.checker.check_model(model)
    return rewritten


def _foldable_bn(node, index: GraphIndex, ranks: dict) -> bool:
    if node.op_type != "BatchNormalization" or len(node.input) != 5:
        return False
    src = index.producer.get(node.input[0])
    after_conv = src is not None and src.op_type == "Conv" and len(index.consumers.get(node.input[0], [])) == 1
    return (all(i in index.const_tensors and index.const_tensors[i] is not None for i in node.input[1:5])
            and len([o for o in node.output if o]) == 1 and ranks.get(node.input[0]) == 4 and not after_conv)


def _bn_as_depthwise_conv(model, node, index: GraphIndex):
    """The Conv computing ``node`` (a BN): weight gamma/sqrt(var+eps), bias beta-mean*weight (exact in float)."""
    from onnx import helper, numpy_helper

    eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    gamma, beta, mean, var = (index.array(i).astype(np.float64) for i in node.input[1:5])
    weight = gamma / np.sqrt(var + float(eps))
    bias = beta - mean * weight
    channels = int(weight.shape[0])
    base = (node.name or node.output[0]).strip("/").replace("/", "_") + "_as_dwconv"
    w_name, b_name = f"{base}_W", f"{base}_B"
    model.graph.initializer.extend([
        numpy_helper.from_array(weight.reshape(channels, 1, 1, 1).astype(np.float32), w_name),
        numpy_helper.from_array(bias.astype(np.float32), b_name),
    ])
    return helper.make_node("Conv", [node.input[0], w_name, b_name], [node.output[0]], name=base,
                            group=channels, kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1])


def _tensor_ranks(model) -> dict[str, int]:
    """Rank of every tensor that ONNX shape inference can tell."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - unusual models: fold nothing rather than fail
        return {}
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    return ranks


def lowercase_einsum(model) -> int:
    """Rewrite each Einsum equation with its subscripts renamed to lowercase letters in order of
    first use and spaces dropped ("B G H I D, B G H J D -> B G H I J" -> "abcde,abcfe->abcdf"):
    the same contraction, in the only alphabet TensorRT's ONNX parser accepts. Equations with more
    than 26 distinct subscripts are left as they are. Returns how many were rewritten."""
    import re
    import string

    changed = 0
    for node in model.graph.node:
        if node.op_type != "Einsum":
            continue
        attr = next(a for a in node.attribute if a.name == "equation")
        equation = attr.s.decode()
        letters = list(dict.fromkeys(re.findall(r"[A-Za-z]", equation)))
        if len(letters) > 26:
            continue
        mapping = dict(zip(letters, string.ascii_lowercase))
        rewritten = re.sub(r"[A-Za-z]", lambda m: mapping[m.group(0)], re.sub(r"\s+", "", equation))
        if rewritten != equation:
            attr.s = rewritten.encode()
            changed += 1
    return changed
