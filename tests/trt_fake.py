"""A fake ``tensorrt`` module and fake GPU memory for CPU tests of edgeport's TensorRT layer.

The fake's API is NVIDIA's, read from tests/data/trt_api.json (dumped from the real binding
wheels by scripts/trt_api/dump_api.py): ``FakeTRT("10.3.0")`` emulates the pinned release of
the same major version (8.6 -> 8.6.1, 10.x -> 10.13.0.35, 11.x -> 11.4.0.106). Its enums are
the real enums with the real values; its classes have a member exactly when the real class
of that release has it (others raise AttributeError, as do unknown attribute names set on
config objects, which have no ``__dict__`` in the real bindings); methods take the real
parameter names; hooks a Python subclass must implement (calibrators) are the real pure
virtual ones. tests/runtime/engines/test_trt_fake_api.py checks all of that against the JSON.

Behaviour is the fake's own: every call is recorded in ``trt.calls``; the "engine" computes
``logits = 2 * x.reshape(n, -1)[:, :classes]`` (see fake_logits), reading its input from and
writing its output to FakeMemory by address, the way a real engine uses the addresses given
to set_tensor_address. Tests compare what it returns with an independent reference: ONNX
Runtime running the bundle's ONNX graph (fake_graph, onnx_logits), or the bundle's goldens.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import json
from pathlib import Path

import numpy as np

API_FILE = Path(__file__).resolve().parent / "data" / "trt_api.json"
CLASSES = 10


def fake_logits(x: np.ndarray) -> np.ndarray:
    return (2.0 * x.reshape(len(x), -1)[:, :CLASSES]).astype(np.float32)


class FakeMemory:
    """Device memory as a dict address -> bytearray (the cuda_mem backend interface)."""

    name = "fake"

    def __init__(self):
        self.blocks: dict[int, bytearray] = {}
        self._next = 0x1000
        self.freed = []

    def alloc(self, nbytes):
        ptr = self._next
        self._next += max(int(nbytes), 1) + 256
        self.blocks[ptr] = bytearray(max(int(nbytes), 1))
        return ptr

    def free(self, ptr):
        self.freed.append(ptr)
        self.blocks.pop(ptr, None)

    def stream(self):
        return "stream-0"

    def stream_handle(self, stream):
        return 42

    def destroy_stream(self, stream):
        pass

    def htod(self, ptr, array, stream):
        data = np.ascontiguousarray(array).tobytes()
        self.blocks[ptr][: len(data)] = data

    def dtoh(self, array, ptr, stream):
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(self.blocks[ptr][: array.nbytes]), np.uint8)

    def synchronize(self, stream):
        pass




@functools.lru_cache(maxsize=1)
def load_api() -> dict:
    """tests/data/trt_api.json's ``apis``: {"tensorrt 10.13.0.35": {...}, ...}."""
    return json.loads(API_FILE.read_text())["apis"]


def api_key_for(version: str, module: str = "tensorrt") -> str:
    """The pinned release the fake emulates for ``version``: the dumped one with the same major."""
    major = version.split(".")[0]
    keys = [k for k in load_api() if k.split(" ")[0] == module and k.split(" ")[1].split(".")[0] == major]
    if not keys:
        raise ValueError(f"tests/data/trt_api.json has no {module} {major}.x API (have {', '.join(load_api())})")
    return keys[0]


# -- the pinning machinery ------------------------------------------------------------------------
class _Absent:
    """A member the real class of this release does not have: reading or setting it fails as there."""

    def __init__(self, owner: str, name: str):
        self.owner, self.name = owner, name

    def __get__(self, obj, objtype=None):
        raise AttributeError(f"'tensorrt.{self.owner}' object has no attribute '{self.name}'")

    def __set__(self, obj, value):
        self.__get__(obj)


def _stored_property(name: str, writable: bool) -> property:
    """A plain real property (config.DLA_core, runtime.engine_host_code_allowed): setting it is recorded."""

    def fget(self):
        return self._props.get(name)

    def fset(self, value):
        self._trt.calls.append((f"{self._tag}.{name}", value))
        self._props[name] = value

    return property(fget, fset if writable else None)


class _Object:
    """Base of the fake classes. Like pybind11 classes without py::dynamic_attr(), a pinned
    class accepts only the attributes the real class has; Python subclasses (loggers,
    calibrators) get a __dict__ as they do with the real bindings."""

    _tag = "object"

    def __init__(self):
        object.__setattr__(self, "_props", {})

    def __setattr__(self, name, value):
        desc = inspect.getattr_static(type(self), name, None)
        user_subclass = any(c.__module__ != __name__ for c in type(self).__mro__[:-1])
        if name.startswith("_") or isinstance(desc, (property, _Absent)) or user_subclass:
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")


