"""The thin layer over TensorRT's builder API: execute a ``BuildPlan``, return the plan bytes.

Every decision (which flags, which graph, which profile) was taken in policy.py; this
module only calls TensorRT (documented Python API of 8.6, 10.x and 11.x, and of TensorRT-RTX,
whose builder is TensorRT 10/11's strongly typed one plus compute-capability targets), so it
is short. It is tested with a fake ``tensorrt`` module that records calls
(tests/runtime/engines/test_trt_fake_api.py), itself pinned to NVIDIA's real bindings (tests/data/trt_api.json,
tests/runtime/engines/test_trt_api_pinned.py), and, for TensorRT-RTX, with NVIDIA's real library
(tests/runtime/engines/test_rtx_build.py). The module is passed in, never imported at module level.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime.errors import EdgeportError
from runtime.engines.policy import MIB, BuildPlan, cc_tag

# TensorRT warnings that mean "the timing cache bytes were not used" (no failure is returned).
TIMING_CACHE_REJECTED = ("Failed to deserialize timing cache", "timing cache will not be used")
# NVIDIA's builder error when a layer needs more memory than the workspace allows; the size it
# names is the workspace plus the weights, not what the layer needs (measured: VGG16 INT8 for
# Turing fails at 1,100 MiB asking "1,291,938,720 bytes" and builds at 1,280 MiB).
OUT_OF_MEMORY = "Error Code 2: OutOfMemory"


class BuildOutOfMemory(EdgeportError):
    """The builder ran out of memory within its workspace: build.py may retry with more."""


@dataclasses.dataclass
class BuildOutput:
    plan: bytes
    timing_cache: bytes | None
    messages: list[str]  # TensorRT's warnings and errors during the build
    timing_cache_reused: bool
    log: list[str] = dataclasses.field(default_factory=list)  # every message at ``log_severity`` (verbose builds)
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets as the builder config holds them


def make_logger(trt, sink: list[str], echo=None, *, log: list[str] | None = None, log_severity: str = "WARNING",
                drop: tuple[str, ...] = ()):
    """A TensorRT logger: warnings and errors go to ``sink`` (for error messages) and ``echo``.

    With ``log``, every message down to ``log_severity`` (e.g. VERBOSE, for the layer
    information a DETAILED build prints) is appended there too. Messages containing one of
    ``drop`` are ignored.
    """
    level = int(getattr(trt.ILogger.Severity, log_severity))
    warning = int(trt.ILogger.Severity.WARNING)

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if drop and any(d in msg for d in drop):
                return
            text = f"{getattr(severity, 'name', severity)}: {msg}"
            if log is not None and int(severity) <= level:
                log.append(text)
            if int(severity) <= warning:  # INTERNAL_ERROR, ERROR, WARNING
                sink.append(text)
                if echo is not None:
                    echo(f"TensorRT {text}")

    return _Logger()


def make_cache_calibrator(trt, class_name: str, cache: bytes):
    """A calibrator that replays a calibration cache and never asks for data."""
    base = getattr(trt, class_name, None)
    if base is None:
        raise EdgeportError(f"TensorRT {trt.__version__} has no {class_name}, which the bundle's calibration cache "
                            "needs (implicit INT8 calibration was removed in TensorRT 11).",
                            hint="Build INT8 from the Q/DQ graph (drop --dla-core), or use TensorRT 10.x for DLA.")

    class _CacheCalibrator(base):
        def __init__(self):
            base.__init__(self)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):  # no data: everything comes from the cache
            return None

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, data):
            return None

    if class_name == "IInt8LegacyCalibrator":
        # The legacy calibrator has four more pure virtual hooks (TensorRT logs "Tried to call
        # pure virtual function" without them). The cache supplies the scales, so quantile and
        # regression cutoff (both in (0, 1]) are never used to pick one: 1.0 = the region maximum.
        class _LegacyCacheCalibrator(_CacheCalibrator):
            def get_quantile(self):
                return 1.0

            def get_regression_cutoff(self):
                return 1.0

            def read_histogram_cache(self):  # no histograms: nothing is calibrated here
                return None

            def write_histogram_cache(self, data):
                return None

        return _LegacyCacheCalibrator()
    return _CacheCalibrator()


def _flag(enum, name: str, what: str, trt):
    member = getattr(enum, name, None)
    if member is None:
        raise EdgeportError(f"TensorRT {trt.__version__} has no {what}.{name}, which this build needs.",
                            hint="This combination of options is not available on this TensorRT version; see docs/tensorrt.md.")
    return member


def _without_noise(text: str, noise: tuple[str, ...]) -> str:
    """One paragraph: the lines of a library message joined, minus the runtime's noise (GPU-less CUDA probes)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    kept = [line for line in lines if not any(n in line for n in noise)] or lines
    return " ".join(kept).rstrip(".")


