"""Build decisions as plain functions of (TensorRT version, precision, options, device facts).

Nothing here imports tensorrt; the builder only executes the ``BuildPlan`` chosen here, so
the version rules are tested on machines without TensorRT (tests/runtime/engines/test_trt_policy.py).

Version facts this encodes (NVIDIA docs; see docs/tensorrt.md):
- 8.6 is the oldest release with the I/O tensor API everywhere, hardware-compatible and
  version-compatible engines and builder optimization levels, so it is the floor.
- Strongly typed networks (precision taken from the ONNX tensor types) are used from 10.0.
  Before 10, networks need the EXPLICIT_BATCH creation flag; from 10 it is ignored.
- BuilderFlag.FP16/INT8 (weak typing) are deprecated from 10.12 and removed in 11.0.
- Implicit INT8 calibrators are deprecated from 10.1 and removed in 11.0.
- DLA: supported from 8.6 to 10.7 with the flag / implicit-INT8 paths ("TensorRT 10.7 was
  the last 10.x release that supported DLA", NVIDIA's "Working with DLA", 11.4.1); absent in
  10.8+ and 11.0 through 11.4.0 (11.4.0 only on Windows on ARM, not a target here); back in
  11.4.1 on Jetson AGX Orin (JetPack 7.2.2+), strongly typed only.
- DLA has no dynamic dimensions: the profile's min, opt and max must be equal.

TensorRT-RTX (``--runtime tensorrt-rtx``) is a separate product line with its own version
numbers (1.x), not a TensorRT version: see the TensorRT-RTX section below.
"""

from __future__ import annotations

import dataclasses
import re

from runtime.errors import BundleError, DependencyError, EdgeportError, UsageError
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

    @property
    def short(self) -> str:
        """major.minor.patch (file names; the build number is in the sidecar)."""
        return f"{self.major}.{self.minor}.{self.patch}"

    def __str__(self) -> str:
        return self.short + (f".{self.build}" if self.build else "")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What one TensorRT version offers to edgeport's build paths."""

    supported: bool
    strongly_typed: bool
    precision_flags: bool  # BuilderFlag.FP16 / INT8 exist
    flags_deprecated: bool
    implicit_int8: bool  # IInt8Calibrator / config.int8_calibrator exist
    implicit_int8_deprecated: bool
    explicit_batch_flag: bool  # networks must be created with EXPLICIT_BATCH
    dla: str  # "flags" (8.6 - 10.7), "none" (10.8 - 11.4.0), "strongly-typed" (>= 11.4.1)
    # Differences of the TensorRT-RTX product line (the defaults are TensorRT's).
    runtime: str = "tensorrt"
    gpu_to_build: bool = True  # TensorRT builds on the GPU it targets; TensorRT-RTX builds on a CPU (AOT)
    compute_capability_targets: bool = False  # --compute-capability (TensorRT-RTX)
    runtime_cache: bool = False  # JIT runtime cache (TensorRT-RTX)
    timing_cache: bool = True
    hardware_compat: bool = True  # --hardware-compat ampere+
    version_compatible: bool = True  # --version-compatible


def capabilities(version: TrtVersion) -> Capabilities:
    """The feature set of ``version`` (see the module docstring for the sources)."""
    if not version.at_least(10, 8):
        dla = "flags"
    elif version.at_least(11, 4, 1):
        dla = "strongly-typed"
    else:
        dla = "none"
    return Capabilities(
        supported=version.at_least(8, 6),
        strongly_typed=version.major >= 10,
        precision_flags=version.major < 11,
        flags_deprecated=version.at_least(10, 12),
        implicit_int8=version.major < 11,
        implicit_int8_deprecated=version.at_least(10, 1),
        explicit_batch_flag=version.major < 10,
        dla=dla,
    )


def require_supported(version: TrtVersion) -> Capabilities:
    caps = capabilities(version)
    if not caps.supported:
        raise DependencyError(
            f"TensorRT {version} is older than 8.6, the oldest release edgeport builds engines with "
            "(it needs the I/O tensor API, hardware- and version-compatible engines).",
            hint="Install TensorRT 8.6 or newer: on a Jetson, JetPack 6 ships TensorRT 8.6 or 10.x.",
        )
    return caps


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
    runtime: str = "tensorrt"  # TENSORRT or TENSORRT_RTX
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets ("8.6", ...); () = the library's default


