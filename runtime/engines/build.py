"""``edgeport build``: TensorRT or TensorRT-RTX engines for a bundle.

TensorRT engines are built on the machine that will run them; TensorRT-RTX engines on any
x86_64 machine, GPU or not (ahead of time, for target compute capabilities). For each
requested precision: the engine runtime (runtime/engines/registry.py) plans the build and
computes the batch profile and workspace, with its timing cache (TensorRT); then the same
code for every runtime builds (builder.build_serialized) and writes the engine and its
sidecar into the bundle (sidecar.write_engine). Also the ``--engine`` step of ``edgeport export``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Callable

from runtime.errors import DependencyError, EdgeportError, UsageError
from runtime.engines.policy import BuildPlan
from runtime.engines.registry import DEFAULT_RUNTIME, engine_runtime
from runtime.engines.target import BuildTarget
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
    runtime: str = DEFAULT_RUNTIME  # a key of runtime.engines.registry.ENGINE_RUNTIMES
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets (raw --compute-capability values)
    runtime_cache: Path | None = None  # TensorRT-RTX: the JIT cache file the engine uses on the target
    no_runtime_cache: bool = False
    # For readers of the library's own log (e.g. the layer information of a DETAILED build):
    log_severity: str | None = None  # keep messages down to this severity in BuiltEngine.log ("VERBOSE")
    profiling_verbosity: str | None = None  # ProfilingVerbosity member name, e.g. "DETAILED"

    def __post_init__(self):
        # Checked here once, for the CLI and the API alike: a cache path with its own "off" switch.
        for cache in ("timing_cache", "runtime_cache"):
            if getattr(self, cache) is not None and getattr(self, f"no_{cache}"):
                flag = cache.replace("_", "-")
                raise UsageError(f"--{flag} and --no-{flag} contradict each other; pass one.")


@dataclasses.dataclass
class BuiltEngine:
    precision: str
    path: Path
    sidecar: EngineSidecar
    seconds: float
    warnings: list[str]
    log: list[str] = dataclasses.field(default_factory=list)  # the library's messages (BuildOptions.log_severity)


def build_engines(bundle, options: BuildOptions, *, trt=None, env=None,
                  log: Callable[[str], None] = lambda s: None,
                  warn: Callable[[str], None] = lambda s: None) -> list[BuiltEngine]:
    """Build one engine per selected precision into the bundle; returns what was built.

    ``trt`` (the tensorrt or TensorRT-RTX module) and ``env`` (device.TargetEnv) are probed
    when None; tests pass fakes (or NVIDIA's real TensorRT-RTX). Every option and plan is
    checked before the first (minutes-long) build, so a bad option fails fast.
    """
    rt = engine_runtime(options.runtime)
    target = rt.prepare(bundle, options, trt=trt, env=env, log=log, rerun=command_line(bundle, options))
    if rt.records_layers and options.log_severity is None and options.profiling_verbosity is None:
        # This runtime logs its engines' layer information (TensorRT-RTX: also in a CPU-only build): record it.
        options = dataclasses.replace(options, log_severity="VERBOSE", profiling_verbosity="DETAILED")
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


def _build_one(bundle, options: BuildOptions, target: BuildTarget, plan: BuildPlan, log, warn) -> BuiltEngine:
    """Build, then write the engine and its sidecar (nothing is written when the build fails)."""
    from runtime.engines import timing_cache as tc
    from runtime.engines.layers import summarize_build_log
    from runtime.engines.sidecar import write_engine

    for w in plan.warnings:
        warn(w)
    onnx_path = bundle.artifact_path(plan.source)
    name = engine_runtime(target.runtime).engine_filename(plan, target)
    log(f"building {plan.precision} ({plan.path}, from {onnx_path.name}"
        f"{f', DLA core {plan.dla_core}' if plan.dla_core is not None else ''}) -> {name}")
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    out, workspace = _build_within_workspace(bundle, options, target, plan, onnx_path, log)
    seconds = time.perf_counter() - t0
    if target.timing_cache and out.timing_cache:
        tc.save(target.timing_cache, out.timing_cache)
    sidecar = _sidecar(bundle, options, target, plan, out, started, seconds)
    if workspace != target.workspace_mib:
        sidecar = dataclasses.replace(sidecar, workspace_mib=workspace)
    summary = summarize_build_log(out.log) if out.log else None
    if summary is not None:
        sidecar = dataclasses.replace(sidecar, layers=summary.to_dict())
    record = write_engine(bundle.root, name, out.plan, sidecar)
    log(f"{plan.precision}: {name} ({len(out.plan) / 2**20:.1f} MiB) in {seconds:.1f} s"
        + (f"; {_composition_line(summary)}" if summary is not None else ""))
    warnings = list(plan.warnings)
    mostly_float = _int8_in_name_only(plan, summary)
    if mostly_float:
        warn(mostly_float)
        warnings.append(mostly_float)
    return BuiltEngine(plan.precision, record.engine_path, record.sidecar, seconds, warnings, out.log)


def _int8_in_name_only(plan: BuildPlan, summary) -> str | None:
    """A warning when an int8 engine runs fewer than half its compute layers in INT8 (the
    build log's layer information says so): it is then no faster than fp16, and usually slower.
    Measured: TensorRT-RTX for Turing (7.5) runs 0-13 of 22-274 layers in INT8 on every CNN of
    docs/conformance.md, while 8.6 and 12.0 run all of them in INT8."""
    if plan.precision != "int8" or summary is None:
        return None
    counts = summary.by_precision(compute_only=True)
    total, int8 = sum(counts.values()), counts.get("int8", 0)
    if not total or 2 * int8 >= total:
        return None
    parts = _counts_text(counts)
    turing = "7.5" in plan.compute_capabilities
    why = (" NVIDIA's support matrix lists no INT8 for Turing (7.5): TensorRT-RTX runs those layers in FP32 there."
           if turing else "")
    return (f"the int8 engine runs {int8} of {total} compute layers in INT8 ({parts}), so it is no faster than an "
            f"fp16 engine.{why} Build --precision fp16 for {'Turing' if turing else 'this target'} instead.")


def _build_within_workspace(bundle, options: BuildOptions, target: BuildTarget, plan: BuildPlan, onnx_path,
                            log) -> tuple:
    """Build; when the builder runs out of the default workspace, again with twice as much, up to the
    target's ceiling (VGG's 25088x4096 classifier as a Turing 1x1 convolution needs 1,280 MiB, the
    ahead-of-time default is 1,024). A --workspace the user gave is kept. Returns (output, MiB used)."""
    from runtime.engines import timing_cache as tc
    from runtime.engines.builder import BuildOutOfMemory, build_serialized

    cal_bytes, cal_class, _ = target.calibration
    cache_bytes = tc.load(target.timing_cache) if target.timing_cache else None
    workspace = target.workspace_mib
    while True:
        try:
            out = build_serialized(
                target.trt, plan, onnx_path, bundle.input_name, target.shapes,
                engine_runtime=engine_runtime(plan.runtime), workspace_mib=workspace,
                builder_level=options.builder_level, timing_cache=cache_bytes,
                calibration_cache=cal_bytes if plan.calibration_cache else None, calibrator_class=cal_class,
                log_severity=options.log_severity, profiling_verbosity=options.profiling_verbosity)
            return out, workspace
        except BuildOutOfMemory:
            ceiling = target.workspace_ceiling_mib
            if ceiling is None or workspace * 2 > ceiling:
                raise
            log(f"{plan.precision}: the builder ran out of memory with a {workspace} MiB workspace; building again "
                f"with {workspace * 2} MiB (--workspace sets it)")
            workspace *= 2


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {p.upper()}" for p, n in counts.items())


def _composition_line(summary) -> str:
    """One line of the layer information: compute layers by precision, and the activation memory."""
    counts = summary.by_precision(compute_only=True)
    total = sum(counts.values())
    parts = _counts_text(counts)
    from runtime.report.numbers import size  # MiB, as the report's engine table

    mem = f", activations {size(summary.activation_bytes)}" if summary.activation_bytes is not None else ""
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
    env, gpu = target.env, target.gpu
    return EngineSidecar(
        precision=plan.precision, build_path=plan.path, runtime=target.runtime, version=str(target.trt.__version__),
        cuda={"runtime": env.cuda_runtime, "driver": env.cuda_driver} if env else {},
        gpu=BuildGpu(gpu.name, gpu.compute_capability, gpu.total_memory, env.jetson) if gpu else None,
        compute_capabilities=out.compute_capabilities,
        default_compute_capabilities=() if out.compute_capabilities else engine_runtime(target.runtime).default_targets,
        source=SourceArtifact(plan.source, entry.file, entry.sha256),
        input={"name": bundle.input_name, "min": list(target.shapes[0]), "opt": list(target.shapes[1]),
               "max": list(target.shapes[2])},
        profile=p.to_dict(), dla_core=plan.dla_core, gpu_fallback=plan.gpu_fallback,
        hardware_compat=plan.hardware_compat, version_compatible=plan.version_compatible,
        builder_flags=tuple(plan.builder_flags), graph_rewrites=tuple(plan.graph_rewrites),
        builder_optimization_level=options.builder_level,
        workspace_mib=target.workspace_mib,
        timing_cache={"path": str(target.timing_cache) if target.timing_cache else None,
                      "reused": out.timing_cache_reused},
        runtime_cache=target.runtime_cache,
        calibration_cache=target.calibration[2].name if (plan.calibration_cache and target.calibration[2]) else None,
        built_at=started.isoformat(timespec="seconds"), build_seconds=round(seconds, 2), edgeport=_edgeport_version(),
        build_options=build_options, rebuild=build_command(bundle.root, plan.precision, build_options),
        messages=tuple(out.messages[-20:]))


def command_line(bundle, options: BuildOptions) -> str:
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
