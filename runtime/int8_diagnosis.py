"""Why an INT8 graph breaks: the first layer where its error against FP32 jumps, whether that
layer's weights or its activations carry the error, and the export options that help.

Measured on ONNX Runtime CPU (onnx + numpy, no torch), so ``edgeport verify`` can run it on a
device. The golden inputs are streamed through model.onnx and the failing Q/DQ graph in small
batches (``batch`` samples at a time, at most ``max_samples``), with the outputs of the
quantized layers added as extra graph outputs in both graphs: the layers whose inputs come
from DequantizeLinear (Conv, Gemm, MatMul, residual Add, Concat, pools), at most
``max_boundaries`` of them, not every op's output. Per boundary: the mean centered cosine and
the relative L2 error of the INT8 tensor against the FP32 one.

The jump criterion: a boundary's *error* is 1 - mean cosine; its *jump* is its error minus the
largest error of the nearest boundaries upstream of it (0 for the first layers), so a layer is
not blamed for error it only passes on. The culprit is the first boundary in topological order
whose jump is at least half the largest jump (``JUMP_SHARE``), provided the largest jump is at
least ``MIN_JUMP``. Then the culprit's Q/DQ are put back into the FP32 graph one kind at a time
(runtime/int8_variants.py): only its weights' Q/DQ, only its activations' Q/DQ; the kind whose
layer-output error is at least twice the other's carries the error ("both" otherwise).

Cost: one pass of each graph over the capped golden images with the boundary outputs, then
one pass of three small-output graphs (FP32, weights-only, activations-only) for the culprit.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TypedDict

import numpy as np

from runtime.int8_variants import BATCH, carrier_of, next_steps, session_with_outputs, stream_metrics

JUMP_SHARE = 0.5  # the first jump at least this share of the largest one is "the" jump
MIN_JUMP = 0.0005  # below this (in 1 - cosine) no layer stands out: the error builds up gradually
MAX_SAMPLES = 32  # golden images the diagnosis reads (of the golden set's up to 64)
MAX_BOUNDARIES = 96  # layer outputs compared; a larger graph is sampled evenly in topological order
# The ops whose inputs edgeport's quantizers put Q/DQ in front of (an op reading a DequantizeLinear
# only because a producer's output was quantized, such as a ReLU in ONNX Runtime's U8S8 graph, is not a layer).
LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Concat", "AveragePool", "MaxPool",
             "GlobalAveragePool")


class QdqOnly(TypedDict, total=False):
    """The culprit with only one kind of its Q/DQ put back (runtime/int8_variants.py: carrier_of)."""

    layer_cosine: float | None
    logits_cosine: float | None


@dataclasses.dataclass(frozen=True)
class Boundary:
    """One quantized layer's output, INT8 graph against FP32."""

    layer: str
    op_type: str
    tensor: str
    cosine: float  # mean centered cosine over the samples
    rel_error: float  # mean ||int8 - fp32|| / ||fp32||
    jump: float  # error (1 - cosine) added by this layer over its nearest upstream boundaries

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Int8Diagnosis:
    """What ``diagnose`` found for one INT8 artifact (report.json's ``int8_diagnosis`` entry)."""

    precision: str
    samples: int
    boundaries: list[Boundary]
    layer: str | None = None  # the culprit; None when no layer stands out
    op_type: str | None = None
    tensor: str | None = None  # its output tensor (model.onnx's name)
    cosine_before: float | None = None  # the worst upstream boundary's cosine
    cosine_at: float | None = None  # the culprit's output cosine
    carrier: str | None = None  # "weights", "activations" or "both"
    weights_only: QdqOnly | None = None  # {"layer_cosine", "logits_cosine"} with only the weight Q/DQ
    activations_only: QdqOnly | None = None  # same with only the activation Q/DQ
    next_steps: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    note: str | None = None  # why the diagnosis is partial (names that do not map, ...)
    criterion: str = (f"first layer whose added error (1 - cosine over its nearest upstream layer outputs) is at "
                      f"least {JUMP_SHARE:g} x the largest one, if that is at least {MIN_JUMP:g}")

    def lines(self) -> list[str]:
        """A few lines for the terminal: where, how much, which half, what to try."""
        head = f"INT8 diagnosis ({self.precision}, {self.samples} golden images, {len(self.boundaries)} layer outputs)"
        if self.layer is None:
            return [f"{head}: {self.note or 'no single layer stands out; the error builds up gradually'}",
                    *(f"  try: {s}" for s in self.next_steps[:2])]
        out = [f"{head}: the error jumps at {self.layer} ({self.op_type}): output cosine "
               f"{self.cosine_before:.4f} -> {self.cosine_at:.4f}"]
        parts = [f"only its {kind} {v['layer_cosine']:.4f}" for kind, v in
                 (("weights", self.weights_only), ("input activations", self.activations_only)) if v]
        if self.carrier:
            out.append(f"  carried by its {self.carrier}: layer-output cosine with {', with '.join(parts)} quantized")
        elif self.note:
            out.append(f"  {self.note}")
        out += [f"  try: {s}" for s in self.next_steps[:2]]
        return out

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["boundaries"] = [b.to_dict() for b in self.boundaries]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Int8Diagnosis":
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))


