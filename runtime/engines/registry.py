"""Engine runtimes: the products that turn a bundle's ONNX graphs into engines.

Each runtime is one module holding one object that implements ``EngineRuntime``
(runtime/engines/tensorrt.py, runtime/engines/tensorrt_rtx.py); ``ENGINE_RUNTIMES`` lists
them by key. ``edgeport build``, the sidecar check, the runner loader and the CLI's
``--runtime`` / ``--backend`` choices ask this registry and never compare a runtime's name,
so adding a runtime is one module plus one entry here (docs/tensorrt.md, "Adding an engine
runtime"). Nothing here imports a runtime's library.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from runtime.engines.policy import BuildPlan, Capabilities, TrtVersion
from runtime.engines.tensorrt import TensorRT
from runtime.engines.tensorrt_rtx import TensorRTRX
from runtime.errors import UsageError


@runtime_checkable
class EngineRuntime(Protocol):
    """What edgeport needs from an engine runtime (all methods import its library lazily, if at all)."""

    name: str  # the --runtime / --backend value, recorded in each engine's sidecar
    product: str  # the product's name in messages ("TensorRT")
    help: str  # its part of the --runtime help
    backend_help: str  # its part of the --backend help (verify, bench, predict)
    distributions: tuple[str, ...]  # pip distributions whose versions benchmarks record
    default_targets: tuple[str, ...]  # compute capabilities a build without --compute-capability covers
    records_layers: bool  # builds log the engine's layers by default (VERBOSE + DETAILED)
    run_where: str  # where its engines run, appended to the "next: edgeport verify" line
    builder_noise: tuple[str, ...]  # library messages the builder drops (they bury real errors)
    parse_hint: str  # added to the hint when its ONNX parser refuses a graph

    def capabilities(self, version: TrtVersion) -> Capabilities:
        """The feature set of ``version`` of this runtime."""

    def import_library(self, purpose: str, rerun: str | None = None):
        """The library's Python module, or a DependencyError saying what to install."""

    def probe_env(self, *, dla: bool = False):
        """This machine as an engine's sidecar is compared with (a device.TargetEnv)."""

    def prepare(self, bundle, options, *, trt=None, env=None, log: Callable[[str], None] = ..., rerun: str | None = None):
        """Every plan of one ``edgeport build`` (a target.BuildTarget), checked before any build;
        ``rerun`` is the command to repeat once the library is installed."""

    def engine_filename(self, plan: BuildPlan, target) -> str:
        """The engine's file name in the bundle (never the same as another runtime's)."""

    def version_problems(self, sidecar, here: str) -> list[str]:
        """Why an engine built by ``sidecar.version`` cannot load on release ``here``."""

    def gpu_problems(self, sidecar, env) -> list[str]:
        """Why the engine cannot run on ``env.gpu`` (which is not None)."""

    def compatibility_notes(self, sidecar, env) -> list[str]:
        """Differences that do not block loading but are worth a warning."""

    def portability(self, sidecar) -> int:
        """0 for an engine built exactly for one device and release (preferred), more when portable."""

    def runner_class(self) -> type:
        """The runners.base.Runner subclass that runs its engines."""


ENGINE_RUNTIMES: dict[str, EngineRuntime] = {rt.name: rt for rt in (TensorRT(), TensorRTRX())}
# The default of --runtime and of sidecars that do not say: the first entry.
DEFAULT_RUNTIME = next(iter(ENGINE_RUNTIMES))


def engine_runtime(name: str) -> EngineRuntime:
    """The registered runtime ``name``, or a UsageError listing the others."""
    try:
        return ENGINE_RUNTIMES[name]
    except (KeyError, TypeError):
        raise UsageError(f"Unknown runtime '{name}'; choose {' or '.join(ENGINE_RUNTIMES)}.") from None


def product_name(name: str) -> str:
    """The product's name for messages ('TensorRT'); an unknown key as it is."""
    rt = ENGINE_RUNTIMES.get(name)
    return rt.product if rt is not None else str(name)
