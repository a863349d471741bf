"""Which artifact a requested precision means on a given backend/provider.

A bundle exported with ``--int8`` carries two INT8 graphs:

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

from runtime.errors import UsageError

CPU_INT8 = "int8-cpu"
# OpenVINO's INT8 graph (NNCF, exporter/int8/openvino_int8.py): CPU runtimes only, like int8-cpu.
# Merge note: one row of the precision registry (issue 17).
OV_INT8 = "int8-ov"


def artifact_keys() -> tuple[str, ...]:
    """Every artifact key a manifest may list (the bundle reader refuses any other)."""
    return ("fp32", "fp16", "int8", CPU_INT8, OV_INT8)


def on_cpu_provider(backend: str, provider: str) -> bool:
    """True when artifacts run on ONNX Runtime's CPU execution provider."""
    return backend == "onnxruntime" and provider == "cpu"


def resolve_precision(available: list[str], precision: str, *, backend: str = "onnxruntime",
                      provider: str = "cpu", qdq: bool = False) -> str:
    """The artifact key that ``precision`` selects (see the module docstring)."""
    cpu = on_cpu_provider(backend, provider)
    if precision == CPU_INT8:
        if qdq:
            raise UsageError("--qdq selects the TensorRT-style graph (model.int8.onnx), but --precision int8-cpu "
                             "names the CPU graph; pass one of them.")
        if not cpu:
            raise UsageError(
                f"--precision int8-cpu is ONNX Runtime's CPU graph (U8S8 Q/DQ), which {backend}/{provider} "
                "does not run.", hint="Use --precision int8 there (model.int8.onnx, built for TensorRT).")
        return CPU_INT8
    if precision == "int8" and cpu and not qdq and CPU_INT8 in available:
        return CPU_INT8
    return precision


def select_precisions(available: list[str], requested, *, backend: str = "onnxruntime", provider: str = "cpu",
                      qdq: bool = False, where: str = "The bundle") -> list[str]:
    """Artifact keys to run, in request order; ``all`` (or nothing) means every suitable one."""
    requested = tuple(requested or ())
    if not requested or "all" in requested:
        if on_cpu_provider(backend, provider):
            return list(available)
        return [p for p in available if p not in (CPU_INT8, OV_INT8)]
    chosen = [resolve_precision(available, p, backend=backend, provider=provider, qdq=qdq) for p in requested]
    missing = [p for p in dict.fromkeys(chosen) if p not in available]
    if missing:
        raise UsageError(
            f"{where} has no {', '.join(missing)} artifact; it has: {', '.join(available) or 'none'}.",
            hint=_add_hint(missing, available))
    return list(dict.fromkeys(chosen))


def _add_hint(missing: list[str], available: list[str]) -> str:
    """How a re-export adds the missing artifacts (unchanged ones keep their engines and benchmarks)."""
    if missing == [CPU_INT8] and "int8" in available:
        how = "without --no-int8-cpu (model.int8-cpu.onnx, ONNX Runtime CPU's INT8 graph)"
    elif any(p.startswith("int8") for p in missing):
        how = "plus --int8 (both INT8 graphs: int8 for TensorRT, int8-cpu for ONNX Runtime CPU)"
    else:
        how = "plus " + " ".join(f"--{p}" for p in missing)
    return (f"Re-export with the same options {how}: the artifacts that do not change come out byte-identical "
            "and keep their engines and benchmark results.")


def int8_cpu_warning(manifest, flags: set[str] | None = None) -> str | None:
    """A warning when an int8-cpu graph with 8-bit weights runs on a CPU without VNNI/AMX.

    Such a graph was quantized on a VNNI machine (no reduce_range); on CPUs without an int8
    dot product ONNX Runtime's u8s8 kernels can saturate and lose accuracy.
    """
    from runtime.machine import has_vnni

    info = manifest.int8_cpu
    if info is not None and info.reduce_range is False and not has_vnni(flags):
        where = info.quantized_on.get("cpu", "a CPU with VNNI")
        return (f"model.int8-cpu.onnx was quantized on {where} with 8-bit weights (no reduce_range), but this CPU has "
                "no VNNI/AMX: its u8s8 kernels can saturate. Re-export on this machine (edgeport export --int8) "
                "to get 7-bit weights, and check the accuracy with `edgeport verify`.")
    return None
