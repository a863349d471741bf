"""TensorRT-RTX: NVIDIA's TensorRT for RTX GPUs, a separate product line (module tensorrt_rtx, 1.x).

The ``TensorRTRX`` object at the end is this runtime's entry in the engine-runtime registry
(runtime/engines/registry.py); importing the library, its own engine-validity check and the
JIT runtime cache are in runtime/engines/rtx.py.

Facts (NVIDIA's TensorRT-RTX docs, and measured with tensorrt-rtx-cu12 1.7.1.116 on a CPU-only
machine; docs/tensorrt.md):
- builds ahead of time without a GPU ("CPU-only AOT"), for a set of target compute
  capabilities; the engine is specialized (JIT) on the user's GPU when it loads, and a runtime
  cache keeps those compiled kernels between runs;
- only strongly typed networks (STRONGLY_TYPED is its one network flag): precision comes from
  the ONNX graph, INT8 only from Q/DQ; no FP16/INT8 builder flags, no calibrators, no DLA;
- hardware compatibility levels are ignored ("setHardwareCompatibilityLevel() is unsupported in
  TensorRT-RTX"), and VERSION_COMPATIBLE builds fail (the lean runtime library is not shipped);
- a timing cache only holds GPU timings, and an AOT build times nothing; reading a serialized
  cache back needs a GPU (cudaError 35 without one), so RTX builds use none;
- engines load only on the release that built them, on a GPU of one of their targets.
"""

from __future__ import annotations

from runtime.engines.policy import (
    FLAGS, PRECISIONS, STRONGLY_TYPED, BuildPlan, Capabilities, TrtVersion, cc_tag, cc_tuple, missing_artifact)
from runtime.errors import DependencyError, UsageError

NAME = "tensorrt-rtx"
PRODUCT = "TensorRT-RTX"
# Target compute capabilities (ComputeCapability.SM75 ...; no 9.0: Hopper is not an RTX target).
COMPUTE_CAPABILITIES = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")
# What the library targets when none is set (num_compute_capabilities 0), per NVIDIA's
# "CPU-Only AOT and TensorRT-RTX Engines": 8.0, 8.6, 8.9 and 12.0 (Turing needs 7.5 set).
DEFAULT_TARGETS = ("8.0", "8.6", "8.9", "12.0")


def capabilities(version: TrtVersion) -> Capabilities:
    """The feature set of TensorRT-RTX ``version`` (1.x; its own numbering, not TensorRT's)."""
    return Capabilities(
        supported=version.major >= 1, strongly_typed=True, precision_flags=False, flags_deprecated=False,
        implicit_int8=False, implicit_int8_deprecated=False, explicit_batch_flag=False, dla="none",
        runtime=NAME, gpu_to_build=False, compute_capability_targets=True, runtime_cache=True,
        timing_cache=False, hardware_compat=False, version_compatible=False,
    )


def parse_compute_capabilities(values) -> tuple[str, ...]:
    """``--compute-capability`` values (repeatable, comma lists; 8.6, 86 or sm86) -> sorted targets."""
    found = []
    for value in values or ():
        for item in str(value).split(","):
            item = item.strip().lower().removeprefix("sm_").removeprefix("sm")
            if not item:
                continue
            cc = item if "." in item else (f"{item[:-1]}.{item[-1]}" if item.isdigit() and len(item) >= 2 else item)
            if cc not in COMPUTE_CAPABILITIES:
                raise UsageError(
                    f"--compute-capability {value}: {item} is not a TensorRT-RTX target; it builds for "
                    f"{', '.join(COMPUTE_CAPABILITIES)} (Turing, Ampere, Ada, Blackwell RTX GPUs; no 9.0 Hopper).",
                    hint="Pass e.g. --compute-capability 8.6,8.9 (or sm86); omit it for the library's default "
                         f"targets ({', '.join(DEFAULT_TARGETS)}).")
            found.append(cc)
    return tuple(sorted(set(found), key=cc_tuple))