def _pin(trt, fake_cls, name: str, real: dict | None, severity):
    """``fake_cls`` restricted to what the real class ``name`` has in this release (None: absent).

    The pinned class also derives from the pinned versions of the real class's bases, so
    isinstance(trt.Logger(), trt.ILogger) holds as with the real bindings.
    """
    if real is None:
        return None
    bases = (fake_cls,) + tuple(getattr(trt, b) for b in real["bases"] if hasattr(trt, b))
    ns = {"__module__": __name__, "__qualname__": name, "_trt": trt}
    for member, info in real["members"].items():
        have = inspect.getattr_static(fake_cls, member, None)
        if info is None:
            if have is not None:
                ns[member] = _Absent(name, member)
        elif info["kind"] == "property" and not isinstance(have, property):
            ns[member] = _stored_property(member, info["writable"])
        elif info["kind"] == "enum_value":
            ns[member] = severity(info["value"])  # ILogger.ERROR etc. (the only enum values on classes)
        elif info["kind"] == "class" and member == "Severity":
            ns[member] = severity
    ns["_pure_virtual"] = tuple(real.get("pure_virtual", ()))
    return type(name, bases, ns)


def _pure_virtual_error(calib, hook: str) -> str | None:
    """The trampoline's complaint when a Python subclass lacks a pure virtual hook, else None."""
    for klass in type(calib).__mro__:
        if klass.__module__ == __name__:
            break  # reached the fake's own classes: the hook was not implemented above them
        if hook in vars(klass):
            return None
    owner = type(calib).__mro__[[c.__module__ for c in type(calib).__mro__].index(__name__)].__name__
    return f'Exception caught in {hook}(): Tried to call pure virtual function "{owner}::{hook}"'


# -- fake classes (behaviour), named and shaped after the real ones -------------------------------
class ILogger(_Object):
    def __init__(self) -> "None":
        _Object.__init__(self)

    def log(self, severity, msg) -> "None":
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


class Logger(ILogger):
    """NVIDIA's ready-made logger: prints messages at or above ``min_severity``."""

    def __init__(self, min_severity=None) -> "None":
        ILogger.__init__(self)
        self._props["min_severity"] = self.Severity.WARNING if min_severity is None else min_severity

    def log(self, severity, msg) -> "None":
        self._trt.calls.append(("logger.log", int(severity), msg))

    min_severity = property(lambda self: self._props["min_severity"],
                            lambda self, value: self._props.__setitem__("min_severity", value))


class IInt8Calibrator(_Object):
    _algorithm = "LEGACY_CALIBRATION"

    def __init__(self) -> "None":
        _Object.__init__(self)

    def get_batch_size(self) -> "int":
        raise RuntimeError('Tried to call pure virtual function "Derived::get_batch_size"')

    def get_algorithm(self) -> "CalibrationAlgoType":
        return self._trt.CalibrationAlgoType[self._algorithm]

    def get_batch(self, names) -> "List[int]":
        return []

    def read_calibration_cache(self) -> "buffer":
        return None

    def write_calibration_cache(self, cache) -> "None":
        return None


class IInt8EntropyCalibrator(IInt8Calibrator):
    _algorithm = "ENTROPY_CALIBRATION"


class IInt8EntropyCalibrator2(IInt8Calibrator):
    _algorithm = "ENTROPY_CALIBRATION_2"


class IInt8MinMaxCalibrator(IInt8Calibrator):
    _algorithm = "MINMAX_CALIBRATION"


class IInt8LegacyCalibrator(IInt8Calibrator):
    _algorithm = "LEGACY_CALIBRATION"  # its histogram hooks are not bound in Python, only called


class IOptimizationProfile(_Object):
    def __init__(self):
        _Object.__init__(self)
        self._shapes, self._valid = {}, True

    def set_shape(self, input, min, opt, max) -> "None":
        self._trt.calls.append(("profile.set_shape", input, tuple(min), tuple(opt), tuple(max)))
        if not all(a <= b <= c for a, b, c in zip(min, opt, max)) or not len(min) == len(opt) == len(max):
            self._valid = False  # TensorRT logs an error and the profile is invalid
            return
        self._shapes[input] = (tuple(min), tuple(opt), tuple(max))

    def get_shape(self, input) -> "List[Dims]":
        return list(self._shapes[input])


