"""Run the golden set through each artifact and compare with the PyTorch outputs."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .bundle import Bundle
from .compare import DEFAULT_TOLERANCES, Comparison, Tolerance, compare
from .errors import UsageError
from .runners import make_runner


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    precisions: tuple[str, ...] = ("all",)
    backend: str = "onnxruntime"
    provider: str = "cpu"
    batch: int | None = None  # default: the bundle's max batch, capped at 8
    threads: int | None = None
    tolerances: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_TOLERANCES))


def select_precisions(bundle: Bundle, requested: tuple[str, ...]) -> list[str]:
    available = bundle.precisions
    if not requested or "all" in requested:
        return available
    missing = [p for p in requested if p not in available]
    if missing:
        raise UsageError(
            f"Bundle '{bundle.root}' has no {', '.join(missing)} artifact; it has: {', '.join(available)}."
        )
    return list(dict.fromkeys(requested))


def run_batched(runner, bundle: Bundle, inputs: np.ndarray, batch: int) -> np.ndarray:
    outs = []
    for start in range(0, len(inputs), batch):
        chunk = np.ascontiguousarray(inputs[start : start + batch])
        result = runner.infer({bundle.input_name: chunk})
        outs.append(np.asarray(result[bundle.output_name], dtype=np.float32))
    return np.concatenate(outs, axis=0)


def verify_bundle(
    bundle: Bundle,
    config: VerifyConfig,
    log: Callable[[str], None] = lambda s: None,
) -> list[Comparison]:
    """Check every selected artifact against the golden outputs; returns the comparisons."""
    precisions = select_precisions(bundle, config.precisions)
    golden = bundle.golden()
    inputs = golden.inputs(bundle.preprocessing)
    batch = config.batch or min(bundle.max_batch, 8)
    if batch < 1:
        raise UsageError(f"--batch must be at least 1, got {batch}.")
    results = []
    for precision in precisions:
        path = bundle.artifact_path(precision)
        log(f"verifying {precision} ({path.name}) on {config.backend}/{config.provider}, "
            f"{len(inputs)} golden samples, batch {batch}")
        runner = make_runner(config.backend, path, provider=config.provider, threads=config.threads,
                             max_batch=bundle.max_batch)
        with runner:
            outputs = run_batched(runner, bundle, inputs, batch)
        tol = config.tolerances.get(precision) or Tolerance()
        results.append(
            compare(outputs, golden.outputs, backend=config.backend, provider=config.provider,
                    precision=precision, tolerance=tol)
        )
    return results
