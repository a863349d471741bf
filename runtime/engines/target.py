"""What every engine of one ``edgeport build`` shares, and the runtime-neutral steps that
compute it: the precisions to build, the batch profile, the calibration cache to replay.

Each engine runtime's ``prepare`` (runtime/engines/tensorrt.py, tensorrt_rtx.py) returns a
``BuildTarget`` made with these; runtime/engines/build.py then builds every plan of it. No
tensorrt import, and nothing here depends on which runtime asks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from runtime.engines import policy
from runtime.engines.policy import BuildPlan, Profile, TrtVersion
from runtime.errors import UsageError


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
    # The largest workspace an out-of-memory build is retried with (doubling); None: --workspace
    # was given, and the user's cap is kept.
    workspace_ceiling_mib: int | None = None
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


def batch_profile(bundle, options: BuildOptions, dla: bool) -> tuple[Profile, tuple]:
    """The engine's batch profile and its (min, opt, max) input shapes."""
    profile = policy.compute_profile(bundle.min_batch, bundle.max_batch, min_batch=options.min_batch,
                                     opt_batch=options.opt_batch, max_batch=options.max_batch, dla=dla)
    return profile, profile.shapes(bundle.input.shape)


def calibration_for(bundle, plans: list[BuildPlan], version: TrtVersion, log) -> tuple:
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
