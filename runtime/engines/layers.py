"""What an engine is made of, read from the builder's log: layers, tensor types, memory.

With a VERBOSE logger and ``config.profiling_verbosity = ProfilingVerbosity.DETAILED``,
TensorRT-RTX's builder (also its CPU-only ahead-of-time build) logs the engine's layer
information after ``Layers:``, one line per kernel, then the engine's I/O tensors (name, type,
dimensions and, for inputs, the optimization profile's MinShape/OptShape/MaxShape):

    Name: conv_myl0_2, LayerType: correlation, Inputs: [ { Name: t, Dimensions: [-1,4,8,8], ...,
    Datatype: Int8, Format: (NHWC) Channel major format }], Constants: [ ... ], Outputs: [ ... ],
    TacticName: ..., StreamId: 0, Metadata: [ONNX Layer: conv][ONNX Layer: x_DQ]

and the totals ``Total Weights Memory: N bytes`` / ``Total Activation Memory: N bytes``.
``summarize_build_log`` turns those messages into a ``LayerSummary``: how many layers, the
tensors by data type, which layers read INT8 (run INT8), FP16 or FP32 data, and the two
memory totals. A layer's precision is the narrowest type among its activation inputs: a
convolution whose input is Int8 runs INT8 whatever type it writes.

Only the TensorRT-RTX format above has been checked against the real library (1.7.1.116);
a log without it gives None. No tensorrt, torch or onnx import here.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable

# Data types as the layer information spells them, narrowest first.
PRECISION_OF = {"Int8": "int8", "Int4": "int4", "FP8": "fp8", "FP4": "fp4", "Half": "fp16", "BFloat16": "bf16",
                "Float": "fp32"}
_ORDER = ("int4", "fp4", "int8", "fp8", "fp16", "bf16", "fp32")
# Kernels that do the arithmetic of a layer (convolution, matrix multiply, pooling, and the
# runtime fusions that hold a convolution or matrix multiply); the rest are generated
# pointwise/reduction fusions (kgen), shape computations and reformats.
COMPUTE_KINDS = ("correlation", "convolution", "deconvolution", "gemm", "matmul", "maxpool", "avgpool", "pooling",
                 "runtime_fusion")
_SEVERITY = re.compile(r"^\s*(?:\[(?:INTERNAL_ERROR|ERROR|WARNING|INFO|VERBOSE)\]|(?:INTERNAL_ERROR|ERROR|WARNING|INFO|VERBOSE):)\s?")
_TOTAL = re.compile(r"Total (Weights|Activation) Memory: (\d+) bytes")
_SECTIONS = ("Inputs", "Constants", "Outputs")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a layer: its name, data type as the builder spells it, and format."""

    name: str
    dtype: str
    format: str = ""


@dataclasses.dataclass(frozen=True)
class EngineLayer:
    """One kernel of the engine."""

    name: str
    kind: str  # LayerType: correlation, gemm, kgen, maxpool, shape_call, ...
    inputs: tuple[TensorInfo, ...]
    constants: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    onnx_layers: tuple[str, ...]  # the ONNX nodes fused into it (Metadata)

    @property
    def precision(self) -> str:
        """The narrowest type the layer reads (``none`` for a layer without inputs)."""
        found = {PRECISION_OF.get(t.dtype, t.dtype.lower()) for t in self.inputs}
        for p in _ORDER:
            if p in found:
                return p
        return sorted(found)[0] if found else "none"

    @property
    def output_precision(self) -> str:
        found = {PRECISION_OF.get(t.dtype, t.dtype.lower()) for t in self.outputs}
        return next((p for p in _ORDER if p in found), sorted(found)[0] if found else "none")

    @property
    def compute(self) -> bool:
        return self.kind in COMPUTE_KINDS

    def onnx_ops(self) -> list[str]:
        """The fused ONNX nodes other than QuantizeLinear/DequantizeLinear."""
        return [n for n in self.onnx_layers if not re.search(r"_(Q|DQ|QuantizeLinear|DequantizeLinear)$", n)]


@dataclasses.dataclass(frozen=True)
class IoTensor:
    """One I/O tensor of the engine as the layer information's ``I/O Tensors:`` block lists it."""

    name: str
    mode: str  # Input / Output
    dtype: str  # Float, Half, Int8, ... (the builder's spelling)
    dimensions: tuple[int, ...]  # -1 for the dynamic batch
    profile: tuple[tuple[int, ...], ...] = ()  # (min, opt, max) shapes of an input's profile 0

    def to_dict(self) -> dict:
        data = {"name": self.name, "mode": self.mode, "dtype": self.dtype, "dimensions": list(self.dimensions)}
        if self.profile:
            data.update(zip(("min", "opt", "max"), (list(s) for s in self.profile)))
        return data