def plan_build(
    version: TrtVersion,
    precision: str,
    available: set[str] | frozenset[str] | tuple[str, ...] | list[str],
    *,
    requested_path: str = "auto",
    dla_core: int | None = None,
    gpu_fallback: bool = False,
    hardware_compat: str = "none",
    version_compatible: bool = False,
    compute_capability: str | None = None,
) -> BuildPlan:
    """Choose the build path for one precision.

    ``available`` are the bundle's artifact precisions (fp32 = model.onnx, fp16 =
    model.fp16.onnx, int8 = model.int8.onnx). ``requested_path`` is ``auto``,
    ``strongly-typed`` or ``flags``. Raises UsageError / BundleError / EdgeportError with
    what to do when the combination cannot be built.
    """
    caps = require_supported(version)
    available = set(available)
    _check_plan_options(precision, requested_path, hardware_compat, gpu_fallback, dla_core, compute_capability)
    common = dict(precision=precision, dla_core=dla_core, gpu_fallback=gpu_fallback,
                  hardware_compat=hardware_compat, version_compatible=version_compatible)
    extra_flags: tuple[str, ...] = ("VERSION_COMPATIBLE",) if version_compatible else ()
    warnings: list[str] = []
    if dla_core is not None:
        extra_flags += ("GPU_FALLBACK",) if gpu_fallback else ()
        return _plan_dla(version, caps, precision, available, requested_path, common, extra_flags, warnings)
    path = _gpu_path(version, caps, precision, available, requested_path, warnings)
    # FP32 must reproduce PyTorch to 1e-4 of the logit range: TF32 (on by default on
    # Ampere+) would not, so FP32 engines clear it.
    clear = ("TF32",) if precision == "fp32" else ()
    if path == STRONGLY_TYPED:
        return BuildPlan(path=STRONGLY_TYPED, source=precision,
                         network_flags=() if version.major >= 11 else ("STRONGLY_TYPED",),
                         optional_network_flags=("STRONGLY_TYPED",) if version.major >= 11 else (),
                         builder_flags=extra_flags, clear_flags=clear, warnings=tuple(warnings), **common)
    return _plan_flags(version, caps, precision, available, requested_path, common, extra_flags, clear, warnings)


def _check_plan_options(precision, requested_path, hardware_compat, gpu_fallback, dla_core, compute_capability):
    """Option values and combinations every build path refuses."""
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    if requested_path not in ("auto", STRONGLY_TYPED, FLAGS):
        raise UsageError(f"Unknown build path '{requested_path}'; choose auto, {STRONGLY_TYPED} or {FLAGS}.")
    if hardware_compat not in HARDWARE_COMPAT:
        raise UsageError(f"Unknown hardware compatibility level '{hardware_compat}'; choose none or ampere+.")
    if gpu_fallback and dla_core is None:
        raise UsageError("--gpu-fallback only applies to DLA builds; add --dla-core N or drop --gpu-fallback.")
    if hardware_compat == "ampere+":
        if dla_core is not None:
            raise UsageError(
                "--hardware-compat ampere+ cannot be combined with --dla-core: hardware compatibility covers "
                "GPU kernels of Ampere and newer GPUs, while DLA loadables are tied to the DLA they were built for.",
                hint="Drop one of the two options.")
        if compute_capability is not None and cc_tuple(compute_capability) < (8, 0):
            raise UsageError(
                f"--hardware-compat ampere+ needs an Ampere or newer GPU (compute capability >= 8.0) to build on; "
                f"this GPU has compute capability {compute_capability}.",
                hint="Build without --hardware-compat, or build on an Ampere or newer GPU.")


def _gpu_path(version, caps, precision, available, requested_path, warnings) -> str:
    """STRONGLY_TYPED or FLAGS for a GPU build (``auto`` resolved; impossible requests refused)."""
    path = requested_path
    if path == "auto":
        if caps.strongly_typed and precision in available:
            path = STRONGLY_TYPED
        elif caps.precision_flags:
            path = FLAGS
            if caps.strongly_typed:
                warnings.append(
                    f"the bundle has no {precision} graph (model.{precision}.onnx), so the {precision} engine is built "
                    f"from the FP32 graph with builder flags (deprecated from TensorRT 10.12, removed in 11); "
                    f"re-export with --{precision} to use a strongly typed build")
        else:
            raise _missing_artifact(precision, version)
    if path == STRONGLY_TYPED:
        if not caps.strongly_typed:
            raise UsageError(
                f"TensorRT {version} has no strongly typed networks (they are used from TensorRT 10).",
                hint="Use --build-path auto or flags on this machine.")
        if precision not in available:
            raise _missing_artifact(precision, version)
    return path


