"""The second half of the INT8 diagnosis (runtime/int8_diagnosis.py): does the culprit layer's
error come from its weights or its activations, and which export options help; and the
streaming comparison of graph outputs both halves run on ONNX Runtime CPU.

Two variants of the FP32 graph, each with one kind of the culprit's Q/DQ copied back from the
INT8 graph (same scales, same INT8 weights): only the DequantizeLinear of its weight, or only
the QuantizeLinear/DequantizeLinear pair in front of its activation input(s). Everything else
stays FP32, so each variant's error at the layer output is that kind's own.
"""

from __future__ import annotations

import numpy as np

from runtime.compare import centered_cosine

PREFIX = "edgeport_diag_"
BATCH = 4  # images per ONNX Runtime call: the extra outputs of one batch are what memory holds
CARRIER_RATIO = 2.0  # weights or activations carry the error when their error is this many times the other's


def session_with_outputs(model, names: list[str]):
    """An ONNX Runtime CPU session of ``model`` that also outputs ``names``."""
    from runtime.runners.onnxruntime import create_session

    return create_session(model, extra_outputs=names, what="a graph of the INT8 diagnosis")


def stream_metrics(sessions: list, inputs: np.ndarray, names: list[str], batch: int,
                   other_names: list[str] | None = None) -> list[dict]:
    """Run ``inputs`` through ``sessions`` (the first is the reference) batch by batch; per other
    session, {tensor: (per-sample cosine list, per-sample relative error list)} against the first.
    ``other_names``: the other sessions' names of the same tensors (default: ``names``)."""
    input_name = sessions[0].get_inputs()[0].name
    other_names = other_names or names
    acc = [{n: ([], []) for n in names} for _ in sessions[1:]]
    for start in range(0, len(inputs), batch):
        x = np.ascontiguousarray(inputs[start:start + batch], dtype=np.float32)
        ref = dict(zip(names, sessions[0].run(names, {input_name: x})))
        for sess, into in zip(sessions[1:], acc):
            got = dict(zip(names, sess.run(other_names, {input_name: x})))
            for n in names:
                r = np.asarray(ref[n], dtype=np.float64).reshape(len(x), -1)
                g = np.asarray(got[n], dtype=np.float64).reshape(len(x), -1)
                cos = np.where(np.isfinite(g).all(axis=1), centered_cosine(np.nan_to_num(g), r), -1.0)
                norm = np.linalg.norm(r, axis=1)
                rel = np.linalg.norm(np.nan_to_num(g) - r, axis=1) / np.where(norm > 0, norm, 1.0)
                into[n][0].extend(cos.tolist())
                into[n][1].extend(rel.tolist())
        del ref
    return acc


def _copy_chain(onnx, int8_model, nodes: list, into, tag: str) -> str:
    """Copy ``nodes`` (a Q/DQ chain ending in a DequantizeLinear) and the constants they read
    into ``into`` (a graph), renamed; returns the new name of the chain's output."""
    from onnx import numpy_helper

    inits = {i.name: i for i in int8_model.graph.initializer}
    consts = {n.output[0]: n for n in int8_model.graph.node if n.op_type == "Constant"}
    have = {i.name for i in into.initializer}
    produced = {o for n in nodes for o in n.output}
    renamed = {}
    for node in nodes:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.name = f"{PREFIX}{tag}_{node.name}"
        for k, t in enumerate(node.input):
            if t in produced:
                new.input[k] = renamed[t]
            elif t in inits or t in consts:
                name = f"{PREFIX}{tag}_{t}"
                if name not in have:
                    arr = numpy_helper.to_array(inits[t]) if t in inits else numpy_helper.to_array(
                        next(a.t for a in consts[t].attribute if a.name == "value"))
                    if arr.dtype == np.float16:
                        arr = arr.astype(np.float32)  # a scale inside an FP16 region: FP32 here
                    into.initializer.append(numpy_helper.from_array(arr, name))
                    have.add(name)
                new.input[k] = name
        for k, t in enumerate(node.output):
            renamed[t] = f"{PREFIX}{tag}_{t}"
            new.output[k] = renamed[t]
        into.node.append(new)
    return renamed[nodes[-1].output[0]]


def _chains(int8_model, tensor: str) -> tuple[dict, dict]:
    """The culprit (the INT8 node writing ``tensor``): {input index: chain} for its weights and
    for its activations; a chain is the list of Q/DQ nodes feeding that input."""
    prod = {o: n for n in int8_model.graph.node for o in n.output if o}
    inits = {i.name for i in int8_model.graph.initializer}
    node = prod[tensor]
    weights, acts = {}, {}
    for k, t in enumerate(node.input):
        dq = prod.get(t)
        if not t or dq is None or dq.op_type != "DequantizeLinear":
            continue
        src = dq.input[0]
        q = prod.get(src)
        if src in inits or (q is not None and q.op_type == "Constant"):
            weights[k] = [dq]
        elif q is not None and q.op_type == "QuantizeLinear":
            acts[k] = [q, dq]
    return weights, acts