def plan_build(
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
    caps = capabilities(version)
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
        raise missing_artifact(precision, version, PRODUCT)
    targets = parse_compute_capabilities(compute_capabilities)
    return BuildPlan(precision=precision, path=STRONGLY_TYPED, source=precision,
                     optional_network_flags=("STRONGLY_TYPED",), clear_flags=("TF32",) if precision == "fp32" else (),
                     runtime=NAME, compute_capabilities=targets)


def engine_filename(precision: str, version: TrtVersion | str, compute_capabilities: tuple[str, ...] = ()) -> str:
    """``model.<precision>[.sm75_sm86].rtx<version>.engine``: no sm tag for the library's default targets.

    ``rtx`` where TensorRT engines say ``trt<version>``, so the two never collide in a bundle.
    """
    if isinstance(version, str):
        version = TrtVersion.parse(version)
    tags = [precision]
    if compute_capabilities:
        tags.append("_".join(cc_tag(cc) for cc in compute_capabilities))
    return f"model.{'.'.join(tags)}.rtx{version.short}.engine"


# -- the engine runtime ----------------------------------------------------------------------------
def _prepare(bundle, options, *, trt=None, env=None, log=lambda s: None, rerun=None):
    """An ahead-of-time build on this machine's CPU, for target compute capabilities (a build.BuildTarget)."""
    from runtime.engines import policy
    from runtime.engines.target import BuildTarget, batch_profile, precisions_to_build
    from runtime.engines.rtx import import_tensorrt_rtx
    from runtime.engines.turing import turing_refusal, with_turing_rewrite

    if options.timing_cache is not None:
        raise UsageError("--timing-cache does not apply to TensorRT-RTX: its ahead-of-time build times no kernels "
                         "(they are chosen on the user's GPU, and kept in the runtime cache).",
                         hint="Drop --timing-cache; use --runtime-cache PATH for the JIT cache.")
    targets = parse_compute_capabilities(options.compute_capabilities)
    if trt is None:
        trt = import_tensorrt_rtx(f"edgeport build --runtime {NAME}", rerun=rerun)
    version = TrtVersion.parse(trt.__version__)
    plans = [plan_build(
        version, p, bundle.precisions, compute_capabilities=targets, requested_path=options.build_path,
        dla_core=options.dla_core, gpu_fallback=options.gpu_fallback, hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible)
        for p in precisions_to_build(options.precisions, bundle.precisions, False, log)]
    refusal = turing_refusal(bundle, plans, targets)
    if refusal is not None:
        raise UsageError(refusal[0], hint=refusal[1])
    plans = [with_turing_rewrite(bundle, plan, targets, log) for plan in plans]
    profile, shapes = batch_profile(bundle, options, False)
    if options.workspace_mib is not None:
        policy.validate_workspace(options.workspace_mib, None)
    workspace = options.workspace_mib or policy.default_workspace_mib(None, False)
    runtime_cache = {"enabled": not options.no_runtime_cache,
                     "path": str(options.runtime_cache) if options.runtime_cache else None}
    aim = (f"compute capabilities {', '.join(targets)}" if targets else
           f"the library's default targets ({', '.join(DEFAULT_TARGETS)} per NVIDIA)")
    log(f"TensorRT-RTX {version}, ahead of time (no GPU needed) for {aim}; batch profile "
        f"{profile.min}/{profile.opt}/{profile.max}, workspace {workspace} MiB, runtime cache "
        f"{'off' if options.no_runtime_cache else (options.runtime_cache or 'default on the target')}")
    return BuildTarget(trt=trt, runtime=NAME, version=version, plans=plans, profile=profile, shapes=shapes,
                       workspace_mib=workspace, runtime_cache=runtime_cache,
                       workspace_ceiling_mib=None if options.workspace_mib is not None else
                       policy.workspace_ceiling_mib(None, False))


def _here(env) -> str:
    return f"compute capability {env.gpu.compute_capability} ({env.gpu.name})"


def _gpu_problems(sidecar, env) -> list[str]:
    here = cc_tuple(env.gpu.compute_capability)
    if sidecar.compute_capabilities:
        if here not in {cc_tuple(cc) for cc in sidecar.compute_capabilities}:
            return [f"it was built for compute capabilities {', '.join(sidecar.compute_capabilities)}, and this GPU "
                    f"has {_here(env)}"]
    elif here < (8, 0):
        defaults = ", ".join(sidecar.default_compute_capabilities or DEFAULT_TARGETS)
        return [f"it was built for TensorRT-RTX's default targets ({defaults}), which leave out {_here(env)} "
                f"(rebuild with --compute-capability {env.gpu.compute_capability})"]
    return []


class TensorRTRX:
    """NVIDIA TensorRT for RTX GPUs: built ahead of time on any x86_64 machine, compiled (JIT) on the GPU."""

    name = NAME
    product = PRODUCT
    help = ("TensorRT for RTX GPUs, built ahead of time on any x86_64 machine, no GPU needed "
            "(pip install 'edgeport[rtx]')")
    backend_help = f"the engines `edgeport build --runtime {NAME}` made (on an RTX-class GPU)"
    distributions = ("tensorrt-rtx-cu12-bindings",)
    default_targets = DEFAULT_TARGETS
    records_layers = True  # it logs its engines' layer information, also in a CPU-only build
    run_where = " (on a machine with an RTX-class GPU)"
    # Lines a GPU-less machine adds to its messages (CUDA probes that an AOT build does not need);
    # they would only bury the parser's or builder's real error.
    builder_noise = ("cudaError 35", "Thread context has not been set")
    parse_hint = ""
    # An ahead-of-time build runs on this machine's CPU for RTX GPUs: no Jetson, no GPU memory.
    build_failure_hint = ""

    def capabilities(self, version: TrtVersion) -> Capabilities:
        return capabilities(version)

    def import_library(self, purpose: str, rerun: str | None = None):
        from runtime.engines.rtx import import_tensorrt_rtx

        return import_tensorrt_rtx(purpose, rerun=rerun)

    def probe_env(self, *, dla: bool = False):
        from runtime.engines.device import probe_env

        return probe_env(self.import_library("Running TensorRT-RTX engines"))

    def prepare(self, bundle, options, *, trt=None, env=None, log=lambda s: None, rerun=None):
        return _prepare(bundle, options, trt=trt, env=env, log=log, rerun=rerun)

    def engine_filename(self, plan: BuildPlan, target) -> str:
        return engine_filename(plan.precision, target.version, plan.compute_capabilities)

    def version_problems(self, sidecar, here: str) -> list[str]:
        if TrtVersion.parse(sidecar.version).same_release(TrtVersion.parse(here)):
            return []
        return [f"TensorRT-RTX {sidecar.version} built it, this machine has TensorRT-RTX {here} (TensorRT-RTX "
                "engines load only on the release that built them)"]

    def gpu_problems(self, sidecar, env) -> list[str]:
        return _gpu_problems(sidecar, env)

    def compatibility_notes(self, sidecar, env) -> list[str]:
        defaults = sidecar.default_compute_capabilities or DEFAULT_TARGETS
        if env.gpu and not sidecar.compute_capabilities and env.gpu.compute_capability not in defaults:
            return [f"compute capability {env.gpu.compute_capability} is not among the default targets NVIDIA "
                    f"documents ({', '.join(defaults)}); TensorRT-RTX's own validity check decides"]
        return []

    def portability(self, sidecar) -> int:
        """An engine for the library's default targets is the portable one; named targets are exact."""
        return int(not sidecar.compute_capabilities)

    def runner_class(self) -> type:
        from runtime.runners.tensorrt_rtx import TensorRTRXRunner

        return TensorRTRXRunner
