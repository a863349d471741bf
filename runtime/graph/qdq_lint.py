"""Q/DQ lint: does an ONNX graph follow the rules TensorRT enforces for explicit INT8?

TensorRT 8.6 to 11 (and TensorRT-RTX) build a Q/DQ graph as INT8 only when it is quantized
their way. Each rule has a severity, set by what NVIDIA's real parser and builder do with a
graph that breaks it (tests/runtime/test_lint_vs_parser.py runs TensorRT-RTX on a table of hand-made
graphs; docs/int8.md, "Lint vs parser"):

errors: the graph is refused, or is not a portable INT8 graph
- ``has-qdq``        the graph has QuantizeLinear/DequantizeLinear nodes at all;
- ``int8``           every Q/DQ is signed 8-bit (NVIDIA documents signed INT8 only; uint8
                     with zero point 0 happens to build on TensorRT-RTX 1.7, int16 does not);
- ``int32-bias``     no DequantizeLinear of an INT32 tensor (the parser dequantizes 8-bit
                     tensors only; quantize with ``QuantizeBias: False``);
- ``zero-point``     every zero point is 0 ("Non-zero zero point is not supported");
- ``scale``          scales are constant, finite, positive, and float32 (float16 from opset 19:
                     ONNX Runtime refuses an FP16 scale below that, TensorRT-RTX does not);
- ``weight-scale-count``  per-channel weight scales on the output-channel axis number the
                     output channels ("The number of scales is not equal to the number of
                     output channels");

warnings: TensorRT builds the graph, but a layer runs in higher precision, or advice
- ``activation-per-tensor``  activations have one scale (per channel: the layer runs float);
- ``weight-per-channel``     weights are per output channel (Conv axis 0, Gemm axis 0 with
                     transB=1 else 1, MatMul axis 1): per tensor builds but loses accuracy;
                     another axis makes the layer run in float;
- ``weighted-inputs``  both inputs of every Conv, Gemm and MatMul with a constant B are quantized;
- ``residual-add``   an Add of two activations has Q/DQ on both inputs, or on all but one
                     input that comes straight from a Conv/Gemm (TensorRT fuses that one);
- ``concat-scale``   the quantized inputs of a Concat share one scale (a Concat with some
                     inputs float is fine: TensorRT moves the quantization through it);
- ``q-dq-pair``      every QuantizeLinear feeds DequantizeLinear nodes only.

The checks look through Casts between float types, so a graph whose float regions are
FP16 (exporter/graph/float_regions.py) reads the same as its FP32 form. The lint also lists which
Conv/Gemm/MatMul/Add/Concat/pools run INT8 and which stay in float. Layers a graph declares
as kept in higher precision on purpose (model metadata ``edgeport.kept_float``, a JSON list of
node names, written by ``export --max-drop``: exporter/graph/qdq_graph.py) are listed as float by
design instead of raising ``weighted-inputs`` / ``residual-add``. The ``onnx`` package is
imported lazily (a device without it skips the lint with a warning).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypedDict

import numpy as np

from runtime.errors import DependencyError, EdgeportError
from runtime.graph.index import QDQ_OPS, GraphIndex, attr_int, kept_float_names

ERROR, WARNING = "error", "warning"
RULES = {
    "has-qdq": "the graph has QuantizeLinear/DequantizeLinear nodes",
    "int8": "every Q/DQ is signed 8-bit (INT8)",
    "int32-bias": "no DequantizeLinear of an INT32 tensor (quantized bias)",
    "zero-point": "every zero point is 0 (symmetric quantization)",
    "scale": "scales are constant, finite, positive and of a type the opset allows",
    "weight-scale-count": "per-channel weight scales number the output channels",
    "activation-per-tensor": "activations are quantized per tensor (one scale)",
    "weight-per-channel": "weights are quantized per output channel",
    "weighted-inputs": "both inputs of every Conv/Gemm/MatMul (constant B) have Q/DQ",
    "residual-add": "every Add of two activations has Q/DQ on its residual input",
    "concat-scale": "the quantized inputs of a Concat share one scale",
    "q-dq-pair": "every QuantizeLinear feeds DequantizeLinear only",
}
SEVERITY = {rule: ERROR for rule in ("has-qdq", "int8", "int32-bias", "zero-point", "scale", "weight-scale-count")}
SEVERITY.update({rule: WARNING for rule in RULES if rule not in SEVERITY})
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")
LISTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Concat") + POOL_OPS

# onnx.TensorProto data types by number (avoids importing onnx for the names).
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 10: "float16",
           11: "float64", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
           20: "float8e5m2fnuz", 21: "uint4", 22: "int4"}


@dataclasses.dataclass
class Violation:
    rule: str
    node: str
    message: str

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.rule, ERROR)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "severity": self.severity}


@dataclasses.dataclass
class LintReport:
    """The lint result: violations per rule and the INT8 / float layers."""

    source: str
    violations: list[Violation]
    int8_nodes: dict[str, list[str]]
    float_nodes: dict[str, list[str]]
    qdq_nodes: int
    kept_float: list[str] = dataclasses.field(default_factory=list)  # declared float by design

    @property
    def errors(self) -> list[Violation]:
        """Violations TensorRT refuses (or that make the graph no portable INT8 graph)."""
        return [v for v in self.violations if v.severity == ERROR]

    @property
    def warnings(self) -> list[Violation]:
        """Violations TensorRT builds, with a layer in higher precision or an accuracy/speed cost."""
        return [v for v in self.violations if v.severity != ERROR]

    @property
    def passed(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def clean(self) -> bool:
        """Neither errors nor warnings."""
        return not self.violations

    def by_rule(self) -> dict[str, list[Violation]]:
        out: dict[str, list[Violation]] = {r: [] for r in RULES}
        for v in self.violations:
            out.setdefault(v.rule, []).append(v)
        return out

    def counts(self) -> dict:
        return {"int8": {k: len(v) for k, v in self.int8_nodes.items()},
                "float": {k: len(v) for k, v in self.float_nodes.items()}}

    def summary(self, per_rule: int = 2) -> str:
        n8 = sum(len(v) for v in self.int8_nodes.values())
        nf = sum(len(v) for v in self.float_nodes.values())
        kept = f", {len(self.kept_float)} of them kept in higher precision on purpose" if self.kept_float else ""
        if self.clean:
            return f"clean ({self.qdq_nodes} Q/DQ nodes; {n8} layers INT8, {nf} float{kept})"
        parts = []
        for rule, items in self.by_rule().items():
            if items:
                shown = "; ".join(v.message for v in items[:per_rule])
                more = f" (+{len(items) - per_rule} more)" if len(items) > per_rule else ""
                parts.append(f"[{rule}] {shown}{more}")
        head = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        if self.passed:
            head = f"no errors, {len(self.warnings)} warning(s) ({n8} layers INT8, {nf} float{kept})"
        return f"{head}: " + " ".join(parts)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "passed": self.passed,
            "clean": self.clean,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "qdq_nodes": self.qdq_nodes,
            "rules": {rule: {"description": RULES.get(rule, rule), "severity": SEVERITY.get(rule, ERROR),
                             "violations": [v.to_dict() for v in items]}
                      for rule, items in self.by_rule().items()},
            "int8": self.int8_nodes,
            "kept_float": self.kept_float,
            "float": self.float_nodes,
        }


def _load(model_or_path):
    try:
        import onnx
    except ImportError as exc:
        raise DependencyError(f"The Q/DQ lint needs the Python package 'onnx', which is not importable here ({exc}).",
                              hint="Install it with: pip install onnx") from exc
    if hasattr(model_or_path, "graph"):
        return model_or_path, "<model>"
    path = Path(model_or_path)
    if not path.is_file():
        raise EdgeportError(f"ONNX file '{path}' does not exist.", hint="Pass the path of a .onnx file.")
    try:
        return onnx.load(str(path), load_external_data=False), str(path)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise EdgeportError(f"'{path}' is not a readable ONNX model: {type(exc).__name__}: {exc}") from exc


def _name(node) -> str:
    return node.name or f"<unnamed {node.op_type} -> {node.output[0] if node.output else '?'}>"


def lint_model(model_or_path) -> LintReport:
    """Check an ONNX model (a ModelProto or a path) against TensorRT's Q/DQ rules."""
    model, source = _load(model_or_path)
    G = GraphIndex(model)
    v: list[Violation] = []
    qdq = [n for n in G.nodes if n.op_type in QDQ_OPS]
    if not qdq:
        v.append(Violation("has-qdq", source, f"{source} has no QuantizeLinear/DequantizeLinear nodes: "
                                              "it is not an explicitly quantized (Q/DQ) graph"))
    for n in qdq:
        _check_qdq_node(G, n, v)

    int8_nodes: dict[str, list[str]] = {op: [] for op in LISTED_OPS}
    float_nodes: dict[str, list[str]] = {op: [] for op in LISTED_OPS}
    for n in G.nodes:
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            _check_weighted(G, n, v, int8_nodes, float_nodes)
        elif n.op_type == "Add":
            _check_add(G, n, v, int8_nodes, float_nodes)
        elif n.op_type == "Concat":
            _check_concat(G, n, v, int8_nodes, float_nodes)
        elif n.op_type in POOL_OPS and n.input:
            # Not a rule (a float pool builds and runs fine), only listed: quantized pool inputs let
            # TensorRT pool INT8 data.
            (int8_nodes if G.dq_input(n.input[0]) is not None else float_nodes)[n.op_type].append(_name(n))
    kept = kept_float_names(model)
    if kept:  # float by design (an accuracy budget kept them out of INT8): listed, not reported
        v = [x for x in v if not (x.rule in ("weighted-inputs", "residual-add") and x.node in kept)]
    if not qdq:  # a float graph: one violation (has-qdq) says it all; the layers are listed as float
        v = [x for x in v if x.rule == "has-qdq"]
    return LintReport(source=source, violations=v, int8_nodes=int8_nodes, float_nodes=float_nodes, kept_float=kept,
                      qdq_nodes=len(qdq))


