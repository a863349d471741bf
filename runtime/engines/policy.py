"""Build decisions shared by every engine runtime: plain functions, no imports of tensorrt.

Each engine runtime plans its own builds (runtime/engines/tensorrt.py for TensorRT,
runtime/engines/tensorrt_rtx.py for TensorRT-RTX; the registry in runtime/engines/registry.py
lists them); what they share lives here: release numbers (``TrtVersion``), the feature set a
release offers (``Capabilities``), the ``BuildPlan`` the builder executes, the batch profile,
the workspace and the Jetson test, and compute-capability names. Nothing here knows which
runtime it serves, so the rules are tested on machines without TensorRT
(tests/runtime/engines/test_trt_policy.py).
"""

from __future__ import annotations

import dataclasses
import re

from runtime.errors import BundleError, BundleUsageError, EdgeportError, UsageError
from runtime.precision import PRECISIONS as _REGISTRY
from runtime.precision import engine_keys

PRECISIONS = engine_keys()  # the precisions engines are built for (the registry's)
# Build paths recorded in sidecars.
STRONGLY_TYPED = "strongly-typed"  # precision from the ONNX graph's tensor types
FLAGS = "flags"  # weakly typed network + BuilderFlag.FP16 / INT8 (TensorRT < 11)
DLA_IMPLICIT = "dla-implicit"  # FP32 graph + INT8/FP16 flags + calibration cache, on DLA (TensorRT < 11)
HARDWARE_COMPAT = ("none", "ampere+")

# Compute capabilities of NVIDIA's integrated (Tegra) GPUs: Nano 5.3, TX2 6.2, Xavier 7.2,
# Orin 8.7, Thor 10.1 (CUDA 12.x naming) / 11.0 (CUDA 13 naming).
JETSON_CCS = ("5.3", "6.2", "7.2", "8.7", "10.1", "11.0")


# -- versions ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, order=True)
class TrtVersion:
    """A TensorRT version (``tensorrt.__version__``, e.g. "10.3.0.30" or "8.6.1")."""

    major: int
    minor: int
    patch: int = 0
    build: int = 0

    @classmethod
    def parse(cls, text: str) -> "TrtVersion":
        m = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
        if not m:
            raise EdgeportError(f"Cannot read the TensorRT version '{text}' (expected e.g. 10.3.0).")
        return cls(*(int(g) if g else 0 for g in m.groups()))

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def same_release(self, other: "TrtVersion") -> bool:
        """Same major.minor.patch, and the same build number where both record one."""
        return (self.major, self.minor, self.patch) == (other.major, other.minor, other.patch) and (
            not self.build or not other.build or self.build == other.build)

    @property
    def short(self) -> str:
        """major.minor.patch (file names; the build number is in the sidecar)."""
        return f"{self.major}.{self.minor}.{self.patch}"

    def __str__(self) -> str:
        return self.short + (f".{self.build}" if self.build else "")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What one release of an engine runtime offers to edgeport's build paths."""

    supported: bool
    strongly_typed: bool
    precision_flags: bool  # BuilderFlag.FP16 / INT8 exist
    flags_deprecated: bool
    implicit_int8: bool  # IInt8Calibrator / config.int8_calibrator exist
    implicit_int8_deprecated: bool
    explicit_batch_flag: bool  # networks must be created with EXPLICIT_BATCH
    dla: str  # "flags" (8.6 - 10.7), "none" (10.8 - 11.4.0), "strongly-typed" (>= 11.4.1)
    runtime: str  # the engine runtime's registry key
    gpu_to_build: bool = True  # False: builds ahead of time on a CPU (TensorRT-RTX)
    compute_capability_targets: bool = False  # --compute-capability
    runtime_cache: bool = False  # a JIT runtime cache on the target
    timing_cache: bool = True
    hardware_compat: bool = True  # --hardware-compat ampere+
    version_compatible: bool = True  # --version-compatible


