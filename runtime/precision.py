"""The precisions a bundle can carry: one table, and which artifact a request means where.

``PRECISIONS`` is the registry: every CLI choice list, default tolerance, report colour,
file name and re-export hint derives from its rows (docs/extending.md, "Adding a
precision"). A bundle exported with ``--int8`` carries two INT8 graphs:

- ``int8``: model.int8.onnx, symmetric INT8 Q/DQ following TensorRT's rules (what
  ``edgeport build``, ``--backend tensorrt`` and ORT's TensorRT/CUDA providers run);
- ``int8-cpu``: model.int8-cpu.onnx, ONNX Runtime's U8S8 Q/DQ graph, the fast one on
  ONNX Runtime's CPU provider (the TensorRT-style graph is slower than FP32 there).

Rules (verify, bench and predict share them):

- ``--precision int8`` on ``--backend onnxruntime --provider cpu`` runs ``int8-cpu`` when the
  bundle has it (older bundles: ``int8``); add ``--qdq`` to run the TensorRT-style graph on
  the CPU anyway (e.g. to check its numerics);
- ``--precision int8`` anywhere else (TensorRT, CUDA) runs ``int8``;
- ``--precision int8-cpu`` names the CPU graph explicitly; it is refused off the CPU provider;
- ``all`` is every artifact of the bundle on the CPU provider (so both INT8 graphs are
  checked), and every artifact but ``int8-cpu`` elsewhere.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping

from runtime.errors import UsageError

ALL = "all"  # the request for every suitable artifact
# Engine runtimes by registry key (runtime/engines/registry.py; named, not imported: it imports this).
EVERY_ENGINE = ("tensorrt", "tensorrt-rtx")


@dataclasses.dataclass(frozen=True)
class Precision:
    """One row of the registry: everything edgeport knows about a precision but its converter."""

    key: str  # the artifact key in manifest.json and on the command line
    artifact: str  # the ONNX file in the bundle
    label: str  # upper-case name (reports; TensorRT's precision mode for the engine-built ones)
    summary: str  # one line for the docs' table and --help
    export_flag: str | None  # the `edgeport export` flag that writes it (None: always written)
    tolerance: Mapping[str, float]  # default pass criteria (runtime.compare.Tolerance fields)
    color: str  # its colour in the report's plots
    engines: tuple[str, ...] = EVERY_ENGINE  # engine runtimes that build an engine from it
    opt_out: str | None = None  # the export flag that skips it although export_flag is given
    role: str = ""  # what the artifact is for, in the report's artifact table
    cpu_only: bool = False  # runs on ONNX Runtime's CPU provider only
    cpu_variant_of: str | None = None  # the precision it stands in for on the CPU provider
    quantized: bool = False  # a Q/DQ graph, calibrated
    section: str | None = None  # the manifest section saying how it was made (runtime.manifest.Manifest field)


def _row(**fields) -> Precision:
    return Precision(**{**fields, "tolerance": MappingProxyType(fields["tolerance"])})


# Order matters: reports, `all` and the choice lists follow it. FP32 must reproduce PyTorch to
# 1e-4 of the logit range; FP16 and INT8 are judged on the shape of the logit vector (centered
# cosine), their natural error.
PRECISIONS: Mapping[str, Precision] = MappingProxyType({p.key: p for p in (
    _row(key="fp32", artifact="model.onnx", label="FP32", summary="the exported graph (always written)",
         export_flag=None, tolerance={"max_rel_diff": 1e-4, "cosine_min": 0.99999}, color="#4C72B0"),
    _row(key="fp16", artifact="model.fp16.onnx", label="FP16", summary="FP16 graph, FP32 inputs and outputs",
         export_flag="--fp16", tolerance={"max_rel_diff": 2e-2, "cosine_min": 0.999}, color="#DD8452"),
    _row(key="int8", artifact="model.int8.onnx", label="INT8", summary="INT8 Q/DQ graph following TensorRT's rules",
         export_flag="--int8", tolerance={"cosine_min": 0.99}, color="#55A868", role="for TensorRT",
         quantized=True, section="int8"),
    _row(key="int8-cpu", artifact="model.int8-cpu.onnx", label="INT8",
         summary="U8S8 Q/DQ: asymmetric uint8 activations, made for ONNX Runtime's CPU kernels", export_flag="--int8",
         opt_out="--no-int8-cpu", tolerance={"cosine_min": 0.99}, color="#8172B3", engines=(),
         role="for ONNX Runtime CPU", cpu_only=True, cpu_variant_of="int8", quantized=True,
         section="int8_cpu"),
    _row(key="int8-ov", artifact="model.int8-ov.onnx", label="INT8",
         summary="NNCF's INT8 graph (with --int8), made for OpenVINO's CPU plugin", export_flag="--int8-openvino",
         tolerance={"cosine_min": 0.99}, color="#C44E52", engines=(), role="for OpenVINO", cpu_only=True,
         quantized=True),
)})

CPU_INT8 = next(p.key for p in PRECISIONS.values() if p.cpu_variant_of)  # "int8-cpu"
OV_INT8 = "int8-ov"  # what --backend openvino runs for int8 (runtime/runners/openvino.py)


def precision(key: str) -> Precision:
    """The registry row of ``key``; a UsageError naming the known ones otherwise."""
    try:
        return PRECISIONS[key]
    except KeyError:
        raise UsageError(f"Unknown precision '{key}'; choose one of {', '.join(PRECISIONS)}.") from None


def artifact_keys() -> tuple[str, ...]:
    """Every precision a bundle can carry, in the registry's order (the bundle reader refuses any other key)."""
    return tuple(PRECISIONS)