class IHostMemory(bytes):
    """Serialized plans and caches: a buffer (memoryview works) with ``nbytes``."""

    nbytes = property(len)


class ITimingCache(_Object):
    def __init__(self, data):
        _Object.__init__(self)
        self._data = bytes(data)

    def serialize(self) -> "IHostMemory":
        return self._trt.IHostMemory(self._data + b"|timed")


class IBuilderConfig(_Object):
    _tag = "config"

    def __init__(self):
        _Object.__init__(self)
        self._flags, self._profiles = set(), []

    def set_memory_pool_limit(self, pool, pool_size) -> "None":
        self._trt.calls.append(("config.set_memory_pool_limit", pool.name, pool_size))
        self._props[f"pool_{pool.name}"] = pool_size

    def set_flag(self, flag) -> "None":
        self._trt.calls.append(("config.set_flag", flag.name))
        self._flags.add(flag.name)

    def clear_flag(self, flag) -> "None":
        self._trt.calls.append(("config.clear_flag", flag.name))
        self._flags.discard(flag.name)

    def get_flag(self, flag) -> "bool":
        return flag.name in self._flags

    def add_optimization_profile(self, profile) -> "int":
        """The profile's index, or -1 when it is not valid (NVIDIA's docstring)."""
        self._trt.calls.append(("config.add_optimization_profile", profile._valid))
        if not profile._valid or not profile._shapes:
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    num_optimization_profiles = property(lambda self: len(self._profiles))

    def set_calibration_profile(self, profile) -> "bool":
        self._trt.calls.append(("config.set_calibration_profile",))
        return bool(profile._valid and profile._shapes)

    def create_timing_cache(self, serialized_timing_cache) -> "ITimingCache":
        self._trt.calls.append(("config.create_timing_cache", bytes(serialized_timing_cache)))
        return self._trt.ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch) -> "bool":
        ok = cache._data != b"other-gpu"
        self._trt.calls.append(("config.set_timing_cache", cache._data, ok))
        if ok:
            self._props["timing_cache"] = cache
        return ok

    def get_timing_cache(self) -> "ITimingCache":
        return self._props["timing_cache"]


class INetworkDefinition(_Object):
    def __init__(self, flags):
        _Object.__init__(self)
        self._flags = flags


class ParserError(_Object):
    def __init__(self, desc, node):
        _Object.__init__(self)
        self._desc, self._node = desc, node

    def desc(self) -> "str":
        return self._desc

    def node(self) -> "int":
        return self._node

    def __str__(self) -> "str":
        return f"In node {self._node} (importConv): {self._desc}"


class OnnxParser(_Object):
    def __init__(self, network, logger) -> "None":
        _Object.__init__(self)
        self._errors: list = []

    def parse_from_file(self, model) -> "bool":
        self._trt.calls.append(("parser.parse_from_file", Path(model).name))
        if Path(model).read_bytes().startswith(b"BROKEN"):
            self._errors.append(self._trt.ParserError("unsupported", 0))
        return not self._errors

    def parse(self, model, path=None) -> "bool":  # a rewritten graph's bytes (runtime/engines/turing.py)
        self._trt.calls.append(("parser.parse", Path(path).name if path else None))
        if bytes(model).startswith(b"BROKEN"):
            self._errors.append(self._trt.ParserError("unsupported", 0))
        return not self._errors

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index) -> "IParserError":
        return self._errors[index]


