"""Triton model configuration (config.pbtxt) for one bundle artifact.

The configuration is built as plain Python data (``build_config``), rendered as protobuf
text format (``render_pbtxt``) and parsed back against Triton's own ModelConfig schema
(``check_schema``: ``tritonclient.grpc.model_config_pb2`` + ``google.protobuf.text_format``)
before anything is written. The parsed message is then compared with what was meant (names,
dims, batch size, backend), so a rendering slip cannot pass silently.

tritonclient is optional (``pip install 'edgeport[triton]'``). Without it ``check_schema``
raises a DependencyError; ``--no-schema-check`` writes the repository with edgeport's own
checks only (option ranges, names, dims), which is weaker: a field Triton would reject is
then only found when the server loads the model.
"""

from __future__ import annotations

import dataclasses
import re

from runtime.errors import DependencyError, EdgeportError

# numpy element type names (bundle manifests) -> Triton data types.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "int64": "TYPE_INT64",
                "int32": "TYPE_INT32", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}
WARMUP_DIR = "warmup"  # Triton reads model_warmup input_data_file from <model>/warmup/


class Enum(str):
    """A protobuf enum value: rendered without quotes (``data_type: TYPE_FP32``)."""


class Map(dict):
    """A protobuf map field: rendered as repeated ``key``/``value`` entries."""


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One model input or output as Triton sees it (batch axis excluded from ``dims``)."""

    name: str
    dtype: str  # numpy name, e.g. float32
    dims: tuple[int, ...]
    label_filename: str | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything config.pbtxt says about one model; built by runtime.triton.repository."""

    name: str
    backend: str  # python | onnxruntime | tensorrt
    max_batch_size: int
    input: Tensor
    output: Tensor
    kind: str = "cpu"
    instances: int = 1
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    parameters: dict = dataclasses.field(default_factory=dict)  # string -> string
    warmup_file: str | None = None  # file name under <model>/warmup/
    gpu_accelerator: dict | None = None  # onnxruntime + TensorRT: parameter -> value


def triton_type(dtype: str) -> str:
    try:
        return TRITON_TYPES[dtype]
    except KeyError:
        raise EdgeportError(f"Triton has no data type for the bundle's element type '{dtype}'; "
                            f"known: {', '.join(TRITON_TYPES)}.") from None


def _tensor(t: Tensor) -> dict:
    entry = {"name": t.name, "data_type": Enum(triton_type(t.dtype)), "dims": list(t.dims)}
    if t.label_filename:
        entry["label_filename"] = t.label_filename
    return entry