def build_serialized(
    trt,
    plan: BuildPlan,
    onnx_path: Path,
    input_name: str,
    shapes: tuple[tuple, tuple, tuple],
    *,
    workspace_mib: int,
    builder_level: int | None = None,
    timing_cache: bytes | None = b"",
    calibration_cache: bytes | None = None,
    calibrator_class: str = "IInt8EntropyCalibrator2",
    echo=None,
    log_severity: str | None = None,
    profiling_verbosity: str | None = None,
    engine_runtime,
) -> BuildOutput:
    """Parse ``onnx_path`` and build a serialized engine as ``plan`` says.

    ``engine_runtime`` is the plan's engine runtime (registry.engine_runtime(plan.runtime): its product
    name, its noise and parser hint for messages). ``timing_cache`` is the previous cache's bytes (b"" to start one, None to disable).
    ``log_severity`` (e.g. "VERBOSE") keeps every message down to that level in
    ``BuildOutput.log``; ``profiling_verbosity`` (a ProfilingVerbosity member name, e.g.
    "DETAILED") is set on the builder config, so a verbose build logs the engine's layers.
    """
    messages: list[str] = []
    log: list[str] | None = [] if log_severity else None
    logger = make_logger(trt, messages, echo, log=log, log_severity=log_severity or "WARNING",
                         drop=engine_runtime.builder_noise)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt, plan))
    parser = trt.OnnxParser(network, logger)
    _parse(trt, engine_runtime, parser, onnx_path, _rewritten(plan, onnx_path))

    config = builder.create_builder_config()
    _configure(trt, plan, builder, config, workspace_mib, builder_level, profiling_verbosity)
    targets = _set_compute_capabilities(trt, config, plan.compute_capabilities)
    profile = _add_profile(trt, builder, config, input_name, shapes, messages)
    if plan.calibration_cache:
        _attach_calibrator(trt, config, profile, calibration_cache, calibrator_class, shapes, messages)
    reused = _attach_timing_cache(config, timing_cache, messages) if timing_cache is not None else False

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        _raise_build_failure(trt, engine_runtime, plan, messages, workspace_mib)
    new_cache = None
    if timing_cache is not None:
        new_cache = bytes(memoryview(config.get_timing_cache().serialize()))
    return BuildOutput(plan=bytes(memoryview(serialized)), timing_cache=new_cache, messages=messages,
                       timing_cache_reused=reused, log=log or [], compute_capabilities=targets)


def _raise_build_failure(trt, engine_runtime, plan: BuildPlan, messages: list[str], workspace_mib: int):
    errors = [m for m in messages if not m.startswith("WARNING")] or messages
    message = (f"{engine_runtime.product} {trt.__version__} failed to build the {plan.precision} engine ({plan.path}): "
               f"{'; '.join(_without_noise(e, engine_runtime.builder_noise) for e in errors[-5:]) or 'no message'}.")
    hint = getattr(engine_runtime, "build_failure_hint", None) or None
    if any(OUT_OF_MEMORY in e for e in errors):
        more = (f"The builder ran out of memory with a {workspace_mib} MiB workspace: pass a larger --workspace "
                f"(e.g. {2 * workspace_mib}) if the target GPU has the memory.")
        raise BuildOutOfMemory(message, hint=f"{more} {hint}" if hint else more)
    raise EdgeportError(message, hint=hint)


def _network_flags(trt, plan: BuildPlan) -> int:
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(_flag(trt.NetworkDefinitionCreationFlag, name, "NetworkDefinitionCreationFlag", trt))
    for name in plan.optional_network_flags:
        # TensorRT 11 networks are always strongly typed; the flag may or may not still exist.
        member = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if member is not None:
            flags |= 1 << int(member)
    return flags


def _rewritten(plan: BuildPlan, onnx_path: Path) -> bytes | None:
    """The serialized graph after ``plan.graph_rewrites`` (None: parse the file as it is)."""
    if not plan.graph_rewrites:
        return None
    import onnx

    from runtime.engines.turing import GEMM_AS_CONV, gemms_as_conv

    model = onnx.load(str(onnx_path), load_external_data=False)  # the bundle reader refuses external data
    for rewrite in plan.graph_rewrites:
        if rewrite != GEMM_AS_CONV:
            raise EdgeportError(f"Unknown graph rewrite {rewrite!r} in the build plan.")
        gemms_as_conv(model)
    return model.SerializeToString()


def _parse(trt, rt, parser, onnx_path: Path, rewritten: bytes | None = None) -> None:
    """Parse the graph (``rewritten``: its rewritten copy), or raise NVIDIA's parser errors as one paragraph."""
    ok = parser.parse(rewritten, str(onnx_path)) if rewritten is not None else parser.parse_from_file(str(onnx_path))
    if ok:
        return
    errors = [_without_noise(parser.get_error(i), rt.builder_noise) for i in range(parser.num_errors)]
    product = rt.product
    hint = (f"`edgeport lint {onnx_path}` checks a Q/DQ graph against the rules NVIDIA's parser enforces "
            "(INT8 zero points 0, float biases); edgeport's own exports follow them, so re-export the bundle if the "
            "graph came from elsewhere." + (f" {rt.parse_hint}" if rt.parse_hint else ""))
    raise EdgeportError(f"{product} {trt.__version__} could not parse {Path(onnx_path).name}: "
                        f"{'; '.join(errors[:5]) or 'no details'}.", hint=hint)