def _check_qdq_node(G: GraphIndex, n, v: list[Violation]) -> None:
    """The rules about one QuantizeLinear/DequantizeLinear: type, zero point, scale, pairing."""
    name = _name(n)
    dtype = G.qdq_dtype(n)
    tname = _DTYPES.get(dtype, str(dtype)) if dtype is not None else "unknown"
    if n.op_type == "DequantizeLinear" and dtype == 6:
        v.append(Violation("int32-bias", name, f"DequantizeLinear '{name}' dequantizes INT32 tensor "
                                               f"'{n.input[0]}' (a quantized bias): TensorRT's ONNX parser "
                                               "dequantizes 8-bit tensors only; keep biases float "
                                               "(QuantizeBias=False)"))
    elif dtype != 3:
        v.append(Violation("int8", name, f"{n.op_type} '{name}' is {tname}, not INT8 (TensorRT documents signed "
                                         "8-bit Q/DQ only; ORT's default is asymmetric uint8)"))
    if len(n.input) > 2 and n.input[2]:  # zero point: must be 0 (absent means 0)
        zp = G.array(n.input[2])
        if zp is None:
            v.append(Violation("zero-point", name, f"{n.op_type} '{name}' has a zero point computed at run "
                                                   "time; TensorRT needs a constant 0"))
        elif np.any(zp.astype(np.float64) != 0):
            nz = zp.reshape(-1)
            v.append(Violation("zero-point", name, f"{n.op_type} '{name}' has non-zero zero point "
                                                   f"{nz[np.nonzero(nz)[0][0]]} (TensorRT: \"Non-zero zero point "
                                                   "is not supported\"; quantize symmetrically)"))
    scale = G.array(n.input[1]) if len(n.input) > 1 else None
    if scale is None:
        v.append(Violation("scale", name, f"{n.op_type} '{name}' has no constant scale"))
        return
    s = scale.astype(np.float64).reshape(-1)
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        v.append(Violation("scale", name, f"{n.op_type} '{name}' has a zero, negative or non-finite scale "
                                          f"(min {s.min():.3g}; TensorRT: \"Scale coefficients must all be positive\")"))
    stype = G.const_dtype(n.input[1])
    if stype != 1 and not (stype in (10, 16) and G.opset >= 19):
        v.append(Violation("scale", name, f"{n.op_type} '{name}' has a {_DTYPES.get(stype, stype)} scale at opset "
                                          f"{G.opset}: ONNX allows float32 only (float16/bfloat16 from opset 19), "
                                          "and ONNX Runtime refuses the graph"))
    x = n.input[0]
    if not G.is_weight(x) and s.size != 1:
        v.append(Violation("activation-per-tensor", name,
                           f"{n.op_type} '{name}' quantizes activation '{x}' with {s.size} scales; TensorRT "
                           "wants one scale per activation tensor (the layer runs in float)"))
    if n.op_type == "QuantizeLinear":
        bad = [c for c in G.consumers.get(n.output[0], []) if c.op_type != "DequantizeLinear"]
        if bad or n.output[0] in G.outputs:
            other = _name(bad[0]) if bad else "the graph output"
            v.append(Violation("q-dq-pair", name, f"QuantizeLinear '{name}' feeds {other}, not a "
                                                  "DequantizeLinear"))


