"""The bundle contract: manifest.json as typed dataclasses, written and read here only.

The exporter builds a ``Manifest`` from the sections its stages return; the runtime reads
it back with ``Manifest.from_dict`` (through ``Bundle.open``) and never looks up raw keys.
Each section keeps the keys its readers use as typed fields; descriptive details that
only reports show (timings, quantizer statistics) travel in ``extra`` and are written
back flat, so the JSON stays readable.

Schema history (``SCHEMA_VERSION``): version 2 is the only one read. It lists ``outputs``
(the classifier first: every output of a multi-output model, in the exported graph's order),
``reference`` (what produced golden.npz: ``pytorch`` or ``onnx``) and ``digest``, the sha256
of the manifest's own content, so a hand edit is told apart from a corrupt artifact. Version 1
manifests came from development builds before 0.1.0 and are refused with "re-export".

Reading is strict: ``_load`` checks every typed field's JSON type (naming the field), and
runtime/bundle_check.py checks ranges, shapes and file names, so a malformed value ends in a
``BundleError`` naming the field instead of a KeyError or TypeError later on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
import typing
from typing import Any

from runtime.errors import BundleError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
REFERENCES = ("pytorch", "onnx")


def _type_hints(cls) -> dict:
    cache = cls.__dict__.get("_hints_cache")
    if cache is None:
        cache = typing.get_type_hints(cls)
        cls._hints_cache = cache
    return cache


class Section:
    """Base of every manifest section: ``to_dict`` / ``from_dict`` with ``extra`` kept flat.

    Subclasses are dataclasses. A field whose type is another Section (or a list/dict of
    them, or Optional) is converted both ways; unknown keys land in ``extra``.
    """

    extra: dict

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            out[f.name] = _dump(getattr(self, f.name))
        for k, v in (getattr(self, "extra", None) or {}).items():
            out.setdefault(k, v)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = ""):
        if not isinstance(data, dict):
            raise BundleError(f"manifest.json: {where or cls.__name__} must be an object, got {type(data).__name__}.")
        hints = _type_hints(cls)
        kwargs, extra = {}, {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in data.items():
            if key in names and key != "extra":
                kwargs[key] = _load(hints[key], value, f"{where}.{key}" if where else key)
            else:
                extra[key] = value
        missing = [n for n, f in names.items() if n != "extra" and n not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise BundleError(f"manifest.json: {where or cls.__name__} lacks {', '.join(missing)}.")
        if "extra" in names:
            kwargs["extra"] = extra
        return cls(**kwargs)


def _dump(value):
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


# JSON types of the typed fields, as messages name them.
_JSON_TYPES = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "a list",
               dict: "an object"}


def show(value) -> str:
    """A JSON value as a message quotes it (short: bundle text can be long)."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_type(kind: type, value, where: str):
    """``value`` if it is JSON of ``kind`` (bool is no integer; a number is finite)."""
    # numbers.*: the exporter builds sections from numpy scalars too; JSON never has them.
    if kind is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        finite = " (finite)" if kind is float else ""
        raise BundleError(f"manifest.json: {where} must be {_JSON_TYPES[kind]}{finite}, got {show(value)}.")
    return value


def _is_section(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, Section)