def _configure(trt, plan: BuildPlan, builder, config, workspace_mib: int, builder_level: int | None,
               profiling_verbosity: str | None) -> None:
    """Workspace, builder flags, optimization level, hardware compatibility and DLA, as planned."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) * MIB)
    for name in plan.builder_flags:
        config.set_flag(_flag(trt.BuilderFlag, name, "BuilderFlag", trt))
    for name in plan.clear_flags:
        member = getattr(trt.BuilderFlag, name, None)
        if member is not None:
            config.clear_flag(member)
    if builder_level is not None:
        config.builder_optimization_level = int(builder_level)
    if profiling_verbosity is not None:
        config.profiling_verbosity = _flag(trt.ProfilingVerbosity, profiling_verbosity, "ProfilingVerbosity", trt)
    if plan.hardware_compat == "ampere+":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if plan.dla_core is not None:
        cores = int(getattr(builder, "num_DLA_cores", 0) or 0)
        if plan.dla_core >= cores:
            raise EdgeportError(f"--dla-core {plan.dla_core} was requested, and TensorRT sees {cores} DLA core(s) here.",
                                hint="DLA exists on Jetson AGX Orin / Orin NX / Xavier; use --dla-core 0"
                                + (f"..{cores - 1}" if cores > 1 else "") + " or drop --dla-core.")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)


def _set_compute_capabilities(trt, config, targets: tuple[str, ...]) -> tuple[str, ...]:
    """TensorRT-RTX's target compute capabilities; returns what the config holds afterwards.

    Nothing is set for the library's default; TensorRT (which has no such API) gets nothing.
    """
    if not hasattr(config, "num_compute_capabilities"):
        if targets:
            raise EdgeportError(f"TensorRT {trt.__version__} has no compute-capability targets (TensorRT-RTX has).",
                                hint="Drop --compute-capability, or build with --runtime tensorrt-rtx.")
        return ()
    names = {cc_tag(cc).upper(): cc for cc in targets}  # "8.6" is ComputeCapability.SM86
    if targets:
        config.num_compute_capabilities = len(targets)
        for index, cc in enumerate(targets):
            member = _flag(trt.ComputeCapability, cc_tag(cc).upper(), "ComputeCapability", trt)
            if not config.set_compute_capability(member, index):
                raise EdgeportError(f"TensorRT-RTX {trt.__version__} refused the target compute capability {cc}.",
                                    hint="Choose targets from --help of `edgeport build --compute-capability`.")
    # Read back from the library: what the engine is really built for.
    members = [config.get_compute_capability(i) for i in range(int(config.num_compute_capabilities))]
    return tuple(names.get(getattr(m, "name", str(m)), str(m)) for m in members)


def _add_profile(trt, builder, config, input_name: str, shapes, messages: list[str]):
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *shapes)
    # add_optimization_profile returns the profile's index, or -1 when TensorRT found it invalid.
    if config.add_optimization_profile(profile) < 0:
        raise EdgeportError(
            f"TensorRT {trt.__version__} refused the optimization profile for '{input_name}' (min/opt/max shapes "
            f"{', '.join(str(list(s)) for s in shapes)}): {'; '.join(messages[-3:]) or 'no message'}.",
            hint="Check --min-batch <= --opt-batch <= --max-batch and that the input name matches the ONNX graph.")
    return profile


def _attach_calibrator(trt, config, profile, calibration_cache: bytes | None, calibrator_class: str, shapes,
                       messages: list[str]) -> None:
    if calibration_cache is None:
        raise EdgeportError("This build replays a calibration cache, but none was given.")
    config.int8_calibrator = make_cache_calibrator(trt, calibrator_class, calibration_cache)
    # Dynamic-shape networks calibrate with an explicit profile (the static DLA one);
    # set_calibration_profile exists up to 10.x and returns False when it refuses it.
    if hasattr(config, "set_calibration_profile") and not config.set_calibration_profile(profile):
        raise EdgeportError(f"TensorRT {trt.__version__} refused the calibration profile "
                            f"({', '.join(str(list(s)) for s in shapes)}): "
                            f"{'; '.join(messages[-3:]) or 'no message'}.",
                            hint="DLA builds need one static batch: pass one of --min/--opt/--max-batch.")


def _attach_timing_cache(config, timing_cache: bytes, messages: list[str]) -> bool:
    """Give the builder the previous timing cache; returns whether its contents are used."""
    seen = len(messages)
    cache = config.create_timing_cache(bytes(timing_cache))
    rejected = any(any(r in m for r in TIMING_CACHE_REJECTED) for m in messages[seen:])
    if not rejected and config.set_timing_cache(cache, ignore_mismatch=False):
        return bool(timing_cache)
    # A cache from another TensorRT/GPU (or unreadable here): start an empty one rather than fail.
    messages.append("WARNING: the timing cache does not match this TensorRT/GPU (or cannot be read here); "
                    "starting a new one")
    config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return False
