"""``edgeport build``: TensorRT or TensorRT-RTX engines for a bundle.

TensorRT engines are built on the machine that will run them; TensorRT-RTX engines on any
x86_64 machine, GPU or not (ahead of time, for target compute capabilities). For each
requested precision: choose the build (policy.plan_build / plan_rtx_build), compute the batch
profile and workspace, reuse the timing cache (TensorRT), build (builder.build_serialized,
the same code for both), then write the engine and its sidecar into the bundle
(sidecar.write_engine). Also the ``--engine`` step of ``edgeport export``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Callable

from runtime.errors import DependencyError, EdgeportError, UsageError
from runtime.engines import policy
from runtime.engines.policy import TENSORRT, TENSORRT_RTX, BuildPlan, Profile, TrtVersion
from runtime.engines.sidecar import EngineSidecar


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Options of ``edgeport build`` (None = the default described in --help)."""

    precisions: tuple[str, ...] = ("all",)
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    workspace_mib: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    timing_cache: Path | None = None
    no_timing_cache: bool = False
    builder_level: int | None = None
    hardware_compat: str = "none"
    version_compatible: bool = False
    build_path: str = "auto"
    runtime: str = TENSORRT  # or tensorrt-rtx
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets (raw --compute-capability values)
    runtime_cache: Path | None = None  # TensorRT-RTX: the JIT cache file the engine uses on the target
    no_runtime_cache: bool = False
    # For readers of the library's own log (e.g. the layer information of a DETAILED build):
    log_severity: str | None = None  # keep messages down to this severity in BuiltEngine.log ("VERBOSE")
    profiling_verbosity: str | None = None  # ProfilingVerbosity member name, e.g. "DETAILED"


@dataclasses.dataclass
class BuiltEngine:
    precision: str
    path: Path
    sidecar: EngineSidecar
    seconds: float
    warnings: list[str]
    log: list[str] = dataclasses.field(default_factory=list)  # the library's messages (BuildOptions.log_severity)


@dataclasses.dataclass
class BuildTarget:
    """What every engine of one ``edgeport build`` shares: the library, the machine, the profile."""

    trt: object  # the tensorrt / TensorRT-RTX module
    runtime: str
    version: TrtVersion
    plans: list[BuildPlan]
    profile: Profile
    shapes: tuple
    workspace_mib: int
    env: object | None = None  # device.TargetEnv (None for TensorRT-RTX AOT builds: no GPU involved)
    gpu: object | None = None  # device.GpuInfo of the build GPU (TensorRT)
    timing_cache: Path | None = None
    calibration: tuple = (None, "IInt8EntropyCalibrator2", None)  # (bytes, calibrator class, path)
    runtime_cache: dict | None = None  # TensorRT-RTX: {"enabled", "path"}


def precisions_to_build(requested: tuple[str, ...], available: list[str], dla: bool,
                      log: Callable[[str], None] = lambda s: None) -> list[str]:
    """Expand ``all`` into the bundle's precisions (without fp32 on DLA, which has no FP32)."""
    if not requested or "all" in requested:
        chosen = [p for p in policy.PRECISIONS if p in available]
        if dla and "fp32" in chosen:
            chosen.remove("fp32")
            log("skipping fp32 for --dla-core: DLA runs FP16 and INT8 only")
        if not chosen:
            raise UsageError("Nothing to build: the bundle has no artifact this target can run "
                             f"(it has {', '.join(available) or 'none'}).")
        return chosen
    return list(dict.fromkeys(requested))