class Builder(_Object):
    def __init__(self, logger) -> "None":
        _Object.__init__(self)
        self._logger = logger

    num_DLA_cores = property(lambda self: self._trt.dla_cores)

    def create_network(self, flags=0) -> "INetworkDefinition":
        self._trt.calls.append(("builder.create_network", flags))
        return self._trt.INetworkDefinition(flags)

    def create_builder_config(self) -> "IBuilderConfig":
        return self._trt.IBuilderConfig()

    def create_optimization_profile(self) -> "IOptimizationProfile":
        return self._trt.IOptimizationProfile()

    def _fail(self, msg):
        self._logger.log(self._trt.ILogger.Severity.ERROR, msg)

    def _replay_calibrator(self, calib):
        """Call the calibrator's hooks as TensorRT would; None (and an error logged) if one is missing."""
        for hook in type(calib)._pure_virtual:
            error = _pure_virtual_error(calib, hook)
            if error:
                return self._fail(error)
        cache = calib.read_calibration_cache()
        if calib.get_batch_size() < 1:
            return self._fail("Calibrator batch size must be at least 1")
        if isinstance(calib, self._trt.IInt8LegacyCalibrator):  # its quantile / cutoff must be in (0, 1]
            if not (0 < calib.get_quantile() <= 1 and 0 < calib.get_regression_cutoff() <= 1):
                return self._fail("Legacy calibrator quantile and regression cutoff must be in (0, 1]")
            calib.read_histogram_cache()
        return b"" if cache is None else bytes(cache)

    def build_serialized_network(self, network, config) -> "IHostMemory":
        calib = config._props.get("int8_calibrator")
        calib_cache = self._replay_calibrator(calib) if calib is not None else None
        self._trt.calls.append(("builder.build_serialized_network", sorted(config._flags)))
        if calib is not None and calib_cache is None:
            return None
        if self._trt.build_fails:
            return self._fail("Requested amount of GPU memory could not be allocated")
        workspace = config._props.get("pool_WORKSPACE", 0)
        if self._trt.needs_workspace_mib and workspace < self._trt.needs_workspace_mib << 20:
            # NVIDIA's wording; the size it names is the workspace plus the weights (builder.py)
            return self._fail("[localCheckMacros.cpp::getErrorStr::132] Error Code 2: OutOfMemory (Requested size was "
                              f"{workspace + 12345} bytes.)")
        if not config._profiles:
            return self._fail("Network has dynamic or shape inputs, but no optimization profile has been defined.")
        desc = {"version": self._trt.__version__, "flags": sorted(config._flags),
                "profile": {k: [list(s) for s in v] for k, v in config._profiles[0]._shapes.items()},
                "calib": calib_cache.decode() if calib_cache else None,
                "dla_core": config._props.get("DLA_core"), "network_flags": network._flags}
        return self._trt.IHostMemory(b"FAKEPLAN" + json.dumps(desc).encode())


class IExecutionContext(_Object):
    def __init__(self, engine):
        _Object.__init__(self)
        self._engine, self._shapes, self._addresses = engine, {}, {}

    def set_input_shape(self, name, shape) -> "bool":
        self._trt.calls.append(("context.set_input_shape", name, tuple(shape)))
        lo, _, hi = self._engine._profile[name]
        if not lo[0] <= shape[0] <= hi[0]:
            return False
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name) -> "Dims":
        if name == "input":
            return self._shapes["input"]
        return (self._shapes["input"][0], CLASSES)

    def set_tensor_address(self, name, memory) -> "bool":
        """False for a name that is not an I/O tensor or a null address (as TensorRT refuses them)."""
        self._trt.calls.append(("context.set_tensor_address", name, memory))
        if name not in ("input", "logits") or not memory:
            return False
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle) -> "bool":
        self._trt.calls.append(("context.execute_async_v3", stream_handle))
        shape = self._shapes["input"]
        blocks = self._trt.memory.blocks
        n = int(np.prod(shape))
        x = np.frombuffer(bytes(blocks[self._addresses["input"]][: n * 4]), np.float32).reshape(shape)
        out = fake_logits(x).tobytes()
        blocks[self._addresses["logits"]][: len(out)] = out
        return True


class ICudaEngine(_Object):
    def __init__(self, desc):
        _Object.__init__(self)
        self._desc = desc
        self._profile = {k: tuple(tuple(s) for s in v) for k, v in desc["profile"].items()}

    num_io_tensors = property(lambda self: 2)

    def get_tensor_name(self, index) -> "str":
        return ("input", "logits")[index]

    def get_tensor_mode(self, name) -> "TensorIOMode":
        return self._trt.TensorIOMode.INPUT if name == "input" else self._trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name) -> "DataType":
        return self._trt.DataType.FLOAT

    def get_tensor_shape(self, name) -> "Dims":
        return (-1, *self._profile["input"][0][1:]) if name == "input" else (-1, CLASSES)

    def get_tensor_profile_shape(self, name, profile_index) -> "List[Dims]":
        return list(self._profile[name])

    def create_execution_context(self) -> "IExecutionContext":
        return self._trt.IExecutionContext(self)

    def create_runtime_config(self) -> "IRuntimeConfig":
        # Real on 10.x/11.x (and TensorRT-RTX); edgeport calls it only for TensorRT-RTX's runtime
        # cache (runtime/engines/rtx.py), which no fake-based test reaches.
        raise NotImplementedError("the fake tensorrt has no IRuntimeConfig")