# -- graph facts -----------------------------------------------------------------------------------
def _producers(model) -> dict:
    return {o: n for n in model.graph.node for o in n.output if o}


def quantized_layers(qmodel, fp32model) -> list[tuple[str, str, str, str]]:
    """(layer name, op type, FP32 output tensor, INT8 output tensor) of the Q/DQ graph's quantized
    layers, in the FP32 graph's topological order. A layer maps onto the FP32 node writing the
    same tensor with the same op, or else onto the FP32 node of the same name and op (ONNX
    Runtime's U8S8 graph renames an output it quantizes but keeps the node's name)."""
    qprod = _producers(qmodel)
    fprod = _producers(fp32model)
    fnamed = {n.name: n for n in fp32model.graph.node if n.name}
    found = {}
    for n in qmodel.graph.node:
        if n.op_type not in LAYER_OPS or not n.output:
            continue
        if any(qprod.get(t) is not None and qprod[t].op_type == "DequantizeLinear" for t in n.input if t):
            ref = fprod.get(n.output[0])
            if ref is None or ref.op_type != n.op_type:
                ref = fnamed.get(n.name)
            if ref is not None and ref.op_type == n.op_type:
                found[ref.output[0]] = (n.name or ref.name, n.op_type, ref.output[0], n.output[0])
    order = [o for n in fp32model.graph.node for o in n.output if o in found]
    return [found[o] for o in order]


def _upstream(fp32model, tensors: list[str]) -> dict[str, set[str]]:
    """For each boundary tensor: the nearest boundary tensors upstream of it (walking producers)."""
    prod = _producers(fp32model)
    wanted = set(tensors)
    memo: dict[str, frozenset] = {}

    def reach(t: str) -> frozenset:
        # Iterative over a stack: deep graphs would exceed Python's recursion limit.
        stack = [t]
        while stack:
            cur = stack[-1]
            node = prod.get(cur)
            pending = [i for i in (node.input if node is not None else ()) if i and i not in wanted
                       and i not in memo]
            if pending:
                stack += pending
                continue
            stack.pop()
            found: set = set()
            for i in (node.input if node is not None else ()):
                if not i:
                    continue
                found |= {i} if i in wanted else memo.get(i, frozenset())
            memo[cur] = frozenset(found)
        return memo[t]

    return {t: set(reach(t)) for t in tensors}


def _evenly(items: list, cap: int) -> list:
    if len(items) <= cap:
        return items
    picks = np.linspace(0, len(items) - 1, cap).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


# -- running -----------------------------------------------------------------------------------------
def find_jump(layers: list[tuple], metrics: dict, upstream: dict) -> tuple[list[Boundary], int | None]:
    """The boundaries with their jumps, and the culprit's index (None: no layer stands out)."""
    error = {t: 1.0 - float(np.mean(metrics[t][0])) for _, _, t, _ in layers}
    out = []
    for name, op, t, _ in layers:
        before = max((error[u] for u in upstream.get(t, ()) if u in error), default=0.0)
        out.append(Boundary(layer=name, op_type=op, tensor=t, cosine=round(1.0 - error[t], 6),
                            rel_error=round(float(np.mean(metrics[t][1])), 6), jump=round(error[t] - before, 6)))
    largest = max((b.jump for b in out), default=0.0)
    if largest < MIN_JUMP:
        return out, None
    culprit = next(i for i, b in enumerate(out) if b.jump >= JUMP_SHARE * largest)
    return out, culprit


