"""One way to pick and open a runner: ``open_runner(bundle, precision, target)``.

A ``Target`` says where artifacts run (backend, ONNX Runtime provider, threads, and
``qdq`` for the INT8 graph choice on the CPU). Every command (verify, bench, predict,
labeled accuracy) and the Python API go through ``select_precisions`` and
``open_runner``; a new backend is one more ``_Backend`` in ``BACKENDS``.

Rules kept here:

- ONNX Runtime runs the bundle's ONNX artifacts (which INT8 graph ``int8`` means on which
  provider: runtime/precision.py); its TensorRT provider gets an engine cache in edgeport's
  cache folder, keyed by the graph's sha256 (runtime/engines/ort_ep.py).
- Every engine runtime of runtime/engines/registry.py (TensorRT, TensorRT-RTX) is a backend
  of the same name: it runs the engine built for the precision, after its sidecar check
  (runtime/engines/sidecar.py), with the runner class the runtime names; ``all`` there means
  the precisions that have engines of that runtime.
- OpenVINO (edgeport[openvino]) runs the ONNX artifacts it reads alike on the CPU;
  ``int8`` is model.int8-ov.onnx (else model.int8-cpu.onnx) there, model.int8.onnx is refused with the reason
  (runtime/runners/openvino.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from runtime.errors import UsageError
from runtime.runners.base import Runner

PROVIDER_CHOICES = ("cpu", "cuda", "tensorrt")


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a bundle's artifacts run."""

    backend: str = "onnxruntime"
    provider: str = "cpu"  # ONNX Runtime execution provider (onnxruntime backend only)
    threads: int | None = None  # intra-op threads (None: the backend's default)
    qdq: bool = False  # int8 on the CPU provider: run model.int8.onnx, not model.int8-cpu.onnx
    # Load version-compatible engines, whose embedded host code runs in this process: only on the
    # user's word (--trust-engine-host-code), never because a sidecar says so (docs/security.md).
    trust_engine_host_code: bool = False

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise UsageError(f"Unknown backend '{self.backend}'; choose one of {', '.join(BACKENDS)}.")
        if self.provider not in PROVIDER_CHOICES:
            raise UsageError(f"Unknown provider '{self.provider}'; choose one of {', '.join(PROVIDER_CHOICES)}.")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise UsageError(f"threads must be a whole number of at least 1, got {self.threads!r}.")

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.provider}" if self.backend == "onnxruntime" else self.backend


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What ``open_runner`` loads for one precision: the file, the label for reports and options."""

    precision: str
    path: Path
    provider: str  # the reports' provider column: cpu / cuda / tensorrt, or gpu / dla<N> for engines
    options: dict


class _Backend:
    name = "?"

    def precisions(self, bundle, requested, target: Target) -> list[str]:
        from runtime.precision import select_artifacts

        return select_artifacts(bundle.precisions, requested, backend=target.backend, provider=target.provider,
                                 qdq=target.qdq, where=f"Bundle '{bundle.root}'")

    def key(self, bundle, precision: str, target: Target) -> str:
        """The artifact key a user's ``precision`` means here (runtime/precision.py)."""
        from runtime.precision import resolve_precision

        return resolve_precision(bundle.precisions, precision, backend=target.backend, provider=target.provider,
                                 qdq=target.qdq)

    def resolve(self, bundle, precision: str, target: Target, warn) -> Resolved:
        raise NotImplementedError

    def open(self, bundle, resolved: Resolved, target: Target) -> Runner:
        raise NotImplementedError


class _OnnxRuntime(_Backend):
    name = "onnxruntime"
    help = "the ONNX artifacts (--provider picks ONNX Runtime's execution provider)"

    def resolve(self, bundle, precision, target, warn):
        options = {}
        if target.provider == "tensorrt":
            from runtime.engines.ort_ep import tensorrt_ep_options

            options["provider_options"] = tensorrt_ep_options(bundle, precision, warn=warn)
        return Resolved(precision, bundle.artifact_path(precision), target.provider, options)

    def open(self, bundle, resolved, target):
        from runtime.runners.onnxruntime import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(resolved.path, provider=target.provider, threads=target.threads,
                                   **resolved.options)
        runner.max_batch = bundle.max_batch  # the graphs were exported for batches up to this
        from runtime.bundle_check import check_graph_io

        check_graph_io(bundle.manifest, runner.inputs, runner.outputs, resolved.path.name)
        return runner