def _plan_flags(version, caps, precision, available, requested_path, common, extra_flags, clear, warnings) -> BuildPlan:
    """A weakly typed network, precision from builder flags (TensorRT < 11)."""
    if not caps.precision_flags:
        raise UsageError(
            f"TensorRT {version} removed the precision builder flags (BuilderFlag.FP16/INT8 are gone since 11.0), "
            "so --build-path flags cannot be used here.",
            hint="Use --build-path auto (strongly typed, from the bundle's model.fp16.onnx / model.int8.onnx).")
    if caps.flags_deprecated and requested_path == FLAGS:
        warnings.append(f"builder precision flags are deprecated in TensorRT {version} (removed in 11.0)")
    net = ("EXPLICIT_BATCH",) if caps.explicit_batch_flag else ()
    if precision == "fp32":
        return BuildPlan(path=FLAGS, source="fp32", network_flags=net, builder_flags=extra_flags, clear_flags=clear,
                         warnings=tuple(warnings), **common)
    if precision == "fp16":
        return BuildPlan(path=FLAGS, source="fp32", network_flags=net, builder_flags=("FP16",) + extra_flags,
                         warnings=tuple(warnings), **common)
    # INT8 on the GPU always comes from the Q/DQ graph: the INT8 flag makes a weakly typed
    # network honour its Q/DQ scales (explicit quantization); no calibrator is involved. FP16
    # too: the graph's float regions are FP16 (docs/int8.md), and with INT8 alone a weakly
    # typed build may run every layer outside the Q/DQ pairs in FP32.
    if "int8" not in available:
        raise _missing_artifact("int8", version)
    return BuildPlan(path=FLAGS, source="int8", network_flags=net, builder_flags=("INT8", "FP16") + extra_flags,
                     warnings=tuple(warnings), **common)


def _plan_dla(version, caps, precision, available, requested_path, common, extra_flags, warnings) -> BuildPlan:
    if caps.dla == "none":
        why = ("NVIDIA's DLA documentation says 10.7 was the last TensorRT 10.x release with DLA"
               if version.major == 10 else "NVIDIA removed DLA in TensorRT 11.0 and it is absent up to 11.4.0")
        raise EdgeportError(
            f"TensorRT {version} has no DLA support: {why} (11.4.1 brings it back on Jetson AGX Orin with JetPack "
            "7.2.2 or later, strongly typed only).",
            hint="Build for the GPU (drop --dla-core), or build DLA engines with the TensorRT 10.x that JetPack 6 "
            "ships (10.3; DLA works up to 10.7).")
    if precision == "fp32":
        raise UsageError("DLA runs FP16 and INT8 only, so an fp32 engine cannot target --dla-core.",
                         hint="Use --precision fp16 or int8 with --dla-core, or drop --dla-core for FP32 on the GPU.")
    if caps.dla == "strongly-typed":
        if requested_path == FLAGS:
            raise UsageError(f"TensorRT {version} builds DLA engines only from strongly typed networks; "
                             "--build-path flags is not available.", hint="Use --build-path auto.")
        if precision not in available:
            raise _missing_artifact(precision, version)
        return BuildPlan(path=STRONGLY_TYPED, source=precision, optional_network_flags=("STRONGLY_TYPED",),
                         builder_flags=extra_flags, warnings=tuple(warnings), **common)
    # TensorRT <= 10: DLA takes precision from builder flags.
    if requested_path == STRONGLY_TYPED:
        raise UsageError(f"On TensorRT {version} edgeport builds DLA engines with builder flags (FP16) or implicit "
                         "INT8 calibration, not from strongly typed networks.", hint="Use --build-path auto.")
    if "fp32" not in available:
        raise _missing_artifact("fp32", version)
    net = ("EXPLICIT_BATCH",) if caps.explicit_batch_flag else ()
    if precision == "fp16":
        return BuildPlan(path=FLAGS, source="fp32", network_flags=net, builder_flags=("FP16",) + extra_flags,
                         warnings=tuple(warnings), **common)
    if caps.implicit_int8_deprecated:
        warnings.append(f"implicit INT8 calibration is deprecated in TensorRT {version} (removed in 11.0)")
    # FP16 too: layers without a calibration scale run in FP16 on DLA (it has no FP32).
    return BuildPlan(path=DLA_IMPLICIT, source="fp32", network_flags=net,
                     builder_flags=("INT8", "FP16") + extra_flags, calibration_cache=True,
                     warnings=tuple(warnings), **common)