def engine_keys(runtime: str | None = None) -> tuple[str, ...]:
    """The precisions an engine runtime builds (any engine runtime when ``runtime`` is None)."""
    return tuple(p.key for p in PRECISIONS.values() if (runtime in p.engines if runtime else p.engines))


def quantized_keys() -> tuple[str, ...]:
    """The Q/DQ precisions (each with a calibration section)."""
    return tuple(p.key for p in PRECISIONS.values() if p.quantized)


def float_keys() -> tuple[str, ...]:
    """The float precisions (what layers kept out of INT8 can run in)."""
    return tuple(p.key for p in PRECISIONS.values() if not p.quantized)


def choices(keys: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A --precision choice list: ``keys`` (default: every artifact) and ``all``."""
    return (*(artifact_keys() if keys is None else keys), ALL)


def cpu_variant(key: str) -> str | None:
    """The precision that stands in for ``key`` on ONNX Runtime's CPU provider (int8 -> int8-cpu)."""
    return next((p.key for p in PRECISIONS.values() if p.cpu_variant_of == key), None)


def on_cpu_provider(backend: str, provider: str) -> bool:
    """True when artifacts run on ONNX Runtime's CPU execution provider."""
    return backend == "onnxruntime" and provider == "cpu"


def resolve_precision(available: list[str], precision: str, *, backend: str = "onnxruntime",
                      provider: str = "cpu", qdq: bool = False) -> str:
    """The artifact key that ``precision`` selects (see the module docstring)."""
    cpu = on_cpu_provider(backend, provider)
    row = PRECISIONS.get(precision)
    if row is not None and row.cpu_only:
        if qdq:
            base = PRECISIONS[row.cpu_variant_of].artifact if row.cpu_variant_of else "the Q/DQ graph"
            raise UsageError(f"--qdq selects the TensorRT-style graph ({base}), but --precision {row.key} "
                             "names the CPU graph; pass one of them.")
        if not cpu:
            other = PRECISIONS[row.cpu_variant_of or "fp32"]
            raise UsageError(
                f"--precision {row.key} is ONNX Runtime's CPU graph, {row.artifact} ({row.summary}), which "
                f"{backend}/{provider} does not run.",
                hint=f"Use --precision {other.key} there ({other.artifact}, built {other.role}).")
        return row.key
    variant = cpu_variant(precision)
    if variant is not None and cpu and not qdq and variant in available:
        return variant
    return precision


def select_artifacts(available: list[str], requested, *, backend: str = "onnxruntime", provider: str = "cpu",
                     qdq: bool = False, where: str = "The bundle") -> list[str]:
    """Artifact keys of ``available`` to run, in request order; ``all`` (or nothing) means every suitable one."""
    requested = tuple(requested or ())
    if not requested or ALL in requested:
        if on_cpu_provider(backend, provider):
            return list(available)
        return [p for p in available if not (p in PRECISIONS and PRECISIONS[p].cpu_only)]
    chosen = [resolve_precision(available, p, backend=backend, provider=provider, qdq=qdq) for p in requested]
    missing = [p for p in dict.fromkeys(chosen) if p not in available]
    if missing:
        raise UsageError(
            f"{where} has no {', '.join(missing)} artifact; it has: {', '.join(available) or 'none'}.",
            hint=reexport_hint(missing, available))
    return list(dict.fromkeys(chosen))


def export_options(keys) -> dict[str, list[Precision]]:
    """The `edgeport export` options that bring back the artifacts ``keys``: option -> the rows it writes.

    A flag writes all its rows (--int8: int8 and int8-cpu); a row with an opt-out needs its
    flag without the opt-out ("--int8 without --no-int8-cpu") unless the flag is there anyway.
    """
    rows = [PRECISIONS[k] for k in keys if k in PRECISIONS and PRECISIONS[k].export_flag]
    plain = {r.export_flag for r in rows if not r.opt_out}
    out: dict[str, list[Precision]] = {}
    for r in rows:
        if not r.opt_out:
            out[r.export_flag] = [p for p in PRECISIONS.values() if p.export_flag == r.export_flag]
        elif r.export_flag not in plain:
            out.setdefault(f"{r.export_flag} without {r.opt_out}", []).append(r)
    return out


def reexport_hint(missing: list[str], available: list[str] = ()) -> str:
    """How a re-export adds the missing artifacts (unchanged ones keep their engines and benchmarks)."""
    how = [f"plus {option} ({', '.join(f'{r.key}: {r.artifact}' + (f' {r.role}' if r.role else '') for r in rows)})"
           for option, rows in export_options(missing).items()]
    return (f"Re-export with the same options {' and '.join(how) or 'that wrote it'}: the artifacts that do not "
            "change come out byte-identical and keep their engines and benchmark results.")
