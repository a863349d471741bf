"""``edgeport build``: TensorRT engines for a bundle, on the machine that will run them.

For each requested precision: choose the build path (policy.plan_build), compute the batch
profile and workspace, reuse the timing cache, build (builder.build_serialized), then write
the engine and its sidecar into the bundle (sidecar.write_engine). Also the ``--engine``
step of ``edgeport export``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path
from typing import Callable

from ..errors import DependencyError, EdgeportError, UsageError
from . import policy
from .policy import BuildPlan, Profile, TrtVersion


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


@dataclasses.dataclass
class BuiltEngine:
    precision: str
    path: Path
    sidecar: dict
    seconds: float
    warnings: list[str]


def select_precisions(requested: tuple[str, ...], available: list[str], dla: bool,
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

    ``trt`` (the tensorrt module) and ``env`` (device.TargetEnv) are probed when None;
    tests pass fakes.
    """
    from . import calibration, device
    from . import timing_cache as tc
    from .builder import build_serialized
    from .sidecar import build_command, write_engine

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
    dla = options.dla_core is not None
    precisions = select_precisions(options.precisions, bundle.precisions, dla, log)

    # Validate every plan before the first (minutes-long) build, so a bad option fails fast.
    plans: list[BuildPlan] = [policy.plan_build(
        version, p, bundle.precisions, requested_path=options.build_path, dla_core=options.dla_core,
        gpu_fallback=options.gpu_fallback, hardware_compat=options.hardware_compat,
        version_compatible=options.version_compatible, compute_capability=gpu.compute_capability)
        for p in precisions]
    profile: Profile = policy.compute_profile(
        bundle.min_batch, bundle.max_batch, min_batch=options.min_batch,
        opt_batch=options.opt_batch, max_batch=options.max_batch, dla=dla)
    shapes = profile.shapes(bundle.input.shape)
    if options.workspace_mib is not None:
        policy.validate_workspace(options.workspace_mib, gpu.total_memory)
        workspace = options.workspace_mib
    else:
        workspace = policy.default_workspace_mib(gpu.total_memory, env.jetson)
    cal_bytes, cal_class, cal_path = None, "IInt8EntropyCalibrator2", None
    if any(p.calibration_cache for p in plans):
        cal_path = calibration.find_calibration_cache(bundle)
        cal_bytes = cal_path.read_bytes()
        header = calibration.parse_header(cal_bytes)
        cal_class = header.calibrator
        cal_bytes, changed = calibration.retarget(cal_bytes, version)
        if changed:
            log(f"{cal_path.name}: header TRT-{header.trt_code} replayed as TensorRT {version} "
                f"(TRT-{calibration.version_code(version)}); the scales are unchanged")
    cache_path = None
    if not options.no_timing_cache:
        cache_path = Path(options.timing_cache) if options.timing_cache else tc.default_path(
            str(version), gpu.name, gpu.compute_capability)
    log(f"TensorRT {version} on {gpu.name} (compute capability {gpu.compute_capability}"
        f"{', Jetson' if env.jetson else ''}); batch profile {profile.min}/{profile.opt}/{profile.max}, "
        f"workspace {workspace} MiB, timing cache {cache_path or 'off'}")

    built = []
    for plan in plans:
        for w in plan.warnings:
            warn(w)
        onnx_path = bundle.artifact_path(plan.source)
        source_entry = bundle.artifact(plan.source)
        name = policy.engine_filename(plan.precision, gpu.compute_capability, version, dla_core=plan.dla_core,
                                      hardware_compat=plan.hardware_compat,
                                      version_compatible=plan.version_compatible)
        log(f"building {plan.precision} ({plan.path}, from {onnx_path.name}"
            f"{f', DLA core {plan.dla_core}' if plan.dla_core is not None else ''}) -> {name}")
        cache_bytes = tc.load(cache_path) if cache_path else None
        started = _dt.datetime.now(_dt.timezone.utc)
        t0 = time.perf_counter()
        out = build_serialized(trt, plan, onnx_path, bundle.input_name, shapes, workspace_mib=workspace,
                               builder_level=options.builder_level, timing_cache=cache_bytes,
                               calibration_cache=cal_bytes if plan.calibration_cache else None,
                               calibrator_class=cal_class)
        seconds = time.perf_counter() - t0
        if cache_path and out.timing_cache:
            tc.save(cache_path, out.timing_cache)
        build_options = {
            "precision": plan.precision, "min_batch": profile.min, "opt_batch": profile.opt, "max_batch": profile.max,
            "dla_core": plan.dla_core, "gpu_fallback": plan.gpu_fallback, "builder_level": options.builder_level,
            "hardware_compat": plan.hardware_compat, "version_compatible": plan.version_compatible,
            "build_path": options.build_path,
        }
        sidecar = {
            "precision": plan.precision,
            "build_path": plan.path,
            "tensorrt": str(trt.__version__),
            "cuda": {"runtime": env.cuda_runtime, "driver": env.cuda_driver},
            "gpu": {"name": gpu.name, "compute_capability": gpu.compute_capability, "total_memory": gpu.total_memory,
                    "jetson": env.jetson},
            "source": {"artifact": plan.source, "file": source_entry.file, "sha256": source_entry.sha256},
            "input": {"name": bundle.input_name, "min": list(shapes[0]), "opt": list(shapes[1]),
                      "max": list(shapes[2])},
            "profile": profile.to_dict(),
            "dla_core": plan.dla_core,
            "gpu_fallback": plan.gpu_fallback,
            "hardware_compat": plan.hardware_compat,
            "version_compatible": plan.version_compatible,
            "builder_flags": list(plan.builder_flags),
            "builder_optimization_level": options.builder_level,
            "workspace_mib": workspace,
            "timing_cache": {"path": str(cache_path) if cache_path else None, "reused": out.timing_cache_reused},
            "calibration_cache": cal_path.name if (plan.calibration_cache and cal_path) else None,
            "built_at": started.isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 2),
            "edgeport": _edgeport_version(),
            "build_options": build_options,
            "rebuild": build_command(bundle.root, plan.precision, build_options),
            "tensorrt_messages": out.messages[-20:],
        }
        record = write_engine(bundle.root, name, out.plan, sidecar)
        log(f"{plan.precision}: {name} ({len(out.plan) / 2**20:.1f} MiB) in {seconds:.1f} s")
        built.append(BuiltEngine(plan.precision, record.engine_path, record.sidecar, seconds, list(plan.warnings)))
    return built


def _command_line(bundle, options: BuildOptions) -> str:
    """The build command as the user would retype it on the target (options that travel)."""
    from .sidecar import build_command

    precision = "all" if not options.precisions or "all" in options.precisions else options.precisions[0]
    cmd = build_command(bundle.root, precision, dataclasses.asdict(options))
    for extra in options.precisions[1:] if precision != "all" else ():
        cmd += f" --precision {extra}"
    return cmd


def _edgeport_version() -> str:
    from .. import __version__

    return __version__


# -- the export step -------------------------------------------------------------------------------
def engine_support() -> tuple[bool, str]:
    """(True, "") when TensorRT imports and a GPU is visible, else (False, why not)."""
    from . import device

    ok, detail = device.tensorrt_available()
    if not ok:
        return False, "TensorRT is not installed here"
    gpu, _, _ = device.probe_gpu()
    if gpu is None:
        return False, f"TensorRT {detail} is installed but no NVIDIA GPU is visible"
    return True, ""


def require_engine_support() -> None:
    """For ``export --engine yes``: fail before exporting when engines cannot be built here."""
    from . import device

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
    from ..bundle import Bundle
    from .sidecar import build_command

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