def diagnose(fp32_model, int8_model, inputs: np.ndarray, *, precision: str = "int8",
             calibration: dict | None = None, max_samples: int = MAX_SAMPLES,
             max_boundaries: int = MAX_BOUNDARIES, batch: int = BATCH) -> Int8Diagnosis:
    """Diagnose ``int8_model`` (a Q/DQ ModelProto) against ``fp32_model`` on ``inputs`` (golden,
    preprocessed NCHW). ``calibration``: the manifest's calibration info of that artifact
    ({"method", "samples", "few", ...}), which shapes the next steps."""
    t0 = time.perf_counter()
    inputs = inputs[:max_samples]
    layers = _evenly(quantized_layers(int8_model, fp32_model), max_boundaries)
    result = Int8Diagnosis(precision=precision, samples=len(inputs), boundaries=[])
    if not layers:
        result.note = "the INT8 graph's layer outputs do not map onto model.onnx's tensor names"
        result.next_steps = next_steps(None, None, calibration)
        return result
    names, qnames = [t for _, _, t, _ in layers], [q for _, _, _, q in layers]
    sessions = [session_with_outputs(fp32_model, names), session_with_outputs(int8_model, qnames)]
    metrics = stream_metrics(sessions, inputs, names, batch, qnames)[0]
    del sessions
    result.boundaries, culprit = find_jump(layers, metrics, _upstream(fp32_model, names))
    if culprit is not None:
        b = result.boundaries[culprit]
        result.layer, result.op_type, result.tensor, result.cosine_at = b.layer, b.op_type, b.tensor, b.cosine
        result.cosine_before = round(b.cosine + b.jump, 6)  # 1 - (error - jump)
        result.carrier, result.weights_only, result.activations_only = carrier_of(
            fp32_model, int8_model, b.tensor, layers[culprit][3], inputs, batch, jump=b.jump)
        if result.carrier is None:
            result.note = ("its own Q/DQ alone do not reproduce the error: it comes from quantized tensors "
                           "upstream that the layer outputs do not show (an op between the measured layers)")
        result.next_steps = next_steps(result, fp32_model, calibration)
    else:
        result.next_steps = next_steps(result, fp32_model, calibration)
    result.seconds = round(time.perf_counter() - t0, 2)
    return result


def diagnose_artifact(bundle, precision: str, inputs: np.ndarray) -> Int8Diagnosis | None:
    """Diagnose the bundle's ``precision`` artifact (a Q/DQ ONNX graph) against its model.onnx on
    the golden ``inputs``; None when either graph is not an ONNX file here."""
    import onnx

    fp32_path, int8_path = bundle.artifact_path("fp32"), bundle.artifact_path(precision)
    if fp32_path.suffix != ".onnx" or int8_path.suffix != ".onnx" or not fp32_path.is_file():
        return None
    calibration = bundle.calibration(precision)
    return diagnose(onnx.load(str(fp32_path)), onnx.load(str(int8_path)), inputs, precision=precision,
                    calibration=calibration.to_dict() if calibration is not None else None)


@dataclasses.dataclass
class Int8DiagnosisSection:
    """report.json's ``int8_diagnosis``: {precision: Int8Diagnosis} of the INT8 artifacts that
    failed their last verification (a later pass removes its entry)."""

    entries: dict[str, Int8Diagnosis] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {p: d.to_dict() for p, d in self.entries.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Int8DiagnosisSection":
        from runtime.report.typed import check

        return cls(check(data, dict[str, Int8Diagnosis]))

    def carry_over(self, changes, notes) -> None:
        # Export verifies every INT8 artifact again and diagnoses the ones that fail: never carried.
        if self.entries:
            notes.dropped.append("the INT8 diagnosis (export verifies again)")
        return None