def _check_weighted(G: GraphIndex, n, v, int8_nodes, float_nodes) -> None:
    name = _name(n)
    if len(n.input) < 2:
        return
    x, w = n.input[0], n.input[1]
    if n.op_type == "MatMul" and not G.is_weight(w):
        return  # activation x activation: not a weighted layer
    dq_x, dq_w = G.dq_input(x), G.dq_input(w)
    if dq_x is not None and dq_w is not None:
        int8_nodes[n.op_type].append(name)
    else:
        float_nodes[n.op_type].append(name)
        missing = " and ".join(what for what, dq in (("input", dq_x), ("weight", dq_w)) if dq is None)
        v.append(Violation("weighted-inputs", name, f"{n.op_type} '{name}' has no Q/DQ on its {missing}: "
                                                    "TensorRT runs it in float"))
    if dq_w is None:
        return
    scale = G.array(dq_w.input[1]) if len(dq_w.input) > 1 else None
    shape = _weight_shape(G, dq_w)
    if scale is None or shape is None:
        return
    if n.op_type == "Conv":
        axis = 0
    elif n.op_type == "Gemm":
        axis = 0 if attr_int(n, "transB", 0) else 1
    else:
        axis = len(shape) - 1
    count = int(np.asarray(scale).size)
    if count == 1:
        v.append(Violation("weight-per-channel", _name(dq_w), f"weight '{dq_w.input[0]}' of {n.op_type} '{name}' "
                                                              "has one scale: TensorRT builds it, but per output "
                                                              "channel is more accurate"))
        return
    got_axis = attr_int(dq_w, "axis", 1)
    if got_axis < 0:
        got_axis += len(shape)
    if got_axis == axis and count != shape[axis]:
        v.append(Violation("weight-scale-count", _name(dq_w),
                           f"weight '{dq_w.input[0]}' of {n.op_type} '{name}' (shape {list(shape)}) has {count} "
                           f"scales for {shape[axis]} output channels (TensorRT: \"The number of scales is not equal "
                           "to the number of output channels\")"))
    elif got_axis != axis:
        v.append(Violation("weight-per-channel", _name(dq_w),
                           f"weight '{dq_w.input[0]}' of {n.op_type} '{name}' (shape {list(shape)}) has {count} "
                           f"scales on axis {got_axis}, not on the output-channel axis {axis}: TensorRT builds it "
                           "but may run the layer in float (a Conv does on TensorRT-RTX)"))