@dataclasses.dataclass
class LayerSummary:
    """The engine's layer information, summarized."""

    layers: list[EngineLayer]
    weights_bytes: int | None
    activation_bytes: int | None
    io: tuple[IoTensor, ...] = ()  # the engine's inputs and outputs (names, types, shapes, profile)

    def tensor_types(self) -> dict[str, int]:
        """Every input, constant and output the layer information lists, by data type."""
        c = Counter(t.dtype for layer in self.layers for t in (*layer.inputs, *layer.constants, *layer.outputs))
        return dict(sorted(c.items()))

    def activation_types(self) -> dict[str, int]:
        """Distinct activation tensors (layer inputs and outputs, not constants), by data type."""
        seen = {}
        for layer in self.layers:
            for t in (*layer.inputs, *layer.outputs):
                seen.setdefault(t.name, t.dtype)
        return dict(sorted(Counter(seen.values()).items()))

    def by_precision(self, compute_only: bool = False) -> dict[str, int]:
        c = Counter(layer.precision for layer in self.layers if layer.compute or not compute_only)
        return {p: c[p] for p in (*_ORDER, "none") if c.get(p)}

    def compute_layers(self, precision: str | None = None) -> list[EngineLayer]:
        return [la for la in self.layers if la.compute and (precision is None or la.precision == precision)]

    def to_dict(self) -> dict:
        """JSON for sidecars and reports: counts, memory, and the compute layers by precision."""
        kinds = Counter(layer.kind for layer in self.layers)

        def entry(layer: EngineLayer) -> dict:
            return {"layer": layer.name, "type": layer.kind, "reads": layer.precision,
                    "writes": layer.output_precision, "onnx": layer.onnx_ops()}

        return {
            "layers": len(self.layers),
            "layer_types": dict(kinds.most_common()),
            "tensors": self.tensor_types(),
            "activation_tensors": self.activation_types(),
            "layers_by_precision": self.by_precision(),
            "compute_layers_by_precision": self.by_precision(compute_only=True),
            "int8_compute_layers": [entry(la) for la in self.compute_layers("int8")],
            "other_compute_layers": [entry(la) for la in self.compute_layers() if la.precision != "int8"],
            "weights_bytes": self.weights_bytes,
            "activation_bytes": self.activation_bytes,
            "io_tensors": [t.to_dict() for t in self.io],
        }


def _strip(message: str) -> str:
    return _SEVERITY.sub("", message, count=1)


def _bracketed(text: str, start: int) -> tuple[str, int]:
    """The text inside the bracket opening at ``start`` (nesting-aware) and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return text[start + 1:], len(text)


def _tensors(body: str) -> tuple[TensorInfo, ...]:
    out = []
    for item in re.findall(r"\{(.*?)\}", body):
        name = re.search(r"Name: (.*?), Dimensions:", item)
        dtype = re.search(r"Datatype: (\w+)", item)
        fmt = re.search(r"Format: (.*)$", item.strip())
        if dtype:
            out.append(TensorInfo(name.group(1) if name else "", dtype.group(1), fmt.group(1).strip() if fmt else ""))
    return tuple(out)


def parse_layer_line(line: str) -> EngineLayer | None:
    """One ``Name: ..., LayerType: ..., Inputs: [...] ...`` line, or None when it is not one."""
    head = re.match(r"Name: (.*?), LayerType: ([\w.]+), ", line)
    if not head:
        return None
    sections = {}
    pos = head.end()
    for key in _SECTIONS:
        at = line.find(f"{key}: [", pos)
        if at < 0:
            return None
        sections[key], pos = _bracketed(line, at + len(key) + 2)
    meta = line.find("Metadata:", pos)
    onnx_layers = tuple(re.findall(r"\[ONNX Layer: (.*?)\]", line[meta:])) if meta >= 0 else ()
    return EngineLayer(head.group(1), head.group(2), _tensors(sections["Inputs"]), _tensors(sections["Constants"]),
                       _tensors(sections["Outputs"]), onnx_layers)


_IO = re.compile(r"^\s*Name: (.*?), IOMode: (\w+), DataType: (\w+), Dimensions: \[([-\d,]*)\]")
_PROFILE = re.compile(r"MinShape: \[([\d,]*)\], OptShape: \[([\d,]*)\], MaxShape: \[([\d,]*)\]")


def _dims(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.split(",") if d)


def parse_io_line(line: str) -> IoTensor | None:
    """One ``Name: input, IOMode: Input, DataType: Float, Dimensions: [...], ... ProfileInfo: [...]``
    line of the ``I/O Tensors:`` block, or None when it is not one."""
    m = _IO.match(line)
    if not m:
        return None
    prof = _PROFILE.search(line)
    profile = tuple(_dims(prof.group(i)) for i in (1, 2, 3)) if prof else ()
    return IoTensor(m.group(1), m.group(2), m.group(3), _dims(m.group(4)), profile)


def summarize_build_log(messages: Iterable[str]) -> LayerSummary | None:
    """The layer information in a builder's messages (each may span lines, with or without a
    ``VERBOSE:`` / ``[VERBOSE]`` prefix). None when the log holds no ``Layers:`` block
    (a build without VERBOSE logging and DETAILED profiling verbosity)."""
    layers: list[EngineLayer] = []
    io: list[IoTensor] = []
    totals: dict[str, int] = {}
    in_block = False
    found = False
    for message in messages:
        for raw in str(message).splitlines():
            line = _strip(raw)
            if line.strip() == "Layers:":
                in_block, found = True, True
                layers, io = [], []  # a second build in the same log: keep the last
                continue
            tensor = parse_io_line(line) if found else None
            if tensor is not None:
                io.append(tensor)
                continue
            if in_block:
                layer = parse_layer_line(line)
                if layer is not None:
                    layers.append(layer)
                    continue
                if line.strip():
                    in_block = False
            m = _TOTAL.search(line)
            if m:
                totals[m.group(1)] = int(m.group(2))
    if not found:
        return None
    return LayerSummary(layers, totals.get("Weights"), totals.get("Activation"), tuple(io))