def _missing_artifact(precision: str, version: TrtVersion, product: str = "TensorRT") -> BundleError:
    option = _REGISTRY[precision].export_flag
    graph = _REGISTRY[precision].artifact
    what = f"Re-export it with `edgeport export ... {option}`." if option else "Re-export the bundle."
    if precision == "fp16" and product == "TensorRT" and capabilities(version).precision_flags:
        what += f" (On TensorRT {version}, --build-path flags builds FP16 from the FP32 graph instead.)"
    return BundleError(f"The bundle has no {precision} graph ({graph}), which a {precision} engine is built from "
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


def engine_filename(precision: str, compute_capability: str, version: TrtVersion | str, *,
                    dla_core: int | None = None, hardware_compat: str = "none",
                    version_compatible: bool = False) -> str:
    """``model.<precision>[.dla<N>][.ampere_plus][.vc].sm<CC>.trt<version>.engine``.

    The tags keep GPU, DLA and compatibility builds of one precision apart; sm/trt name
    the device and TensorRT that built it (the sidecar has the details).
    """
    if isinstance(version, str):
        version = TrtVersion.parse(version)
    tags = [precision]
    if dla_core is not None:
        tags.append(f"dla{dla_core}")
    if hardware_compat == "ampere+":
        tags.append("ampere_plus")
    if version_compatible:
        tags.append("vc")
    return f"model.{'.'.join(tags)}.{cc_tag(compute_capability)}.trt{version.short}.engine"


def sidecar_name(engine_name: str) -> str:
    return engine_name + ".json"


# -- TensorRT-RTX: a separate product line --------------------------------------------------------
# NVIDIA's TensorRT for RTX GPUs (module tensorrt_rtx, versions 1.x). Facts (NVIDIA's TensorRT-RTX
# docs, and measured with tensorrt-rtx-cu12 1.7.1.116 on a CPU-only machine; docs/tensorrt.md):
# - builds ahead of time without a GPU ("CPU-only AOT"), for a set of target compute
#   capabilities; the engine is specialized (JIT) on the user's GPU when it loads, and a runtime
#   cache keeps those compiled kernels between runs;
# - only strongly typed networks (STRONGLY_TYPED is its one network flag): precision comes from
#   the ONNX graph, INT8 only from Q/DQ; no FP16/INT8 builder flags, no calibrators, no DLA;
# - hardware compatibility levels are ignored ("setHardwareCompatibilityLevel() is unsupported in
#   TensorRT-RTX"), and VERSION_COMPATIBLE builds fail (the lean runtime library is not shipped);
# - a timing cache only holds GPU timings, and an AOT build times nothing; reading a serialized
#   cache back needs a GPU (cudaError 35 without one), so RTX builds use none.
TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt-rtx"
RUNTIMES = (TENSORRT, TENSORRT_RTX)
PRODUCT_NAMES = {TENSORRT: "TensorRT", TENSORRT_RTX: "TensorRT-RTX"}
# Target compute capability -> ComputeCapability member (no 9.0: Hopper is not an RTX target).
RTX_COMPUTE_CAPABILITIES = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120",
                            "12.1": "SM121"}
# What the library targets when none is set (num_compute_capabilities 0), per NVIDIA's
# "CPU-Only AOT and TensorRT-RTX Engines": 8.0, 8.6, 8.9 and 12.0 (Turing needs 7.5 set).
RTX_DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")


def product_name(runtime: str) -> str:
    """'TensorRT' or 'TensorRT-RTX' (for messages)."""
    return PRODUCT_NAMES.get(runtime, runtime)


def rtx_capabilities(version: TrtVersion) -> Capabilities:
    """The feature set of TensorRT-RTX ``version`` (1.x; its own numbering, not TensorRT's)."""
    return Capabilities(
        supported=version.major >= 1, strongly_typed=True, precision_flags=False, flags_deprecated=False,
        implicit_int8=False, implicit_int8_deprecated=False, explicit_batch_flag=False, dla="none",
        runtime=TENSORRT_RTX, gpu_to_build=False, compute_capability_targets=True, runtime_cache=True,
        timing_cache=False, hardware_compat=False, version_compatible=False,
    )