# -- build plans -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """Everything the builder does for one engine; chosen by ``plan_build``."""

    precision: str  # what the user asked for: fp32 / fp16 / int8
    path: str  # STRONGLY_TYPED / FLAGS / DLA_IMPLICIT
    source: str  # the bundle artifact whose ONNX is parsed (fp32 / fp16 / int8)
    network_flags: tuple[str, ...] = ()  # NetworkDefinitionCreationFlag members
    optional_network_flags: tuple[str, ...] = ()  # set when the enum still has them
    builder_flags: tuple[str, ...] = ()  # BuilderFlag members to set
    clear_flags: tuple[str, ...] = ()  # BuilderFlag members to clear (if they exist)
    calibration_cache: bool = False  # implicit INT8 from the bundle's calibration cache
    dla_core: int | None = None
    gpu_fallback: bool = False
    hardware_compat: str = "none"
    version_compatible: bool = False
    warnings: tuple[str, ...] = ()
    runtime: str = ""  # the engine runtime's registry key (set by its plan_build)
    compute_capabilities: tuple[str, ...] = ()  # targets ("8.6", ...) of runtimes that have them; () = default
    graph_rewrites: tuple[str, ...] = ()  # applied to a copy of the graph before parsing (turing.GEMM_AS_CONV)


def missing_artifact(precision: str, version: TrtVersion, product: str, also: str = "") -> BundleError:
    """The refusal when the bundle lacks the graph a ``precision`` engine is built from."""
    option = _REGISTRY[precision].export_flag
    graph = _REGISTRY[precision].artifact
    what = f"Re-export it with `edgeport export ... {option}`." if option else "Re-export the bundle."
    what += f" ({also})" if also else ""
    return BundleUsageError(f"The bundle has no {precision} graph ({graph}), which a {precision} engine is built from "
                       f"on {product} {version}.", hint=what)


# -- optimization profile -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Profile:
    """Batch range of the single optimization profile."""

    min: int
    opt: int
    max: int

    @property
    def static(self) -> bool:
        return self.min == self.opt == self.max

    def shapes(self, input_shape) -> tuple[tuple, tuple, tuple]:
        """(min, opt, max) input shapes, replacing the batch dimension of ``input_shape``."""
        rest = tuple(input_shape[1:])
        for d in rest:
            if not isinstance(d, int) or d < 1:
                raise BundleError(f"The bundle's input shape {list(input_shape)} has a non-batch dynamic dimension; "
                                  "edgeport builds engines for a dynamic batch only.",
                                  hint="Re-export the bundle with `edgeport export`.")
        return ((self.min, *rest), (self.opt, *rest), (self.max, *rest))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULT_OPT_BATCH = 8  # the batch verify uses by default; a common serving batch


def compute_profile(
    bundle_min: int,
    bundle_max: int,
    *,
    min_batch: int | None = None,
    opt_batch: int | None = None,
    max_batch: int | None = None,
    dla: bool = False,
) -> Profile:
    """The engine's batch profile from the options, defaulting to the bundle's range.

    Defaults: min = the bundle's min batch, max = its max batch, opt = min(8, max) kept
    inside [min, max]. DLA has no dynamic dimensions: min = opt = max, one static batch
    (the one batch value given, or the default opt).
    """
    bundle_min = max(int(bundle_min or 1), 1)
    bundle_max = int(bundle_max or bundle_min)
    if dla:
        given = {v for v in (min_batch, opt_batch, max_batch) if v is not None}
        if len(given) > 1:
            raise UsageError(
                f"DLA has no dynamic dimensions, so --min-batch, --opt-batch and --max-batch must be equal for "
                f"--dla-core; got min {_given(min_batch)}, opt {_given(opt_batch)}, max {_given(max_batch)}.",
                hint="Pass one of them (e.g. --opt-batch 4) for a static batch.")
        static = given.pop() if given else max(min(DEFAULT_OPT_BATCH, bundle_max), bundle_min)
        profile = Profile(static, static, static)
    else:
        lo = bundle_min if min_batch is None else min_batch
        hi = bundle_max if max_batch is None else max_batch
        opt = opt_batch if opt_batch is not None else min(max(DEFAULT_OPT_BATCH, lo), hi)
        profile = Profile(lo, opt, hi)
    validate_profile(profile, bundle_min, bundle_max)
    return profile


def _given(value) -> str:
    return "not given" if value is None else str(value)