def build_engines(bundle, options: BuildOptions, *, trt=None, env=None,
                  log: Callable[[str], None] = lambda s: None,
                  warn: Callable[[str], None] = lambda s: None) -> list[BuiltEngine]:
    """Build one engine per selected precision into the bundle; returns what was built.

    ``trt`` (the tensorrt or TensorRT-RTX module) and ``env`` (device.TargetEnv) are probed
    when None; tests pass fakes (or NVIDIA's real TensorRT-RTX). Every option and plan is
    checked before the first (minutes-long) build, so a bad option fails fast.
    """
    if options.runtime == TENSORRT_RTX:
        target = prepare_rtx(bundle, options, trt=trt, log=log)
        if options.log_severity is None and options.profiling_verbosity is None:
            # TensorRT-RTX logs its engines' layer information (also in a CPU-only build): record it.
            options = dataclasses.replace(options, log_severity="VERBOSE", profiling_verbosity="DETAILED")
    elif options.runtime == TENSORRT:
        target = prepare_tensorrt(bundle, options, trt=trt, env=env, log=log)
    else:
        raise UsageError(f"Unknown runtime '{options.runtime}'; choose {' or '.join(policy.RUNTIMES)}.")
    built = [_build_one(bundle, options, target, plan, log, warn) for plan in target.plans]
    _record_composition(bundle, built, log)
    return built


def _record_composition(bundle, built: list[BuiltEngine], log) -> None:
    """report.json/.md/.html ``engines``: what each engine is made of, when its build logged it."""
    from runtime.report.engines import engine_entry
    from runtime.report.summary import record_engines

    entries = {b.path.name: engine_entry(b.precision, b.sidecar.runtime, str(b.sidecar.version), b.sidecar.layers,
                                         built_at=b.sidecar.built_at)
               for b in built if b.sidecar.layers}
    if entries and record_engines(bundle, entries):
        log(f"engine composition of {len(entries)} engine(s) recorded in {bundle.report_path('json').name}")