def runtime_capabilities(runtime: str, version: TrtVersion) -> Capabilities:
    """Capabilities of ``version`` of the product line ``runtime`` (tensorrt or tensorrt-rtx)."""
    if runtime not in RUNTIMES:
        raise UsageError(f"Unknown runtime '{runtime}'; choose {' or '.join(RUNTIMES)}.")
    return rtx_capabilities(version) if runtime == TENSORRT_RTX else capabilities(version)


def parse_compute_capabilities(values) -> tuple[str, ...]:
    """``--compute-capability`` values (repeatable, comma lists; 8.6, 86 or sm86) -> sorted targets."""
    found = []
    for value in values or ():
        for item in str(value).split(","):
            item = item.strip().lower().removeprefix("sm_").removeprefix("sm")
            if not item:
                continue
            cc = item if "." in item else (f"{item[:-1]}.{item[-1]}" if item.isdigit() and len(item) >= 2 else item)
            if cc not in RTX_COMPUTE_CAPABILITIES:
                raise UsageError(
                    f"--compute-capability {value}: {item} is not a TensorRT-RTX target; it builds for "
                    f"{', '.join(RTX_COMPUTE_CAPABILITIES)} (Turing, Ampere, Ada, Blackwell RTX GPUs; no 9.0 Hopper).",
                    hint="Pass e.g. --compute-capability 8.6,8.9 (or sm86); omit it for the library's default "
                         f"targets ({', '.join(RTX_DEFAULT_TARGETS)}).")
            found.append(cc)
    return tuple(sorted(set(found), key=cc_tuple))


def plan_rtx_build(
    version: TrtVersion,
    precision: str,
    available,
    *,
    compute_capabilities: tuple[str, ...] = (),
    requested_path: str = "auto",
    dla_core: int | None = None,
    gpu_fallback: bool = False,
    hardware_compat: str = "none",
    version_compatible: bool = False,
) -> BuildPlan:
    """The TensorRT-RTX build of one precision: strongly typed, from that precision's graph.

    The options TensorRT-RTX does not have are refused with the reason, rather than ignored.
    """
    caps = rtx_capabilities(version)
    if not caps.supported:
        raise DependencyError(f"TensorRT-RTX {version} is not a TensorRT-RTX release edgeport knows (1.x).")
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    if dla_core is not None or gpu_fallback:
        raise UsageError("TensorRT-RTX has no DLA (it targets RTX GPUs), so --dla-core and --gpu-fallback do not apply.",
                         hint="Drop them, or build with --runtime tensorrt on the Jetson.")
    if hardware_compat != "none":
        raise UsageError("TensorRT-RTX has no hardware compatibility levels (it reports setHardwareCompatibilityLevel() "
                         "as unsupported): its engines run on every GPU of their target compute capabilities.",
                         hint="Drop --hardware-compat and list the targets with --compute-capability.")
    if version_compatible:
        raise UsageError("TensorRT-RTX cannot build version-compatible engines (the build needs TensorRT's lean "
                         "runtime library, which TensorRT-RTX does not ship).",
                         hint="Drop --version-compatible; rebuild the engines when TensorRT-RTX is upgraded.")
    if requested_path == FLAGS:
        raise UsageError("TensorRT-RTX has no precision builder flags: its networks are strongly typed, so "
                         "--build-path flags does not apply.", hint="Use --build-path auto.")
    if requested_path not in ("auto", STRONGLY_TYPED):
        raise UsageError(f"Unknown build path '{requested_path}'; choose auto or {STRONGLY_TYPED}.")
    if precision not in set(available):
        raise _missing_artifact(precision, version, "TensorRT-RTX")
    targets = parse_compute_capabilities(compute_capabilities)
    return BuildPlan(precision=precision, path=STRONGLY_TYPED, source=precision,
                     optional_network_flags=("STRONGLY_TYPED",), clear_flags=("TF32",) if precision == "fp32" else (),
                     runtime=TENSORRT_RTX, compute_capabilities=targets)


def rtx_engine_filename(precision: str, version: TrtVersion | str, compute_capabilities: tuple[str, ...] = ()) -> str:
    """``model.<precision>[.sm75_sm86].rtx<version>.engine``: no sm tag for the library's default targets.

    ``rtx`` where TensorRT engines say ``trt<version>``, so the two never collide in a bundle.
    """
    if isinstance(version, str):
        version = TrtVersion.parse(version)
    tags = [precision]
    if compute_capabilities:
        tags.append("_".join(cc_tag(cc) for cc in compute_capabilities))
    return f"model.{'.'.join(tags)}.rtx{version.short}.engine"