def validate_profile(profile: Profile, bundle_min: int, bundle_max: int) -> None:
    """1 <= min <= opt <= max, inside the batch range the bundle's graphs were exported for."""
    p = profile
    if p.min < 1:
        raise UsageError(f"--min-batch must be at least 1, got {p.min}.")
    if not p.min <= p.opt <= p.max:
        raise UsageError(f"The batch profile needs min <= opt <= max; got min {p.min}, opt {p.opt}, max {p.max}.",
                         hint="Adjust --min-batch / --opt-batch / --max-batch.")
    if p.max > bundle_max:
        raise UsageError(
            f"--max-batch {p.max} exceeds the bundle's maximum batch {bundle_max} (the ONNX graphs were exported "
            f"for batches {bundle_min}..{bundle_max}).",
            hint=f"Use --max-batch {bundle_max} or less, or re-export with a larger `edgeport export --max-batch`.")
    if p.min < bundle_min:
        raise UsageError(f"--min-batch {p.min} is below the bundle's minimum batch {bundle_min}.",
                         hint=f"Use --min-batch {bundle_min} or more.")


# -- device: Jetson and workspace -------------------------------------------------------------
def is_jetson(*, model_text: str | None = None, tegra_release: bool = False, integrated: bool | None = None,
              compute_capability: str | None = None) -> bool:
    """Whether the GPU shares memory with the CPU as on a Jetson (Tegra) board.

    Evidence, strongest first: /etc/nv_tegra_release exists (L4T), the device-tree model
    names a Jetson, CUDA reports an integrated GPU, or the compute capability is one that
    only Tegra GPUs have (8.7 Orin, 7.2 Xavier, ...).
    """
    if tegra_release:
        return True
    text = (model_text or "").lower()
    if "jetson" in text or ("nvidia" in text and any(k in text for k in ("orin", "xavier", "thor", "tegra", "nano"))):
        return True
    if integrated:
        return True
    return compute_capability in JETSON_CCS if compute_capability else False


MIB = 1 << 20


def default_workspace_mib(total_memory_bytes: int | None, jetson: bool) -> int:
    """The builder's workspace cap when --workspace is not given.

    On a Jetson the GPU shares RAM with the CPU, the OS and the builder's own host
    allocations; unbounded tactic workspaces get the build "Killed". So: a quarter of the
    memory, at most 2 GiB. A discrete GPU gets half its memory, at most 4 GiB (plenty for
    CNN classifiers). At least 256 MiB; 1 GiB when the memory size is unknown.
    """
    if not total_memory_bytes or total_memory_bytes <= 0:
        return 1024
    total_mib = total_memory_bytes // MIB
    if jetson:
        value = min(total_mib // 4, 2048)
    else:
        value = min(total_mib // 2, 4096)
    return int(max(value, 256))


def workspace_ceiling_mib(total_memory_bytes: int | None, jetson: bool) -> int:
    """How far build.py may double the default workspace when the builder runs out of it.

    A Jetson keeps its default (its memory is shared: a bigger workspace there is how builds get
    "Killed"); a discrete GPU may go to half its memory; an ahead-of-time TensorRT-RTX build
    (memory unknown) to 4 GiB, what an RTX card with 8 GiB gets by default.
    """
    if jetson:
        return default_workspace_mib(total_memory_bytes, jetson)
    if not total_memory_bytes or total_memory_bytes <= 0:
        return 4096
    return int(max(total_memory_bytes // MIB // 2, default_workspace_mib(total_memory_bytes, jetson)))


def validate_workspace(workspace_mib: int, total_memory_bytes: int | None) -> None:
    if workspace_mib < 16:
        raise UsageError(f"--workspace must be at least 16 MiB, got {workspace_mib}.")
    if total_memory_bytes and workspace_mib * MIB > total_memory_bytes:
        raise UsageError(f"--workspace {workspace_mib} MiB exceeds this GPU's memory "
                         f"({total_memory_bytes // MIB} MiB).", hint="Choose a smaller --workspace.")


# -- names ---------------------------------------------------------------------------------------
def cc_tuple(cc: str) -> tuple[int, int]:
    """"8.7" -> (8, 7), for comparing compute capabilities."""
    try:
        major, _, minor = str(cc).partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        raise EdgeportError(f"Cannot read the compute capability '{cc}' (expected e.g. 8.7).") from None


def cc_tag(cc: str) -> str:
    """'8.7' -> 'sm87' (the CUDA convention)."""
    major, minor = cc_tuple(cc)
    return f"sm{major}{minor}"
