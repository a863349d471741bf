"""TensorRT: its capabilities per release, its build plans, its engine names and compatibility.

The ``TensorRT`` object at the end is this runtime's entry in the engine-runtime registry
(runtime/engines/registry.py). Nothing here imports tensorrt at module level.

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
- Engines load only on the TensorRT release and compute capability that built them, unless
  built version-compatible (later releases of the same major, plus NVIDIA's documented
  cross-major pairs) or hardware-compatible (ampere+: any GPU of compute capability >= 8.0).
"""

from __future__ import annotations

from pathlib import Path

from runtime.engines.policy import (
    DLA_IMPLICIT, FLAGS, HARDWARE_COMPAT, PRECISIONS, STRONGLY_TYPED, BuildPlan, Capabilities, TrtVersion, cc_tag,
    cc_tuple, missing_artifact)
from runtime.errors import BundleError, DependencyError, EdgeportError, UsageError

NAME = "tensorrt"
PRODUCT = "TensorRT"
# Cross-major pairs NVIDIA documents for version-compatible engines (built major -> runtime major).
VC_CROSS_MAJOR = {(8, 9), (8, 10), (9, 10), (10, 11)}


# -- capabilities and build plans -------------------------------------------------------------
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
        runtime=NAME,
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
    common = dict(precision=precision, runtime=NAME, dla_core=dla_core, gpu_fallback=gpu_fallback,
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
            raise _missing(precision, version)
    if path == STRONGLY_TYPED:
        if not caps.strongly_typed:
            raise UsageError(
                f"TensorRT {version} has no strongly typed networks (they are used from TensorRT 10).",
                hint="Use --build-path auto or flags on this machine.")
        if precision not in available:
            raise _missing(precision, version)
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
        raise _missing("int8", version)
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
            raise _missing(precision, version)
        return BuildPlan(path=STRONGLY_TYPED, source=precision, optional_network_flags=("STRONGLY_TYPED",),
                         builder_flags=extra_flags, warnings=tuple(warnings), **common)
    # TensorRT <= 10: DLA takes precision from builder flags.
    if requested_path == STRONGLY_TYPED:
        raise UsageError(f"On TensorRT {version} edgeport builds DLA engines with builder flags (FP16) or implicit "
                         "INT8 calibration, not from strongly typed networks.", hint="Use --build-path auto.")
    if "fp32" not in available:
        raise _missing("fp32", version)
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



def _missing(precision: str, version: TrtVersion) -> BundleError:
    also = ""
    if precision == "fp16" and capabilities(version).precision_flags:
        also = f"On TensorRT {version}, --build-path flags builds FP16 from the FP32 graph instead."
    return missing_artifact(precision, version, PRODUCT, also)


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


# -- the engine runtime ----------------------------------------------------------------------------
def _version_problems(sidecar, here: str) -> list[str]:
    built = sidecar.version
    b, h = TrtVersion.parse(built), TrtVersion.parse(here)
    if sidecar.version_compatible:
        cross_ok = b.major == h.major or (b.major, h.major) in VC_CROSS_MAJOR
        if (h.major, h.minor, h.patch) < (b.major, b.minor, b.patch) or not cross_ok:
            return [f"it is a version-compatible engine from TensorRT {built}, which runs on TensorRT {b.short} or "
                    f"newer of the same major (or NVIDIA's documented next major), not on TensorRT {here} here"]
        return []
    if b.same_release(h):
        return []
    return [f"TensorRT {built} built it, this machine has TensorRT {here} (engines only load "
            "on the exact TensorRT version that built them unless built with --version-compatible)"]


def _gpu_problems(sidecar, env) -> list[str]:
    built = sidecar.gpu
    if built is None or not built.compute_capability:
        return ["the sidecar does not record the GPU's compute capability"]
    here_cc, built_cc = cc_tuple(env.gpu.compute_capability), cc_tuple(built.compute_capability)
    here = f"compute capability {env.gpu.compute_capability} ({env.gpu.name})"
    if sidecar.hardware_compat == "ampere+" and sidecar.dla_core is None:
        if here_cc < (8, 0):
            return [f"it is an ampere+ hardware-compatible engine, which needs compute capability >= 8.0, "
                    f"and this GPU has {here}"]
    elif here_cc != built_cc:
        return [f"it was built for compute capability {built.compute_capability} ({built.name or '?'}), "
                f"and this GPU has {here}"]
    return []


def _notes(sidecar, env) -> list[str]:
    notes = []
    built_gpu = sidecar.gpu
    if env.gpu and built_gpu and built_gpu.name and built_gpu.name != env.gpu.name \
            and sidecar.hardware_compat != "ampere+":
        notes.append(f"built on {built_gpu.name}, running on {env.gpu.name} (same compute capability; NVIDIA "
                     "advises rebuilding per GPU model for best performance)")
    built_cuda = sidecar.cuda.get("runtime")
    if built_cuda and env.cuda_runtime and built_cuda.split(".")[0] != env.cuda_runtime.split(".")[0]:
        notes.append(f"built with CUDA {built_cuda}, this machine has CUDA {env.cuda_runtime}")
    return notes


def _prepare(bundle, options, *, trt=None, env=None, log=lambda s: None, rerun=None):
    """The GPU here is the target: plans per version, profile, workspace, caches (a build.BuildTarget)."""
    from runtime.engines import device, policy
    from runtime.engines import timing_cache as tc
    from runtime.engines.target import BuildTarget, batch_profile, calibration_for, precisions_to_build

    if options.compute_capabilities or options.runtime_cache or options.no_runtime_cache:
        raise UsageError("--compute-capability and --runtime-cache are TensorRT-RTX options; TensorRT builds for the "
                         "GPU it runs on.", hint="Add --runtime tensorrt-rtx, or drop them.")
    dla = options.dla_core is not None
    # The batch options are checked against the bundle first: a bad --max-batch is a usage error
    # here, not a command suggested after "TensorRT is missing" that the device would refuse.
    profile, shapes = batch_profile(bundle, options, dla)
    if trt is None:
        trt = device.import_tensorrt("edgeport build", rerun=rerun)
    version = TrtVersion.parse(trt.__version__)
    caps = require_supported(version)
    if dla and caps.dla == "none":
        # Say so before probing anything: TensorRT 11.0-11.4.0 has no DLA at all.
        plan_build(version, "fp16", {"fp32", "fp16"}, dla_core=options.dla_core)
    if env is None:
        env = device.probe_env(trt, dla=dla)
    gpu = device.require_gpu(env, "edgeport build")
    plans = [plan_build(
        version, p, bundle.precisions, requested_path=options.build_path, dla_core=options.dla_core,
        gpu_fallback=options.gpu_fallback, hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible, compute_capability=gpu.compute_capability)
        for p in precisions_to_build(options.precisions, bundle.precisions, dla, log)]
    if options.workspace_mib is not None:
        policy.validate_workspace(options.workspace_mib, gpu.total_memory)
        workspace = options.workspace_mib
    else:
        workspace = policy.default_workspace_mib(gpu.total_memory, env.jetson)
    cache_path = None
    if not options.no_timing_cache:
        cache_path = Path(options.timing_cache) if options.timing_cache else tc.default_path(
            str(version), gpu.name, gpu.compute_capability)
    log(f"TensorRT {version} on {gpu.name} (compute capability {gpu.compute_capability}"
        f"{', Jetson' if env.jetson else ''}); batch profile {profile.min}/{profile.opt}/{profile.max}, "
        f"workspace {workspace} MiB, timing cache {cache_path or 'off'}")
    return BuildTarget(trt=trt, runtime=NAME, version=version, plans=plans, profile=profile, shapes=shapes,
                       workspace_mib=workspace, env=env, gpu=gpu, timing_cache=cache_path,
                       workspace_ceiling_mib=None if options.workspace_mib is not None else
                       policy.workspace_ceiling_mib(gpu.total_memory, env.jetson),
                       calibration=calibration_for(bundle, plans, version, log))


class TensorRT:
    """NVIDIA TensorRT: engines built on (and for) the GPU that runs them, Jetson included."""

    name = NAME
    product = PRODUCT
    help = "for the GPU of this machine (Jetson, server)"
    backend_help = "the engines `edgeport build` made on this machine"
    distributions = ("tensorrt",)
    default_targets: tuple[str, ...] = ()
    records_layers = False
    run_where = ""
    builder_noise: tuple[str, ...] = ()
    parse_hint = ("Also check that the bundle's opset is one this TensorRT parses (8.6 parses up to opset 17; "
                  "`edgeport export --opset 17`).")
    # The build runs on the target's own GPU, a Jetson's shared memory included.
    build_failure_hint = ("On a Jetson, out-of-memory builds end like this: lower --workspace or --max-batch, close "
                          "other GPU programs, or add swap.")

    def capabilities(self, version: TrtVersion) -> Capabilities:
        return capabilities(version)

    def import_library(self, purpose: str, rerun: str | None = None):
        from runtime.engines.device import import_tensorrt

        return import_tensorrt(purpose, rerun=rerun)

    def probe_env(self, *, dla: bool = False):
        from runtime.engines.device import probe_env

        return probe_env(self.import_library("Running TensorRT engines"), dla=dla)

    def prepare(self, bundle, options, *, trt=None, env=None, log=lambda s: None, rerun=None):
        return _prepare(bundle, options, trt=trt, env=env, log=log, rerun=rerun)

    def engine_filename(self, plan: BuildPlan, target) -> str:
        return engine_filename(plan.precision, target.gpu.compute_capability, target.version, dla_core=plan.dla_core,
                               hardware_compat=plan.hardware_compat, version_compatible=plan.version_compatible)

    def version_problems(self, sidecar, here: str) -> list[str]:
        return _version_problems(sidecar, here)

    def gpu_problems(self, sidecar, env) -> list[str]:
        return _gpu_problems(sidecar, env)

    def compatibility_notes(self, sidecar, env) -> list[str]:
        return _notes(sidecar, env)

    def portability(self, sidecar) -> int:
        """How many portability options the engine was built with (exact builds are fastest)."""
        return (sidecar.hardware_compat not in (None, "none")) + bool(sidecar.version_compatible)

    def runner_class(self) -> type:
        from runtime.runners.tensorrt import TensorRTRunner

        return TensorRTRunner