def _weight_shape(G: GraphIndex, dq) -> tuple | None:
    x = dq.input[0]
    if G.const_shape(x) is not None:
        return G.const_shape(x)
    p = G.producer.get(x)
    if p is not None and p.op_type == "QuantizeLinear" and G.const_shape(p.input[0]) is not None:
        return G.const_shape(p.input[0])
    return None


def _check_add(G: GraphIndex, n, v, int8_nodes, float_nodes) -> None:
    name = _name(n)
    inputs = [i for i in n.input if i]
    if len(inputs) != 2 or any(G.is_weight(i) for i in inputs):
        return  # a bias or constant add, not a residual join
    plain = [i for i in inputs if G.dq_input(i) is None]
    fusable = [i for i in plain if (G.producer_of(i) is not None and G.producer_of(i).op_type in ("Conv", "Gemm"))]
    if not plain or (len(plain) == 1 and fusable):
        int8_nodes["Add"].append(name)
        return
    float_nodes["Add"].append(name)
    if len(plain) == 2 and len(fusable) < 2:
        residual = next(i for i in plain if i not in fusable)
        why = f"neither input has Q/DQ (residual input '{residual}' should be quantized)"
    elif len(plain) == 2:
        why = f"neither input has Q/DQ (quantize one of '{plain[0]}', '{plain[1]}')"
    else:
        src = G.producer_of(plain[0])
        why = f"its residual input '{plain[0]}' (from {src.op_type if src else 'the graph input'}) has no Q/DQ"
    v.append(Violation("residual-add", name, f"Add '{name}' runs in float: {why}; TensorRT then cannot fuse "
                                             "the residual join into the INT8 convolution"))


