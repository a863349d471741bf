"""A fake ``tensorrt`` module and fake GPU memory for CPU tests of edgeport's TensorRT layer.

The fake implements only the documented API edgeport calls, per version: enum members
that a release removed are absent (BuilderFlag.FP16/INT8 and the INT8 calibrators in 11.x,
EXPLICIT_BATCH-only networks in 8.6), so code that would break on a real TensorRT of that
version breaks here too. Every call is recorded in ``trt.calls`` for assertions.

The fake "engine" computes ``logits = 2 * x.reshape(n, -1)[:, :classes]`` (see fake_logits),
reading its input from and writing its output to FakeMemory by address, the way a real
engine uses the addresses given to set_tensor_address.
"""

from __future__ import annotations

import enum
import hashlib
import json
from pathlib import Path

import numpy as np

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


class FakeTRT:
    """``import tensorrt`` for one version; ``calls`` records what edgeport did with it."""

    def __init__(self, version: str, *, dla_cores: int = 0, build_fails: bool = False, memory: FakeMemory | None = None,
                 has_strongly_typed_flag: bool = True):
        self.__version__ = version
        self.major = int(version.split(".")[0])
        self.calls: list[tuple] = []
        self.dla_cores = dla_cores
        self.build_fails = build_fails
        self.memory = memory
        trt = self
        net_flags = {"EXPLICIT_BATCH": 0}
        if self.major >= 10 and (self.major < 11 or has_strongly_typed_flag):
            net_flags["STRONGLY_TYPED"] = 1
        if self.major >= 11:
            net_flags.pop("EXPLICIT_BATCH")
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", net_flags)
        bflags = ["TF32", "GPU_FALLBACK", "VERSION_COMPATIBLE", "REFIT"]
        if self.major < 11:
            bflags += ["FP16", "INT8"]
        self.BuilderFlag = enum.IntEnum("BuilderFlag", {n: i for i, n in enumerate(bflags)})
        self.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
        self.HardwareCompatibilityLevel = enum.IntEnum("HardwareCompatibilityLevel", {"NONE": 0, "AMPERE_PLUS": 1})
        self.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
        self.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
        self.DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2})

        class ILogger:
            Severity = enum.IntEnum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3,
                                                 "VERBOSE": 4})

            def __init__(self):
                pass

        self.ILogger = ILogger
        self.Logger = ILogger

        if self.major < 11:
            class _CalibBase:
                def __init__(self):
                    pass

            self.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (_CalibBase,), {})
            self.IInt8MinMaxCalibrator = type("IInt8MinMaxCalibrator", (_CalibBase,), {})

        class Profile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, lo, opt, hi):
                trt.calls.append(("profile.set_shape", name, tuple(lo), tuple(opt), tuple(hi)))
                self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))

        class TimingCache:
            def __init__(self, data):
                self.data = bytes(data)

            def serialize(self):
                return memoryview(self.data + b"|timed")

        class Config:
            def __init__(self):
                object.__setattr__(self, "values", {"flags": set()})

            def __setattr__(self, name, value):
                if name == "int8_calibrator" and trt.major >= 11:
                    raise AttributeError("'IBuilderConfig' object has no attribute 'int8_calibrator'")
                trt.calls.append(("config." + name, value))
                self.values[name] = value

            def set_memory_pool_limit(self, pool, size):
                trt.calls.append(("config.set_memory_pool_limit", pool.name, size))

            def set_flag(self, flag):
                trt.calls.append(("config.set_flag", flag.name))
                self.values["flags"].add(flag.name)

            def clear_flag(self, flag):
                trt.calls.append(("config.clear_flag", flag.name))
                self.values["flags"].discard(flag.name)

            def add_optimization_profile(self, profile):
                self.values["profile"] = profile
                return 0

            def set_calibration_profile(self, profile):
                trt.calls.append(("config.set_calibration_profile",))

            def create_timing_cache(self, data):
                trt.calls.append(("config.create_timing_cache", bytes(data)))
                return TimingCache(data)

            def set_timing_cache(self, cache, ignore_mismatch):
                ok = cache.data != b"other-gpu"
                trt.calls.append(("config.set_timing_cache", cache.data, ok))
                if ok:
                    self.values["timing_cache"] = cache
                return ok

            def get_timing_cache(self):
                return self.values["timing_cache"]

        class Network:
            def __init__(self, flags):
                self.flags = flags

        class Parser:
            def __init__(self, network, logger):
                self.num_errors = 0

            def parse_from_file(self, path):
                trt.calls.append(("parser.parse_from_file", Path(path).name))
                if Path(path).read_bytes().startswith(b"BROKEN"):
                    self.num_errors = 1
                    return False
                return True

            def get_error(self, i):
                return "In node 0 (importConv): unsupported"

        class Builder:
            def __init__(self, logger):
                self.logger = logger
                self.num_DLA_cores = trt.dla_cores

            def create_network(self, flags):
                trt.calls.append(("builder.create_network", flags))
                return Network(flags)

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                calib = config.values.get("int8_calibrator")
                calib_cache = calib.read_calibration_cache() if calib is not None else None
                trt.calls.append(("builder.build_serialized_network", sorted(config.values["flags"])))
                if trt.build_fails:
                    self.logger.log(trt.ILogger.Severity.ERROR, "Requested amount of GPU memory could not be allocated")
                    return None
                profile = config.values["profile"]
                desc = {"version": trt.__version__, "flags": sorted(config.values["flags"]),
                        "profile": {k: [list(s) for s in v] for k, v in profile.shapes.items()},
                        "calib": calib_cache.decode() if calib_cache else None,
                        "dla_core": config.values.get("DLA_core"), "network_flags": network.flags}
                return memoryview(b"FAKEPLAN" + json.dumps(desc).encode())

        class Context:
            def __init__(self, engine):
                self.engine = engine
                self.shapes = {}
                self.addresses = {}

            def set_input_shape(self, name, shape):
                trt.calls.append(("context.set_input_shape", name, tuple(shape)))
                lo, _, hi = self.engine.profile[name]
                if not lo[0] <= shape[0] <= hi[0]:
                    return False
                self.shapes[name] = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                if name == "input":
                    return self.shapes["input"]
                return (self.shapes["input"][0], CLASSES)

            def set_tensor_address(self, name, ptr):
                self.addresses[name] = ptr

            def execute_async_v3(self, stream_handle):
                trt.calls.append(("context.execute_async_v3", stream_handle))
                shape = self.shapes["input"]
                mem = trt.memory
                n = int(np.prod(shape))
                x = np.frombuffer(bytes(mem.blocks[self.addresses["input"]][: n * 4]), np.float32).reshape(shape)
                out = fake_logits(x).tobytes()
                mem.blocks[self.addresses["logits"]][: len(out)] = out
                return True

        class Engine:
            num_io_tensors = 2

            def __init__(self, desc):
                self.desc = desc
                self.profile = {k: tuple(tuple(s) for s in v) for k, v in desc["profile"].items()}

            def get_tensor_name(self, i):
                return ("input", "logits")[i]

            def get_tensor_mode(self, name):
                return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

            def get_tensor_dtype(self, name):
                return trt.DataType.FLOAT

            def get_tensor_shape(self, name):
                return (-1, *self.profile["input"][0][1:]) if name == "input" else (-1, CLASSES)

            def get_tensor_profile_shape(self, name, index):
                return self.profile[name]

            def create_execution_context(self):
                return Context(self)

        class Runtime:
            def __init__(self, logger):
                self.logger = logger

            def __setattr__(self, name, value):
                trt.calls.append(("runtime." + name, value))
                object.__setattr__(self, name, value)

            def deserialize_cuda_engine(self, data):
                trt.calls.append(("runtime.deserialize_cuda_engine", len(data)))
                if not data.startswith(b"FAKEPLAN"):
                    self.logger.log(trt.ILogger.Severity.ERROR, "Serialization assertion magicTagRead failed")
                    return None
                return Engine(json.loads(data[len(b"FAKEPLAN"):]))

        self.Builder, self.OnnxParser, self.Runtime = Builder, Parser, Runtime

    def nptype(self, dtype):
        return {0: np.float32, 1: np.float16, 2: np.int8}[int(dtype)]

    def called(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_bundle(root: Path, *, precisions=("fp32", "fp16", "int8"), max_batch: int = 4, size: int = 4,
                calib_cache: bytes | None = b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n", samples: int = 5) -> Path:
    """A minimal bundle folder (fake ONNX bytes; real manifest, golden set and sha256s)."""
    from runtime.preprocess import Preprocessing, normalize

    root.mkdir(parents=True)
    arts = {}
    for p in precisions:
        name = "model.onnx" if p == "fp32" else f"model.{p}.onnx"
        data = f"fake onnx {p}".encode()
        (root / name).write_bytes(data)
        arts[p] = {"file": name, "sha256": _sha(data), "bytes": len(data)}
    pre = Preprocessing(resize=size, crop=size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (samples, size, size, 3), dtype=np.uint8)
    outputs = fake_logits(normalize(images, pre))
    np.savez_compressed(root / "golden.npz", images=images, outputs=outputs,
                        names=np.array([f"img{i}" for i in range(samples)]))
    manifest = {
        "schema_version": 1,
        "model": {"name": root.name, "num_classes": CLASSES, "class_names": None},
        "weights": {"spec": "none", "random_init": True},
        "input": {"name": "input", "shape": ["batch", 3, size, size], "dtype": "float32", "min_batch": 1,
                  "max_batch": max_batch},
        "output": {"name": "logits", "shape": ["batch", CLASSES], "dtype": "float32"},
        "preprocessing": pre.to_dict(),
        "artifacts": arts,
        "golden": {"file": "golden.npz", "sha256": _sha((root / "golden.npz").read_bytes()), "samples": samples,
                   "source": "fake"},
    }
    if calib_cache is not None:
        (root / "calib.cache").write_bytes(calib_cache)
        manifest["int8"] = {"method": "minmax", "samples": 1,
                            "trt_calibration_cache": {"file": "calib.cache", "sha256": _sha(calib_cache)}}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