class _Engines(_Backend):
    """The engines of one engine runtime (runtime/engines/registry.py): the backend's name is the runtime's."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.name = runtime.name  # also the runtime recorded in the engines' sidecars
        self.help = runtime.backend_help

    def require_library(self) -> None:
        """Without the runtime's library no engine runs here, and `edgeport build` would fail for the
        same reason: name the missing part and the backend that runs without it, before any engine lookup."""
        from runtime.errors import DependencyError

        try:
            self.runtime.import_library(f"--backend {self.name}")
        except DependencyError as exc:
            raise DependencyError(str(exc), hint=f"{exc.hint} Or run the bundle's ONNX artifacts instead: "
                                                 "--backend onnxruntime.") from exc

    def precisions(self, bundle, requested, target):
        if not requested or "all" in requested:
            from runtime.engines.sidecar import engine_precisions

            self.require_library()
            return engine_precisions(bundle, self.name)  # "all" = the precisions that have engines
        chosen = super().precisions(bundle, requested, target)  # what the user typed first (exit 2)
        self.require_library()
        return chosen

    def resolve(self, bundle, precision, target, warn):
        from runtime.engines.sidecar import resolve_engine

        self.require_library()
        record = resolve_engine(bundle, precision, runtime=self.name, warn=warn)
        return Resolved(precision, record.engine_path, record.target_label, {"sidecar": record.sidecar})

    def open(self, bundle, resolved, target):
        if target.threads is not None:
            raise UsageError(f"--threads applies to ONNX Runtime; {self.name} engines run on the GPU.",
                             hint=f"Drop --threads with --backend {self.name}.")
        return self.runtime.runner_class()(resolved.path, sidecar=resolved.options.get("sidecar"),
                                           trust_engine_host_code=target.trust_engine_host_code)


class _OpenVINO(_Backend):
    """OpenVINO on the CPU (edgeport[openvino]): the ONNX artifacts it reads alike
    (runtime/runners/openvino.py says which, and why not model.int8.onnx)."""

    name = "openvino"
    help = "the ONNX artifacts on the CPU with OpenVINO (edgeport[openvino]; int8 = model.int8-ov.onnx, else " \
           "model.int8-cpu.onnx)"

    def precisions(self, bundle, requested, target):
        from runtime.runners.openvino import runnable

        if not requested or "all" in requested:
            return runnable(bundle.precisions)
        chosen = list(dict.fromkeys(self.key(bundle, p, target) for p in requested))
        return super().precisions(bundle, chosen, Target())  # exact keys now: checked against the bundle

    def key(self, bundle, precision, target):
        from runtime.runners.openvino import artifact_key

        return artifact_key(bundle.precisions, precision, target.qdq)

    def resolve(self, bundle, precision, target, warn):
        if precision == "int8":  # an exact key (artifact=True) reaches here without key()
            self.key(bundle, precision, Target(qdq=True))
        return Resolved(precision, bundle.artifact_path(precision), "cpu", {})

    def open(self, bundle, resolved, target):
        from runtime.runners.openvino import OpenVINORunner

        if target.provider != "cpu":
            raise UsageError(f"--provider {target.provider} is an ONNX Runtime execution provider; OpenVINO runs "
                             "on the CPU here.", hint="Drop --provider with --backend openvino.")
        runner = OpenVINORunner(resolved.path, threads=target.threads, max_batch=bundle.max_batch,
                                precision_hint="f32" if resolved.precision == "fp32" else None)
        from runtime.bundle_check import check_graph_io

        check_graph_io(bundle.manifest, runner.inputs, runner.outputs, resolved.path.name)
        return runner


def _backends() -> dict[str, _Backend]:
    from runtime.engines.registry import ENGINE_RUNTIMES

    return {b.name: b for b in (_OnnxRuntime(), *(_Engines(rt) for rt in ENGINE_RUNTIMES.values()), _OpenVINO())}


BACKENDS: dict[str, _Backend] = _backends()
BACKEND_CHOICES = tuple(BACKENDS)


def backend_help() -> str:
    """The --backend help: every backend and what it runs."""
    return "; ".join(f"{name}: {b.help}" for name, b in BACKENDS.items()) + "."


def select_precisions(bundle, requested=("all",), target: Target | None = None) -> list[str]:
    """The artifact keys ``requested`` selects on ``target`` (``all``: every suitable one)."""
    target = target or Target()
    return BACKENDS[target.backend].precisions(bundle, tuple(requested or ()), target)


def resolve(bundle, precision: str, target: Target | None = None,
            warn: Callable[[str], None] | None = None, *, artifact: bool = False) -> Resolved:
    """The file (ONNX artifact or engine) that runs ``precision`` on ``target``, checked.

    ``precision`` is what a user asks for (``int8`` = the INT8 graph that suits the target,
    runtime/precision.py), or with ``artifact=True`` an artifact key as ``select_precisions``
    returns them (``int8`` = model.int8.onnx, exactly).
    """
    target = target or Target()
    backend = BACKENDS[target.backend]
    key = precision if artifact else backend.key(bundle, precision, target)
    return backend.resolve(bundle, key, target, warn)


def open_runner(bundle, precision: str = "fp32", target: Target | None = None, *,
                warn: Callable[[str], None] | None = None, artifact: bool = False) -> Runner:
    """A runner for ``precision`` of ``bundle`` on ``target`` (default: ONNX Runtime CPU).

    ``precision`` as for ``resolve`` (``artifact=True``: an exact artifact key, what verify,
    bench and labeled accuracy pass after ``select_precisions``). The runner's ``resolved``
    attribute says which file it runs.
    """
    target = target or Target()
    resolved = resolve(bundle, precision, target, warn, artifact=artifact)
    runner = BACKENDS[target.backend].open(bundle, resolved, target)
    runner.resolved = resolved
    return runner