def prepare_tensorrt(bundle, options: BuildOptions, *, trt=None, env=None, log=lambda s: None) -> BuildTarget:
    """TensorRT: the GPU here is the target; plans per version, profile, workspace, caches."""
    from runtime.engines import device
    from runtime.engines import timing_cache as tc

    if options.compute_capabilities or options.runtime_cache or options.no_runtime_cache:
        raise UsageError("--compute-capability and --runtime-cache are TensorRT-RTX options; TensorRT builds for the "
                         "GPU it runs on.", hint="Add --runtime tensorrt-rtx, or drop them.")
    dla = options.dla_core is not None
    # The batch options are checked against the bundle first: a bad --max-batch is a usage error
    # here, not a command suggested after "TensorRT is missing" that the device would refuse.
    profile, shapes = _profile(bundle, options, dla)
    if trt is None:
        trt = device.import_tensorrt("edgeport build", rerun=_command_line(bundle, options))
    version = TrtVersion.parse(trt.__version__)
    caps = policy.require_supported(version)
    if options.dla_core is not None and caps.dla == "none":
        # Say so before probing anything: TensorRT 11.0-11.4.0 has no DLA at all.
        policy.plan_build(version, "fp16", {"fp32", "fp16"}, dla_core=options.dla_core)
    if env is None:
        env = device.probe_env(trt, dla=options.dla_core is not None)
    gpu = device.require_gpu(env, "edgeport build")
    plans = [policy.plan_build(
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
    return BuildTarget(trt=trt, runtime=TENSORRT, version=version, plans=plans, profile=profile, shapes=shapes,
                       workspace_mib=workspace, env=env, gpu=gpu, timing_cache=cache_path,
                       calibration=_calibration(bundle, plans, version, log))


def prepare_rtx(bundle, options: BuildOptions, *, trt=None, log=lambda s: None) -> BuildTarget:
    """TensorRT-RTX: an ahead-of-time build on this machine's CPU, for target compute capabilities."""
    from runtime.engines.rtx import import_tensorrt_rtx

    if options.timing_cache is not None:
        raise UsageError("--timing-cache does not apply to TensorRT-RTX: its ahead-of-time build times no kernels "
                         "(they are chosen on the user's GPU, and kept in the runtime cache).",
                         hint="Drop --timing-cache; use --runtime-cache PATH for the JIT cache.")
    if options.runtime_cache is not None and options.no_runtime_cache:
        raise UsageError("--runtime-cache and --no-runtime-cache contradict each other; pass one.")
    targets = policy.parse_compute_capabilities(options.compute_capabilities)
    if trt is None:
        trt = import_tensorrt_rtx("edgeport build --runtime tensorrt-rtx", rerun=_command_line(bundle, options))
    version = TrtVersion.parse(trt.__version__)
    plans = [policy.plan_rtx_build(
        version, p, bundle.precisions, compute_capabilities=targets, requested_path=options.build_path,
        dla_core=options.dla_core, gpu_fallback=options.gpu_fallback, hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible)
        for p in precisions_to_build(options.precisions, bundle.precisions, False, log)]
    profile, shapes = _profile(bundle, options, False)
    if options.workspace_mib is not None:
        policy.validate_workspace(options.workspace_mib, None)
    workspace = options.workspace_mib or policy.default_workspace_mib(None, False)
    runtime_cache = {"enabled": not options.no_runtime_cache,
                     "path": str(options.runtime_cache) if options.runtime_cache else None}
    aim = (f"compute capabilities {', '.join(targets)}" if targets else
           f"the library's default targets ({', '.join(policy.RTX_DEFAULT_TARGETS)} per NVIDIA)")
    log(f"TensorRT-RTX {version}, ahead of time (no GPU needed) for {aim}; batch profile "
        f"{profile.min}/{profile.opt}/{profile.max}, workspace {workspace} MiB, runtime cache "
        f"{'off' if options.no_runtime_cache else (options.runtime_cache or 'default on the target')}")
    return BuildTarget(trt=trt, runtime=TENSORRT_RTX, version=version, plans=plans, profile=profile, shapes=shapes,
                       workspace_mib=workspace, runtime_cache=runtime_cache)


def _profile(bundle, options: BuildOptions, dla: bool) -> tuple[Profile, tuple]:
    profile = policy.compute_profile(bundle.min_batch, bundle.max_batch, min_batch=options.min_batch,
                                     opt_batch=options.opt_batch, max_batch=options.max_batch, dla=dla)
    return profile, profile.shapes(bundle.input.shape)


def _calibration(bundle, plans: list[BuildPlan], version: TrtVersion, log) -> tuple:
    """(cache bytes, calibrator class, path) when a plan replays the bundle's calibration cache."""
    from runtime.engines import calibration

    if not any(p.calibration_cache for p in plans):
        return None, "IInt8EntropyCalibrator2", None
    cal_path = calibration.find_calibration_cache(bundle)
    cal_bytes = cal_path.read_bytes()
    header = calibration.parse_header(cal_bytes)
    cal_bytes, changed = calibration.retarget(cal_bytes, version)
    if changed:
        log(f"{cal_path.name}: header TRT-{header.trt_code} replayed as TensorRT {version} "
            f"(TRT-{calibration.version_code(version)}); the scales are unchanged")
    return cal_bytes, header.calibrator, cal_path


def _engine_name(target: BuildTarget, plan: BuildPlan) -> str:
    if target.runtime == TENSORRT_RTX:
        return policy.rtx_engine_filename(plan.precision, target.version, plan.compute_capabilities)
    return policy.engine_filename(plan.precision, target.gpu.compute_capability, target.version,
                                  dla_core=plan.dla_core, hardware_compat=plan.hardware_compat,
                                  version_compatible=plan.version_compatible)


def _build_one(bundle, options: BuildOptions, target: BuildTarget, plan: BuildPlan, log, warn) -> BuiltEngine:
    """Build, then write the engine and its sidecar (nothing is written when the build fails)."""
    from runtime.engines import timing_cache as tc
    from runtime.engines.builder import build_serialized
    from runtime.engines.layers import summarize_build_log
    from runtime.engines.sidecar import write_engine

    for w in plan.warnings:
        warn(w)
    onnx_path = bundle.artifact_path(plan.source)
    name = _engine_name(target, plan)
    log(f"building {plan.precision} ({plan.path}, from {onnx_path.name}"
        f"{f', DLA core {plan.dla_core}' if plan.dla_core is not None else ''}) -> {name}")
    cache_bytes = tc.load(target.timing_cache) if target.timing_cache else None
    cal_bytes, cal_class, _ = target.calibration
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    out = build_serialized(target.trt, plan, onnx_path, bundle.input_name, target.shapes,
                           workspace_mib=target.workspace_mib, builder_level=options.builder_level,
                           timing_cache=cache_bytes, calibration_cache=cal_bytes if plan.calibration_cache else None,
                           calibrator_class=cal_class, log_severity=options.log_severity,
                           profiling_verbosity=options.profiling_verbosity)
    seconds = time.perf_counter() - t0
    if target.timing_cache and out.timing_cache:
        tc.save(target.timing_cache, out.timing_cache)
    sidecar = _sidecar(bundle, options, target, plan, out, started, seconds)
    summary = summarize_build_log(out.log) if out.log else None
    if summary is not None:
        sidecar = dataclasses.replace(sidecar, layers=summary.to_dict())
    record = write_engine(bundle.root, name, out.plan, sidecar)
    log(f"{plan.precision}: {name} ({len(out.plan) / 2**20:.1f} MiB) in {seconds:.1f} s"
        + (f"; {_composition_line(summary)}" if summary is not None else ""))
    return BuiltEngine(plan.precision, record.engine_path, record.sidecar, seconds, list(plan.warnings), out.log)


def _composition_line(summary) -> str:
    """One line of the layer information: compute layers by precision, and the activation memory."""
    counts = summary.by_precision(compute_only=True)
    total = sum(counts.values())
    parts = ", ".join(f"{n} {p.upper()}" for p, n in counts.items())
    mem = f", activations {summary.activation_bytes / 1e6:.1f} MB" if summary.activation_bytes is not None else ""
    return f"{total} compute layers ({parts or 'none'}){mem}"


def _sidecar(bundle, options: BuildOptions, target: BuildTarget, plan: BuildPlan, out, started,
             seconds) -> EngineSidecar:
    """What the engine's sidecar records (runtime/engines/sidecar.py describes the fields)."""
    from runtime.engines.sidecar import BuildGpu, SourceArtifact, build_command

    p = target.profile
    entry = bundle.artifact(plan.source)
    build_options = {
        "precision": plan.precision, "min_batch": p.min, "opt_batch": p.opt, "max_batch": p.max,
        "dla_core": plan.dla_core, "gpu_fallback": plan.gpu_fallback, "builder_level": options.builder_level,
        "hardware_compat": plan.hardware_compat, "version_compatible": plan.version_compatible,
        "build_path": options.build_path, "runtime": target.runtime,
        "compute_capabilities": list(plan.compute_capabilities),
        "runtime_cache": str(options.runtime_cache) if options.runtime_cache else None,
        "no_runtime_cache": options.no_runtime_cache,
    }
    env, gpu, rtx = target.env, target.gpu, target.runtime == TENSORRT_RTX
    return EngineSidecar(
        precision=plan.precision, build_path=plan.path, runtime=target.runtime, version=str(target.trt.__version__),
        cuda={"runtime": env.cuda_runtime, "driver": env.cuda_driver} if env else {},
        gpu=BuildGpu(gpu.name, gpu.compute_capability, gpu.total_memory, env.jetson) if gpu else None,
        compute_capabilities=out.compute_capabilities,
        default_compute_capabilities=policy.RTX_DEFAULT_TARGETS if rtx and not out.compute_capabilities else (),
        source=SourceArtifact(plan.source, entry.file, entry.sha256),
        input={"name": bundle.input_name, "min": list(target.shapes[0]), "opt": list(target.shapes[1]),
               "max": list(target.shapes[2])},
        profile=p.to_dict(), dla_core=plan.dla_core, gpu_fallback=plan.gpu_fallback,
        hardware_compat=plan.hardware_compat, version_compatible=plan.version_compatible,
        builder_flags=tuple(plan.builder_flags), builder_optimization_level=options.builder_level,
        workspace_mib=target.workspace_mib,
        timing_cache={"path": str(target.timing_cache) if target.timing_cache else None,
                      "reused": out.timing_cache_reused},
        runtime_cache=target.runtime_cache,
        calibration_cache=target.calibration[2].name if (plan.calibration_cache and target.calibration[2]) else None,
        built_at=started.isoformat(timespec="seconds"), build_seconds=round(seconds, 2), edgeport=_edgeport_version(),
        build_options=build_options, rebuild=build_command(bundle.root, plan.precision, build_options),
        messages=tuple(out.messages[-20:]))


def _command_line(bundle, options: BuildOptions) -> str:
    """The build command as the user would retype it on the target (options that travel)."""
    from runtime.engines.sidecar import build_command

    precision = "all" if not options.precisions or "all" in options.precisions else options.precisions[0]
    cmd = build_command(bundle.root, precision, dataclasses.asdict(options))
    for extra in options.precisions[1:] if precision != "all" else ():
        cmd += f" --precision {extra}"
    return cmd


def _edgeport_version() -> str:
    from runtime import __version__

    return __version__


# -- the export step -------------------------------------------------------------------------------
def engine_support() -> tuple[bool, str]:
    """(True, "") when TensorRT imports and a GPU is visible, else (False, why not)."""
    from runtime.engines import device

    ok, detail = device.tensorrt_available()
    if not ok:
        return False, "TensorRT is not installed here"
    gpu, _, _ = device.probe_gpu()
    if gpu is None:
        return False, f"TensorRT {detail} is installed but no NVIDIA GPU is visible"
    return True, ""


def require_engine_support() -> None:
    """For ``export --engine yes``: fail before exporting when engines cannot be built here."""
    from runtime.engines import device

    device.import_tensorrt("`edgeport export --engine yes`")
    ok, why = engine_support()
    if not ok:
        raise EdgeportError(f"`edgeport export --engine yes` builds TensorRT engines after the export, but {why}.",
                            hint="Export with --engine auto or no here, then run `edgeport build` on the GPU machine.")


def export_engines(bundle_path: Path, mode: str, *, log=lambda s: None, warn=lambda s: None) -> tuple[list, str | None]:
    """Build engines after an export (``--engine yes|auto``).

    Returns (built engines, hint). In ``auto`` mode without TensorRT or a GPU nothing is
    built and the hint is the exact command to run on the target; a failed build in auto
    mode is a warning (the bundle is fine), in ``yes`` mode an error.
    """
    from runtime.bundle import Bundle
    from runtime.engines.sidecar import build_command

    if mode not in ("auto", "yes", "no"):
        raise UsageError(f"--engine takes auto, yes or no, got '{mode}'.")
    command = build_command(bundle_path, "all")
    if mode == "no":
        return [], None
    ok, why = engine_support()
    if not ok:
        if mode == "yes":
            require_engine_support()  # raises with the full paragraph
        return [], f"TensorRT engines were not built ({why}); on the target, run: {command}"
    bundle = Bundle.open(bundle_path)
    try:
        return build_engines(bundle, BuildOptions(), log=log, warn=warn), None
    except (EdgeportError, DependencyError) as exc:
        if mode == "yes":
            raise EdgeportError(f"The bundle {bundle_path} was written, but building its TensorRT engines failed: "
                                f"{exc.render()}") from exc
        warn(f"building TensorRT engines failed ({exc.render()}); the bundle is complete")
        return [], f"retry the engines with: {command}"