def variant(fp32_model, int8_model, tensor: str, kind: str, int8_tensor: str | None = None):
    """A copy of ``fp32_model`` whose node writing ``tensor`` reads only its ``kind``
    ("weights" or "activations") through the INT8 graph's Q/DQ (those of the INT8 node writing
    ``int8_tensor``, default the same name). None when it has none."""
    import onnx

    weights, acts = _chains(int8_model, int8_tensor or tensor)
    chains = weights if kind == "weights" else acts
    if not chains:
        return None
    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    graph = model.graph
    kept = []
    for n in graph.node:  # detached copies: clearing the repeated field invalidates its elements
        c = onnx.NodeProto()
        c.CopyFrom(n)
        kept.append(c)
    position = next(i for i, n in enumerate(kept) if tensor in n.output)
    target = kept[position]
    del graph.node[:]
    graph.node.extend(kept[:position])
    for k, chain in chains.items():
        if kind == "activations":
            # The Q reads the FP32 graph's own input of the layer (the INT8 graph may read it through a Cast).
            chain = [_with_input(onnx, chain[0], target.input[k]), chain[1]]
        target.input[k] = _copy_chain(onnx, int8_model, chain, graph, kind[0])
    graph.node.extend(kept[position:])
    return model


def _with_input(onnx, node, name: str):
    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.input[0] = name
    return new


def carrier_of(fp32_model, int8_model, tensor: str, int8_tensor: str, inputs: np.ndarray, batch: int = BATCH,
               jump: float = 0.0):
    """("weights" | "activations" | "both" | None, weights-only metrics, activations-only metrics):
    each metric dict holds the layer output's and the logits' mean cosine against FP32. None:
    neither kind alone reproduces a tenth of the ``jump`` seen in the full INT8 graph."""
    logits = fp32_model.graph.output[0].name
    names = list(dict.fromkeys([tensor, logits]))
    found = {}
    for kind in ("weights", "activations"):
        model = variant(fp32_model, int8_model, tensor, kind, int8_tensor)
        if model is None:
            continue
        sessions = [session_with_outputs(fp32_model, names), session_with_outputs(model, names)]
        metrics = stream_metrics(sessions, inputs, names, batch)[0]
        found[kind] = {"layer_cosine": round(float(np.mean(metrics[tensor][0])), 6),
                       "logits_cosine": round(float(np.mean(metrics[logits][0])), 6)}
    w, a = found.get("weights"), found.get("activations")
    if max([1.0 - v["layer_cosine"] for v in found.values()], default=0.0) < 0.1 * jump:
        return None, w, a
    if w is None or a is None:
        return ("weights" if w else "activations" if a else None), w, a
    ew, ea = 1.0 - w["layer_cosine"], 1.0 - a["layer_cosine"]
    if ew >= CARRIER_RATIO * ea:
        return "weights", w, a
    if ea >= CARRIER_RATIO * ew:
        return "activations", w, a
    return "both", w, a


def _reads_gate(fp32_model, tensor: str) -> str | None:
    """"Mul" when the culprit's input comes from a Mul fed by a Sigmoid (a squeeze-excitation
    gate, or SiLU/Swish): NVIDIA's and Ultralytics' INT8 recipes keep those in float."""
    prod = {o: n for n in fp32_model.graph.node for o in n.output if o}
    node = prod.get(tensor)
    for t in node.input if node is not None else ():
        p = prod.get(t)
        if p is not None and p.op_type == "Mul" and any(
                prod.get(i) is not None and prod[i].op_type in ("Sigmoid", "HardSigmoid") for i in p.input):
            return "Mul"
    return None


def _gated_jumps(diagnosis, fp32_model) -> int:
    """How many of the 5 largest jumps are at layers reading a Sigmoid-gated Mul; 0 unless the
    culprit is one of them or at least two are (one gated layer among many is no pattern)."""
    if diagnosis is None or fp32_model is None or not diagnosis.boundaries:
        return 0
    top = sorted(diagnosis.boundaries, key=lambda b: -b.jump)[:5]
    gated = [b for b in top if b.jump > 0 and _reads_gate(fp32_model, b.tensor)]
    culprit = diagnosis.layer is not None and _reads_gate(fp32_model, diagnosis.tensor)
    return len(gated) if culprit or len(gated) >= 2 else 0


def next_steps(diagnosis, fp32_model, calibration: dict | None) -> list[str]:
    """The export options that help, most direct first, chosen from the finding."""
    calibration = calibration or {}
    method = calibration.get("method") or "minmax"
    other = "percentile" if method != "percentile" else "entropy"
    steps = []
    layer = getattr(diagnosis, "layer", None)
    carrier = getattr(diagnosis, "carrier", None)
    gated = _gated_jumps(diagnosis, fp32_model)
    if gated:
        steps.append(f"--int8-exclude Mul (keeps the layers that read a Sigmoid-gated Mul, as in SE blocks and "
                     f"SiLU, out of INT8: {gated} of the 5 largest error jumps are at such layers)")
    if layer and carrier == "weights":
        steps.append(f"--int8-exclude '{layer}' (its weights do not fit INT8 per channel; calibration cannot "
                     f"change that)")
    elif layer:
        steps.append(f"--calib-method {other} (the {method} range of its input is what quantizes badly)")
        steps.append(f"--int8-exclude '{layer}' (keeps this layer in float)")
    else:
        steps.append(f"--calib-method {other} (ranges that clip outliers)")
    if carrier != "weights" and calibration.get("few"):
        steps.append("--calib-data DIR (a few hundred images typical of your inputs; the ranges came from "
                     f"{calibration.get('samples', 'few')} samples)")
    steps.append("--max-drop POINTS (edgeport keeps the most sensitive layers in float until the budget holds)")
    return steps