class Runtime(_Object):
    _tag = "runtime"

    def __init__(self, logger) -> "None":
        _Object.__init__(self)
        self._logger = logger

    num_DLA_cores = property(lambda self: self._trt.dla_cores)

    def deserialize_cuda_engine(self, serialized_engine) -> "ICudaEngine":
        data = bytes(serialized_engine)
        self._trt.calls.append(("runtime.deserialize_cuda_engine", len(data)))
        if not data.startswith(b"FAKEPLAN"):
            self._logger.log(self._trt.ILogger.Severity.ERROR, "Serialization assertion magicTagRead failed")
            return None
        return self._trt.ICudaEngine(json.loads(data[len(b"FAKEPLAN"):]))


# Bases before subclasses: _pin derives a pinned class from its pinned bases.
FAKE_CLASSES = {c.__name__: c for c in (
    Builder, IBuilderConfig, INetworkDefinition, OnnxParser, ParserError, IOptimizationProfile, ITimingCache,
    IHostMemory, Runtime, ICudaEngine, IExecutionContext, ILogger, Logger, IInt8Calibrator, IInt8EntropyCalibrator,
    IInt8EntropyCalibrator2, IInt8MinMaxCalibrator, IInt8LegacyCalibrator)}
# Attributes of FakeTRT that are the fake's own test helpers, not TensorRT API.
HELPERS = ("calls", "called", "dla_cores", "build_fails", "memory", "major", "api", "api_key", "needs_workspace_mib")
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
          "UINT8": np.uint8, "INT64": np.int64}