def _load(hint, value, where: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], value, where) if len(inner) == 1 else value
    if _is_section(hint):
        return hint.from_dict(value, where)
    if hint in _JSON_TYPES:
        return _check_type(hint, value, where)
    if origin is list:
        _check_type(list, value, where)
        return [_load(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict:
        _check_type(dict, value, where)
        return {k: _load(args[1], v, f"{where}.{k}") for k, v in value.items()} if args else value
    return value


# -- the sections --------------------------------------------------------------------------------
@dataclasses.dataclass
class FileEntry(Section):
    """A file of the bundle and the sha256 it is checked against before loading."""

    file: str
    sha256: str | None = None
    bytes: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ModelInfo(Section):
    name: str
    architecture: str | None = None
    source: str | None = None  # torchvision | seed | user | onnx
    spec: str | None = None
    num_classes: int | None = None
    class_names: list[str] | None = None
    params: int | None = None
    gmacs: float | None = None
    factory_args: dict | None = None  # --factory-arg KEY=VALUE: how a user factory was called
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class WeightsInfo(Section):
    spec: str | None = None
    random_init: bool = False
    description: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class InputSpec(Section):
    """The model input: NCHW with a dynamic batch (``shape[0] == "batch"``)."""

    name: str
    shape: list
    dtype: str = "float32"
    min_batch: int = 1
    max_batch: int = 1
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def chw(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.shape[1:])


@dataclasses.dataclass
class OutputSpec(Section):
    name: str
    shape: list
    dtype: str = "float32"
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GoldenInfo(FileEntry):
    samples: int = 0
    source: str | None = None
    skipped: int = 0


@dataclasses.dataclass
class Fp16Range(Section):
    """Export-time check: FP32 activations / weights beyond FP16's 65504 on the golden set, and
    activations mostly below FP16's smallest normal (6.1e-5), which FP16 flushes to zero."""

    overflowing_count: int = 0
    max_abs_activation: float = 0.0
    overflowing_tensors: list = dataclasses.field(default_factory=list)
    overflowing_initializers: list = dataclasses.field(default_factory=list)
    underflowing_count: int = 0
    underflowing_tensors: list = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def overflows(self) -> bool:
        return bool(self.overflowing_count or self.overflowing_initializers)

    @property
    def underflows(self) -> bool:
        return bool(self.underflowing_count)

    def underflow_names(self, limit: int = 5) -> str:
        """The first underflowing tensors, for messages."""
        names = [t["name"] for t in self.underflowing_tensors[:limit]]
        return ", ".join(names) + (" ..." if self.underflowing_count > len(names) else "")


@dataclasses.dataclass
class CalibrationSource(Section):
    path: str | None = None
    kind: str | None = None
    skipped: int = 0
    digest: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrtCalibrationCache(FileEntry):
    """calib.cache: the INT8 scales as a TensorRT calibration table (implicit INT8, DLA)."""

    header: str | None = None


@dataclasses.dataclass
class Int8Info(Section):
    """The TensorRT-style Q/DQ artifact (model.int8.onnx): how it was calibrated."""

    method: str
    samples: int
    calibration_source: CalibrationSource | None = None
    cache_key: str | None = None
    calibration: FileEntry | None = None
    trt_calibration_cache: TrtCalibrationCache | None = None
    int8_ops: dict = dataclasses.field(default_factory=dict)
    float_ops: dict = dataclasses.field(default_factory=dict)
    mixed_precision: dict | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Int8CpuInfo(Section):
    """ONNX Runtime's U8S8 artifact (model.int8-cpu.onnx)."""

    reduce_range: bool
    method: str = "minmax"
    samples: int = 0
    quantized_on: dict = dataclasses.field(default_factory=dict)  # {"cpu": model name, "vnni": bool}
    calibration_source: CalibrationSource | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Manifest(Section):
    """manifest.json. ``artifacts`` maps a precision key (fp32, fp16, int8, int8-cpu) to its file."""

    model: ModelInfo
    input: InputSpec
    outputs: list[OutputSpec]
    preprocessing: dict
    artifacts: dict[str, FileEntry]
    schema_version: int = SCHEMA_VERSION
    created: str | None = None
    reference: str = "pytorch"
    weights: WeightsInfo = dataclasses.field(default_factory=WeightsInfo)
    opset: int | None = None
    simplified: dict | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    golden: GoldenInfo | None = None
    fp16_range: Fp16Range | None = None
    int8: Int8Info | None = None
    int8_cpu: Int8CpuInfo | None = None
    timings_s: dict = dataclasses.field(default_factory=dict)
    digest: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        data = super().to_dict()
        return {"schema_version": data.pop("schema_version"), **data}  # the version first, for readers

    @property
    def output(self) -> OutputSpec:
        """The classifier output (the first one)."""
        return self.outputs[0]

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes or self.output.shape[-1])

    # -- the digest ---------------------------------------------------------------------------
    def content_digest(self) -> str:
        """sha256 of the canonical JSON of everything but the digest itself."""
        data = self.to_dict()
        data.pop("digest", None)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def sealed(self) -> "Manifest":
        """A copy carrying the digest of its content (what the exporter writes)."""
        return dataclasses.replace(self, digest=self.content_digest())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def parse(cls, data: Any) -> "Manifest":
        """A manifest from the parsed JSON, every typed field's JSON type checked (the ranges and
        shapes: runtime/bundle_check.py)."""
        if not isinstance(data, dict):
            raise BundleError("manifest.json does not hold a JSON object.")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleError(f"manifest.json has no integer schema_version (got {show(version)}).")
        if version > SCHEMA_VERSION:
            raise BundleError(
                f"manifest.json uses schema version {version}, but this edgeport reads versions up to "
                f"{SCHEMA_VERSION}.",
                hint="Upgrade edgeport on this machine (pip install -U edgeport), or export with the same version.")
        if version < SCHEMA_VERSION:
            raise BundleError(
                f"manifest.json uses schema version {version}, which development builds before edgeport 0.1.0 "
                f"wrote; this edgeport reads version {SCHEMA_VERSION} only.",
                hint="Re-export the model with `edgeport export` (the same options) to get a current bundle.")
        for key in ("model", "input", "outputs", "preprocessing", "artifacts"):
            if key not in data:
                raise BundleError(f"manifest.json lacks the '{key}' section.")
        return cls.from_dict(data)
