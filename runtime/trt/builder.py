"""The thin layer over TensorRT's builder API: execute a ``BuildPlan``, return the plan bytes.

Every decision (which flags, which graph, which profile) was taken in policy.py; this
module only calls TensorRT (documented Python API of 8.6, 10.x and 11.x), so it is short
and testable with a fake ``tensorrt`` module that records calls (tests/test_trt_fake_api.py),
itself pinned to NVIDIA's real bindings (tests/data/trt_api.json, tests/test_trt_api_pinned.py).
The tensorrt module is passed in, never imported at module level.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import EdgeportError
from .policy import MIB, BuildPlan


@dataclasses.dataclass
class BuildOutput:
    plan: bytes
    timing_cache: bytes | None
    messages: list[str]  # TensorRT's warnings and errors during the build
    timing_cache_reused: bool


def make_logger(trt, sink: list[str], echo=None):
    """A TensorRT logger that keeps warnings and errors (for error messages) and echoes them."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.WARNING):  # INTERNAL_ERROR, ERROR, WARNING
                text = f"{getattr(severity, 'name', severity)}: {msg}"
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
) -> BuildOutput:
    """Parse ``onnx_path`` and build a serialized engine as ``plan`` says.

    ``timing_cache`` is the previous cache's bytes (b"" to start one, None to disable).
    """
    messages: list[str] = []
    logger = make_logger(trt, messages, echo)
    builder = trt.Builder(logger)

    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(_flag(trt.NetworkDefinitionCreationFlag, name, "NetworkDefinitionCreationFlag", trt))
    for name in plan.optional_network_flags:
        # TensorRT 11 networks are always strongly typed; the flag may or may not still exist.
        member = getattr(trt.NetworkDefinitionCreationFlag, name, None)
        if member is not None:
            flags |= 1 << int(member)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgeportError(
            f"TensorRT {trt.__version__} could not parse {Path(onnx_path).name}: {'; '.join(errors[:5]) or 'no details'}.",
            hint="Check that the bundle was exported with an opset this TensorRT supports (8.6 parses up to opset 17); "
            "re-export with `edgeport export --opset 17` if needed.")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) * MIB)
    for name in plan.builder_flags:
        config.set_flag(_flag(trt.BuilderFlag, name, "BuilderFlag", trt))
    for name in plan.clear_flags:
        member = getattr(trt.BuilderFlag, name, None)
        if member is not None:
            config.clear_flag(member)
    if builder_level is not None:
        config.builder_optimization_level = int(builder_level)
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

    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *shapes)
    # add_optimization_profile returns the profile's index, or -1 when TensorRT found it invalid.
    if config.add_optimization_profile(profile) < 0:
        raise EdgeportError(
            f"TensorRT {trt.__version__} refused the optimization profile for '{input_name}' (min/opt/max shapes "
            f"{', '.join(str(list(s)) for s in shapes)}): {'; '.join(messages[-3:]) or 'no message'}.",
            hint="Check --min-batch <= --opt-batch <= --max-batch and that the input name matches the ONNX graph.")

    if plan.calibration_cache:
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

    reused = False
    if timing_cache is not None:
        cache = config.create_timing_cache(bytes(timing_cache))
        reused = bool(timing_cache)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            # A cache from another TensorRT/GPU: start an empty one rather than fail.
            messages.append("WARNING: the timing cache does not match this TensorRT/GPU; starting a new one")
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
            reused = False

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [m for m in messages if not m.startswith("WARNING")] or messages
        raise EdgeportError(
            f"TensorRT {trt.__version__} failed to build the {plan.precision} engine ({plan.path}): "
            f"{'; '.join(errors[-5:]) or 'no message'}.",
            hint="On a Jetson, out-of-memory builds end like this: lower --workspace or --max-batch, close other "
            "GPU programs, or add swap.")
    new_cache = None
    if timing_cache is not None:
        new_cache = bytes(memoryview(config.get_timing_cache().serialize()))
    return BuildOutput(plan=bytes(memoryview(serialized)), timing_cache=new_cache, messages=messages,
                       timing_cache_reused=reused)