def build_config(spec: ModelSpec) -> dict:
    """The ModelConfig of ``spec`` as nested dicts/lists (field order as written)."""
    config: dict = {"name": spec.name}
    if spec.backend == "python":
        config["backend"] = "python"
    elif spec.backend == "onnxruntime":
        config["platform"] = "onnxruntime_onnx"
    elif spec.backend == "tensorrt":
        config["platform"] = "tensorrt_plan"
    else:  # validated earlier; a new backend must be added here on purpose
        raise ValueError(f"unknown backend {spec.backend!r}")
    config["max_batch_size"] = spec.max_batch_size
    config["input"] = [_tensor(spec.input)]
    config["output"] = [_tensor(spec.output)]
    batching: dict = {}
    if spec.preferred_batch:
        batching["preferred_batch_size"] = list(spec.preferred_batch)
    batching["max_queue_delay_microseconds"] = spec.max_queue_delay_us
    config["dynamic_batching"] = batching
    config["instance_group"] = [{"count": spec.instances, "kind": Enum(KINDS[spec.kind])}]
    if spec.gpu_accelerator:
        accel = {"name": "tensorrt", "parameters": Map(spec.gpu_accelerator)}
        config["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [accel]}}
    if spec.parameters:
        config["parameters"] = Map({k: {"string_value": v} for k, v in spec.parameters.items()})
    if spec.warmup_file:
        dims = list(spec.input.dims)
        warm_input = {"data_type": Enum(triton_type(spec.input.dtype)), "dims": dims,
                      "input_data_file": spec.warmup_file}
        config["model_warmup"] = [{"name": "golden_sample", "batch_size": 1, "count": 1,
                                   "inputs": Map({spec.input.name: warm_input})}]
    return config


# -- protobuf text format ---------------------------------------------------------------------
def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _scalar(value) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    raise TypeError(f"cannot render {type(value).__name__} in protobuf text format")


def _lines(message: dict, depth: int) -> list[str]:
    pad = "  " * depth
    out: list[str] = []
    for key, value in message.items():
        if isinstance(value, Map):
            for k, v in value.items():
                inner = [f"{pad}  value {{", *_lines(v, depth + 2), f"{pad}  }}"] if isinstance(v, dict) \
                    else [f"{pad}  value: {_scalar(v)}"]
                out += [f"{pad}{key} {{", f"{pad}  key: {_scalar(k)}", *inner, f"{pad}}}"]
        elif isinstance(value, dict):
            out += [f"{pad}{key} {{", *_lines(value, depth + 1), f"{pad}}}"]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.append(f"{pad}{key} [")
            for i, item in enumerate(value):
                comma = "," if i < len(value) - 1 else ""
                out += [f"{pad}  {{", *_lines(item, depth + 2), f"{pad}  }}{comma}"]
            out.append(f"{pad}]")
        elif isinstance(value, list):
            out.append(f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            out.append(f"{pad}{key}: {_scalar(value)}")
    return out


def render_pbtxt(config: dict, comment: str = "") -> str:
    """``config`` (from build_config) as protobuf text format, the way Triton's docs write it;
    each line of ``comment`` becomes a ``#`` line on top (text format's comment syntax)."""
    head = [f"# {line}".rstrip() for line in comment.splitlines()]
    return "\n".join(head + _lines(config, 0)) + "\n"


# -- Triton's schema ------------------------------------------------------------------------------
def schema_module():
    """Triton's ModelConfig protobuf module and tritonclient's version, or a DependencyError."""
    import importlib

    try:
        importlib.import_module("google.protobuf.text_format")  # tritonclient[grpc] brings protobuf
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as exc:  # tritonclient.grpc raises RuntimeError without grpcio
        raise DependencyError(
            f"Checking config.pbtxt against Triton's ModelConfig schema needs tritonclient[grpc], which is not "
            f"importable here ({exc}).",
            hint="Install it with `pip install 'edgeport[triton]'` (tritonclient[grpc]), or pass --no-schema-check "
                 "to write the repository with edgeport's own checks only (Triton then finds any schema error "
                 "when it loads the model).") from exc
    from importlib import metadata

    try:
        version = metadata.version("tritonclient")
    except metadata.PackageNotFoundError:
        version = "?"
    return model_config_pb2, version


def parse_pbtxt(text: str):
    """Parse config.pbtxt text into Triton's ModelConfig message (needs tritonclient)."""
    from google.protobuf import text_format

    pb2, _ = schema_module()
    message = pb2.ModelConfig()
    text_format.Parse(text, message)
    return message


def check_schema(text: str, spec: ModelSpec) -> str:
    """Parse ``text`` with Triton's schema and compare it with ``spec``; returns tritonclient's version.

    An unknown field, a bad enum value or a value that differs from ``spec`` after the
    round trip is an edgeport bug, reported as such before anything is written.
    """
    from google.protobuf import text_format

    _, version = schema_module()
    try:
        message = parse_pbtxt(text)
    except text_format.ParseError as exc:
        raise EdgeportError(f"The generated config.pbtxt for '{spec.name}' does not parse against Triton's ModelConfig "
                            f"schema (tritonclient {version}): {exc}. Nothing was written.",
                            hint="This is a bug in edgeport; please report it with the command line.") from exc
    problems = _round_trip_problems(message, spec)
    if problems:
        raise EdgeportError(f"The generated config.pbtxt for '{spec.name}' parses, but reads back differently from "
                            f"what edgeport meant: {'; '.join(problems)}. Nothing was written.",
                            hint="This is a bug in edgeport; please report it with the command line.")
    return version


def _round_trip_problems(m, spec: ModelSpec) -> list[str]:
    expected = {
        "name": (m.name, spec.name),
        "max_batch_size": (m.max_batch_size, spec.max_batch_size),
        "inputs": ([(i.name, list(i.dims)) for i in m.input], [(spec.input.name, list(spec.input.dims))]),
        "outputs": ([(o.name, list(o.dims), o.label_filename) for o in m.output],
                    [(spec.output.name, list(spec.output.dims), spec.output.label_filename or "")]),
        "instances": ([g.count for g in m.instance_group], [spec.instances]),
        "preferred_batch_size": (list(m.dynamic_batching.preferred_batch_size), list(spec.preferred_batch)),
        "max_queue_delay_microseconds": (m.dynamic_batching.max_queue_delay_microseconds, spec.max_queue_delay_us),
        "parameters": ({k: v.string_value for k, v in m.parameters.items()}, dict(spec.parameters)),
    }
    return [f"{key} is {got!r}, expected {want!r}" for key, (got, want) in expected.items() if got != want]


# -- names ------------------------------------------------------------------------------------------
# fullmatch, never match with "$": "$" also matches before a trailing newline ("name\n").
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def valid_model_name(name: str) -> bool:
    """A model name that is also a safe folder name (no path separators, not hidden)."""
    return bool(_NAME.fullmatch(name)) and len(name) <= 128
