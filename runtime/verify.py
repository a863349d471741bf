"""Run the golden set through each artifact and compare with the PyTorch outputs."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .bundle import Bundle
from .compare import DEFAULT_TOLERANCES, Comparison, Tolerance, compare
from .console import Progress
from .errors import UsageError
from .runners import make_runner

ENGINE_BACKENDS = ("tensorrt", "tensorrt-rtx")  # backends that run engines built by `edgeport build`


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    precisions: tuple[str, ...] = ("all",)
    backend: str = "onnxruntime"
    provider: str = "cpu"
    batch: int | None = None  # default: the bundle's max batch, capped at 8
    threads: int | None = None
    tolerances: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    qdq: bool = False  # --qdq: `int8` on the CPU provider runs model.int8.onnx, not model.int8-cpu.onnx


def select_precisions(bundle: Bundle, requested: tuple[str, ...], *, backend: str = "onnxruntime",
                      provider: str = "cpu", qdq: bool = False) -> list[str]:
    """Artifact keys for the requested precisions (rules in runtime/precision.py: on the CPU
    provider `int8` means model.int8-cpu.onnx unless ``qdq``; `all` checks both INT8 graphs)."""
    from .precision import select_precisions as select

    return select(bundle.precisions, requested, backend=backend, provider=provider, qdq=qdq,
                  where=f"Bundle '{bundle.root}'")


def run_batched(runner, bundle: Bundle, inputs: np.ndarray, batch: int, progress=None) -> np.ndarray:
    """Outputs for ``inputs`` in batches of ``batch``; ``progress`` (a console.Progress) counts samples."""
    outs = []
    for start in range(0, len(inputs), batch):
        chunk = np.ascontiguousarray(inputs[start : start + batch])
        result = runner.infer({bundle.input_name: chunk})
        outs.append(np.asarray(result[bundle.output_name], dtype=np.float32))
        if progress is not None:
            progress.update(len(chunk))
    return np.concatenate(outs, axis=0)


def artifact_for(bundle: Bundle, config: VerifyConfig, precision: str, warn=None) -> tuple:
    """(file to run, provider label, extra runner options) for one precision.

    TensorRT and TensorRT-RTX run the engine that ``resolve_engine`` picks (refusing
    mismatched ones); ONNX Runtime's TensorRT provider gets engine-cache options inside the bundle.
    """
    if config.backend in ENGINE_BACKENDS:
        from .trt.sidecar import resolve_engine

        record = resolve_engine(bundle, precision, runtime=config.backend, warn=warn)
        return record.engine_path, record.target_label, {"sidecar": record.sidecar}
    extra = {}
    if config.provider == "tensorrt":
        from .trt.ort_ep import tensorrt_ep_options

        extra["provider_options"] = tensorrt_ep_options(bundle, precision)
    return bundle.artifact_path(precision), config.provider, extra


def verify_bundle(
    bundle: Bundle,
    config: VerifyConfig,
    log: Callable[[str], None] = lambda s: None,
) -> list[Comparison]:
    """Check every selected artifact against the golden outputs; returns the comparisons."""
    if config.backend in ENGINE_BACKENDS and (not config.precisions or "all" in config.precisions):
        from .trt.sidecar import engine_precisions

        precisions = engine_precisions(bundle, config.backend)  # "all" = the precisions that have engines
    else:
        precisions = select_precisions(bundle, config.precisions, backend=config.backend,
                                       provider=config.provider, qdq=config.qdq)
    golden = bundle.golden()
    inputs = golden.inputs(bundle.preprocessing)
    batch = config.batch or min(bundle.max_batch, 8)
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}.")
    results = VerifyResults()
    for precision in precisions:
        path, provider, extra = artifact_for(bundle, config, precision, warn=log)
        log(f"verifying {precision} ({path.name}) on {config.backend}/{provider}, "
            f"{len(inputs)} golden samples, batch {batch}")
        runner = make_runner(config.backend, path, provider=config.provider, threads=config.threads,
                             max_batch=bundle.max_batch, **extra)
        with runner, Progress(len(inputs), f"{precision} golden set") as progress:
            outputs = run_batched(runner, bundle, inputs, batch, progress)
        tol = config.tolerances.get(precision) or Tolerance()
        results.append(
            compare(outputs, golden.outputs, backend=config.backend, provider=provider,
                    precision=precision, tolerance=tol)
        )
        if precision == "fp16":
            _fp16_range_into(results[-1], bundle.manifest.get("fp16_range"))
        # The TensorRT-style Q/DQ artifact: TensorRT's rules, checked on the ONNX file. (int8-cpu is
        # ONNX Runtime's U8S8 graph: asymmetric uint8 by design, never built by TensorRT.)
        if precision == "int8":
            _lint_into(results, precision, bundle.artifact_path(precision), log)
    return results


class VerifyResults(list):
    """The comparisons (a list, as before) plus ``lint``: {precision: Q/DQ lint summary}."""

    def __init__(self, *args):
        super().__init__(*args)
        self.lint: dict = {}


def _lint_into(results: VerifyResults, precision: str, path, log) -> None:
    """Lint a Q/DQ artifact; a violation fails its comparison (onnx missing: skipped, warned)."""
    from .console import warn
    from .qdq_lint import lint_artifact

    lint = lint_artifact(path, warn=warn)
    if lint is None:
        return
    results.lint[precision] = lint
    log(f"Q/DQ lint of {path.name}: {lint['summary']}")
    if not lint["passed"]:
        results[-1].failures.append(f"Q/DQ lint: {lint['summary']}")
        results[-1].passed = False


def _fp16_range_into(result: Comparison, fp16_range: dict | None) -> None:
    """FP16 overflow found at export (FP32 activations beyond 65504) fails the FP16 check.

    ONNX Runtime CPU computes most FP16 nodes in float, so it would not show the overflow
    that TensorRT's FP16 kernels produce; the export-time range check does.
    """
    if not fp16_range:
        return
    result.fp16_range = fp16_range
    count = fp16_range.get("overflowing_count", 0)
    weights = fp16_range.get("overflowing_initializers", [])
    if count or weights:
        first = (fp16_range.get("overflowing_tensors") or weights)[0]
        result.failures.append(
            f"FP16 overflow: {count} activations and {len(weights)} weights exceed 65504 on the golden set "
            f"(largest {fp16_range.get('max_abs_activation', 0):.3g}; e.g. {first['name']})")
        result.passed = False