class FakeTRT:
    """``import tensorrt`` for one version; ``calls`` records what edgeport did with it.

    ``without`` removes members from the pinned API ("NetworkDefinitionCreationFlag.STRONGLY_TYPED")
    to emulate a later release that drops a deprecated name.
    """

    def __init__(self, version: str, *, dla_cores: int = 0, build_fails: bool = False, memory: FakeMemory | None = None,
                 module: str = "tensorrt", without: tuple[str, ...] = (), needs_workspace_mib: int = 0):
        self.__version__ = version
        self.major = int(version.split(".")[0])
        self.api_key = api_key_for(version, module)
        self.api = load_api()[self.api_key]
        self.calls: list[tuple] = []
        self.dla_cores, self.build_fails, self.memory = dla_cores, build_fails, memory
        self.needs_workspace_mib = needs_workspace_mib  # builds below this workspace fail with OutOfMemory
        for name, members in self.api["enums"].items():
            if members is not None and "." not in name:
                kept = {k: v for k, v in members.items() if f"{name}.{k}" not in without}
                setattr(self, name, enum.IntEnum(name, kept))
        severity = enum.IntEnum("Severity", self.api["enums"]["ILogger.Severity"])
        for name, fake_cls in FAKE_CLASSES.items():
            pinned = _pin(self, fake_cls, name, self.api["classes"].get(name), severity)
            if pinned is not None:
                setattr(self, name, pinned)
        if self.api["functions"].get("nptype") is not None:
            self.nptype = self._nptype

    def _nptype(self, trt_type):
        return _NUMPY[trt_type.name]

    def called(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_graph(size: int, precision: str = "fp32"):
    """The ONNX graph of the fake engine's function: logits = 2 * flatten(x)[:, :CLASSES].

    The fp16 graph computes in FP16 between casts, the int8 one through a Q/DQ pair (scale
    1/32), as edgeport's exports do; golden outputs come from ONNX Runtime running the FP32
    graph (make_bundle), not from fake_logits, so the fake engine is checked against it.
    """
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
             helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["head"])]
    inits = [helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [CLASSES]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    last = "head"
    if precision == "fp16":
        nodes += [helper.make_node("Cast", ["head"], ["head16"], to=TensorProto.FLOAT16),
                  helper.make_node("Mul", ["head16", "two16"], ["out16"]),
                  helper.make_node("Cast", ["out16"], ["logits"], to=TensorProto.FLOAT)]
        inits.append(helper.make_tensor("two16", TensorProto.FLOAT16, [], [2.0]))
    else:
        if precision == "int8":
            nodes += [helper.make_node("QuantizeLinear", ["head", "scale", "zero"], ["q"]),
                      helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"])]
            inits += [helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 32]),
                      helper.make_tensor("zero", TensorProto.INT8, [], [0])]
            last = "dq"
        nodes.append(helper.make_node("Mul", [last, "two"], ["logits"]))
        inits.append(helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]))
    graph = helper.make_graph(
        nodes, f"fake-{precision}", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime running the graph at ``path``: the independent reference for fake engines."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]


def make_bundle(root: Path, *, precisions=("fp32", "fp16", "int8"), max_batch: int = 4, size: int = 4,
                calib_cache: bytes | None = b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n", samples: int = 5) -> Path:
    """A bundle as `edgeport export` writes it (schema-2 manifest built with runtime.manifest's
    types and sealed, real ONNX graphs of fake_graph, golden outputs from ONNX Runtime)."""
    import onnx

    from runtime.manifest import (FileEntry, GoldenInfo, InputSpec, Int8Info, Manifest, ModelInfo, OutputSpec,
                                  TrtCalibrationCache, WeightsInfo)
    from runtime.preprocess import Preprocessing, normalize

    root.mkdir(parents=True)
    arts = {}
    for p in precisions:
        name = "model.onnx" if p == "fp32" else f"model.{p}.onnx"
        onnx.save(fake_graph(size, p), str(root / name))
        data = (root / name).read_bytes()
        arts[p] = FileEntry(file=name, sha256=_sha(data), bytes=len(data))
    pre = Preprocessing(resize=size, crop=size)
    images = np.random.default_rng(0).integers(0, 255, (samples, size, size, 3), dtype=np.uint8)
    if "fp32" not in precisions:  # the reference graph still computes the goldens
        onnx.save(fake_graph(size), str(root.parent / f"{root.name}.reference.onnx"))
    reference = root / "model.onnx" if "fp32" in precisions else root.parent / f"{root.name}.reference.onnx"
    outputs = onnx_logits(reference, normalize(images, pre))
    np.savez_compressed(root / "golden.npz", images=images, outputs=outputs,
                        names=np.array([f"img{i}" for i in range(samples)]))
    int8 = None
    if calib_cache is not None:
        (root / "calib.cache").write_bytes(calib_cache)
        int8 = Int8Info(method="minmax", samples=1, trt_calibration_cache=TrtCalibrationCache(
            file="calib.cache", sha256=_sha(calib_cache), header=calib_cache.split(b"\n")[0].decode()))
    manifest = Manifest(
        model=ModelInfo(name=root.name, architecture="fake", source="onnx", num_classes=CLASSES),
        weights=WeightsInfo(spec="none", random_init=True),
        input=InputSpec(name="input", shape=["batch", 3, size, size], min_batch=1, max_batch=max_batch),
        outputs=[OutputSpec(name="logits", shape=["batch", CLASSES])], reference="onnx", opset=17,
        preprocessing=pre.to_dict(), artifacts=arts, int8=int8,
        golden=GoldenInfo(file="golden.npz", sha256=_sha((root / "golden.npz").read_bytes()), samples=samples,
                          source="random images"))
    (root / "manifest.json").write_text(manifest.sealed().to_json())
    return root


def sidecar_dict(**over) -> dict:
    """A TensorRT sidecar's JSON as `edgeport build` writes it (runtime/engines/build.py: _sidecar)."""
    sc = {"precision": "fp16", "build_path": "strongly-typed", "runtime": "tensorrt", "version": "10.3.0.30",
          "gpu": {"name": "Orin", "compute_capability": "8.7", "total_memory": 8 << 30, "jetson": True},
          "cuda": {"runtime": "12.6", "driver": "12.6"}, "compute_capabilities": [], "default_compute_capabilities": [],
          "source": {"artifact": "fp16", "file": "model.fp16.onnx", "sha256": "0" * 64},
          "input": {"name": "input", "min": [1, 3, 4, 4], "opt": [2, 3, 4, 4], "max": [4, 3, 4, 4]},
          "profile": {"min": 1, "opt": 2, "max": 4}, "dla_core": None, "gpu_fallback": False,
          "hardware_compat": "none", "version_compatible": False, "builder_flags": [],
          "builder_optimization_level": None, "workspace_mib": 2048,
          "timing_cache": {"path": "/c/trt10.3.0.30-sm87-orin.cache", "reused": True}, "runtime_cache": None,
          "calibration_cache": None, "built_at": "2026-01-01T00:00:00+00:00", "build_seconds": 12.5,
          "edgeport": "0.1.0", "build_options": {"precision": "fp16", "min_batch": 1, "opt_batch": 2, "max_batch": 4},
          "rebuild": "edgeport build x --precision fp16", "messages": ["WARNING: x"], "layers": None,
          "engine": {"file": "model.fp16.sm87.trt10.3.0.engine", "sha256": "ab" * 32, "bytes": 10},
          "sidecar_version": 2}
    sc.update(over)
    return sc