def _check_concat(G: GraphIndex, n, v, int8_nodes, float_nodes) -> None:
    """A Concat runs INT8 when some input or its output is quantized: TensorRT moves the Q/DQ through
    it (measured on TensorRT-RTX: DenseNet with float Concat inputs builds the same layers).
    Different input scales are advice only: the same layers were built, and older TensorRT
    (8.6, 10) drop a concatenation only when its inputs share one scale."""
    name = _name(n)
    inputs = [i for i in n.input if i and not G.is_const(i)]
    dqs = [d for d in (G.dq_input(i) for i in inputs) if d is not None]
    consumers = G.consumers.get(n.output[0], []) if n.output else []
    consumers = consumers + [c for k in consumers if k.op_type == "Cast" for c in G.consumers.get(k.output[0], [])]
    if not dqs and not any(c.op_type == "QuantizeLinear" for c in consumers):
        float_nodes["Concat"].append(name)
        return
    int8_nodes["Concat"].append(name)
    scales = [G.array(d.input[1]) for d in dqs]
    values = {float(np.asarray(s).reshape(-1)[0]) for s in scales if s is not None and np.asarray(s).size == 1}
    if len(values) > 1:
        v.append(Violation("concat-scale", name, f"Concat '{name}' has quantized inputs with {len(values)} different "
                                                 f"scales ({min(values):.3g}..{max(values):.3g}); TensorRT-RTX builds "
                                                 "the same layers, but TensorRT 8.6/10 drop a concatenation only when "
                                                 "its inputs share one scale"))


class ViolationEntry(TypedDict, total=False):
    """One violation as report.json holds it (Violation.to_dict)."""

    rule: str
    node: str
    message: str
    severity: str


@dataclasses.dataclass
class ArtifactLint:
    """The Q/DQ lint of one bundle artifact, as verify records it (report.json's ``lint``);
    ``passed`` is derived: no errors."""

    file: str
    errors: int
    warnings: int
    summary: str
    qdq_nodes: int
    violations: dict[str, list[ViolationEntry]]  # rule -> [Violation.to_dict()], rules with violations only
    int8_layers: dict[str, int]  # op type -> count
    float_layers: dict[str, list[str]]  # op type -> node names (op types with some only)
    kept_float: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors

    @classmethod
    def of(cls, report: LintReport, file: str) -> "ArtifactLint":
        return cls(file=file, errors=len(report.errors), warnings=len(report.warnings), summary=report.summary(),
                   qdq_nodes=report.qdq_nodes,
                   violations={rule: [x.to_dict() for x in items] for rule, items in report.by_rule().items() if items},
                   int8_layers=report.counts()["int8"],
                   float_layers={op: names for op, names in report.float_nodes.items() if names},
                   kept_float=list(report.kept_float))

    def to_dict(self) -> dict:
        d = {"file": self.file, "passed": self.passed, **{f.name: getattr(self, f.name)
                                                            for f in dataclasses.fields(self)[1:]}}
        if not self.kept_float:
            del d["kept_float"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ArtifactLint":
        """The lint as report.json holds it, every field checked (runtime/report/typed.py)."""
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))


def lint_artifact(path: str | Path, warn=None) -> ArtifactLint | None:
    """Lint one bundle artifact for verify, or None when onnx is missing."""
    try:
        report = lint_model(path)
    except DependencyError as exc:
        if warn:
            warn(f"skipping the Q/DQ lint of {Path(path).name}: {exc}")
        return None
    return ArtifactLint.of(report, Path(path).name)
