"""Dump the part of NVIDIA's real TensorRT Python API that edgeport uses into tests/data/trt_api.json.

tests/trt_fake.py builds its fake ``tensorrt`` module from that file and
tests/runtime/engines/test_trt_fake_api.py checks the fake (and edgeport's own calls) against it, so the
fake cannot drift from the real bindings. The tests never run this script: they read the
checked-in JSON only.

Where the data comes from:
- TensorRT 8.6 / 10.x / 11.x: NVIDIA's binding wheels on PyPI (``tensorrt-bindings``,
  ``tensorrt-cu11-bindings``, ``tensorrt-cu12-bindings``) are real pybind11 modules whose
  only missing pieces are libnvinfer and its parser/plugin libraries. A stand-in library
  (nvinfer_standin.c, the handful of factory symbols the module links against) lets them
  import for introspection: classes, enum members and values, methods with their signatures
  (from pybind11's docstrings), properties and whether they are writable. Nothing is built.
- TensorRT-RTX: ``tensorrt_rtx_bindings`` from the environment (``pip install
  tensorrt-rtx-cu12-libs==1.7.1.116 tensorrt-rtx-cu12-bindings==1.7.1.116``); it imports
  for real, without a GPU.
- Pure virtual hooks a Python subclass must implement (calibrators, loggers) are not
  visible from Python: they are read from the trampoline error strings in the binding's
  shared object ('Tried to call pure virtual function "IInt8LegacyCalibrator::get_quantile"').

Regenerate (network for pip; gcc; about a minute):
    .venv/bin/python scripts/trt_api/dump_api.py            # writes tests/data/trt_api.json
    .venv/bin/python scripts/trt_api/dump_api.py --work /tmp/trt_api --out other.json

When edgeport starts using another TensorRT attribute, add it to ENUMS / CLASSES /
FUNCTIONS below and regenerate: test_trt_fake_api.py fails until the data file covers
every ``trt.X`` and every builder/config/parser/runtime/engine/context method the code uses.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "trt_api.json"

# (key in the JSON, pip requirement or None for "already installed", import name)
TARGETS = (
    ("tensorrt 8.6.1", "tensorrt-bindings==8.6.1", "tensorrt_bindings"),
    ("tensorrt 10.13.0.35", "tensorrt-cu11-bindings==10.13.0.35", "tensorrt_bindings"),
    ("tensorrt 11.4.0.106", "tensorrt-cu12-bindings==11.4.0.106", "tensorrt_bindings"),
    ("tensorrt_rtx 1.7.1.116", None, "tensorrt_rtx_bindings"),
)

# Enums: every member with its value (they are small, and the fake rebuilds them whole).
ENUMS = (
    "NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "HardwareCompatibilityLevel", "DeviceType",
    "TensorIOMode", "DataType", "ILogger.Severity", "CalibrationAlgoType", "ProfilingVerbosity",
    "ComputeCapability", "EngineValidity",
)

_CALIBRATOR = ("__init__", "get_batch_size", "get_batch", "get_algorithm", "read_calibration_cache",
               "write_calibration_cache")
# Classes and the members edgeport (runtime/trt, runtime/runners/tensorrt.py) or the fake use.
CLASSES = {
    "Builder": ("__init__", "create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network", "num_DLA_cores"),
    "IBuilderConfig": ("set_memory_pool_limit", "get_memory_pool_limit", "set_flag", "clear_flag", "get_flag",
                       "builder_optimization_level", "hardware_compatibility_level", "default_device_type",
                       "DLA_core", "add_optimization_profile", "num_optimization_profiles", "int8_calibrator",
                       "set_calibration_profile", "create_timing_cache", "set_timing_cache", "get_timing_cache",
                       "profiling_verbosity", "set_compute_capability", "get_compute_capability",
                       "num_compute_capabilities"),
    "INetworkDefinition": (),
    "OnnxParser": ("__init__", "parse", "parse_from_file", "num_errors", "get_error"),
    "ParserError": ("__str__", "desc", "node"),
    "IOptimizationProfile": ("set_shape", "get_shape"),
    "ITimingCache": ("serialize",),
    "IHostMemory": ("nbytes",),
    "Runtime": ("__init__", "deserialize_cuda_engine", "DLA_core", "num_DLA_cores", "engine_host_code_allowed",
                "get_engine_validity"),
    "ICudaEngine": ("num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_dtype", "get_tensor_shape",
                    "get_tensor_profile_shape", "create_execution_context", "create_runtime_config"),
    "IExecutionContext": ("set_input_shape", "get_tensor_shape", "set_tensor_address", "get_tensor_address",
                          "execute_async_v3"),
    "ILogger": ("__init__", "log", "Severity", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"),
    "Logger": ("__init__", "log", "min_severity", "Severity", "INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"),
    "IInt8Calibrator": _CALIBRATOR,
    "IInt8EntropyCalibrator": _CALIBRATOR,
    "IInt8EntropyCalibrator2": _CALIBRATOR,
    "IInt8MinMaxCalibrator": _CALIBRATOR,
    "IInt8LegacyCalibrator": _CALIBRATOR,
    "IRuntimeConfig": ("create_runtime_cache", "set_runtime_cache", "get_runtime_cache"),
    "IRuntimeCache": ("serialize", "deserialize"),
}
FUNCTIONS = ("nptype",)

_PREFIX = re.compile(r"\b(?:tensorrt\w*_bindings\.)?tensorrt(?:_rtx)?\.(?=[A-Z])|\bpybind11_builtins\.")
_PURE = re.compile(rb'Tried to call pure virtual function "(\w+)::(\w+)"')


# -- introspection (runs in a child process with the bindings importable) -------------------------
def _clean(text: str) -> str:
    return _PREFIX.sub("", text)


def _split_params(text: str) -> list[str]:
    """Split a pybind11 parameter list at top-level commas (types contain brackets and commas)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(<{":
            depth += 1
        elif ch in "])>}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _signatures(name: str, doc: str) -> list[dict]:
    """pybind11 writes 'name(self: T, a: int, b: X = default) -> R' (numbered when overloaded)."""
    sigs = []
    pattern = re.compile(r"^(?:\d+\. )?" + re.escape(name) + r"\((.*)\) -> (.+)$")
    for line in (doc or "").splitlines():
        m = pattern.match(line.strip())
        if not m or m.group(1) == "*args, **kwargs":
            continue
        params = _split_params(_clean(m.group(1)))
        if params and re.match(r"^(self|arg0)\b", params[0]):
            params = params[1:]
        sigs.append({"params": params, "returns": _clean(m.group(2)).strip()})
    return sigs


def _member(cls, name: str) -> dict | None:
    for klass in cls.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            break
    else:
        return None
    if isinstance(raw, property):
        sig = _signatures("", "(" + (raw.fget.__doc__ or "").strip().split("(", 1)[-1]) if raw.fget else []
        return {"kind": "property", "writable": raw.fset is not None, "type": sig[0]["returns"] if sig else None}
    if inspect.isclass(raw):
        return {"kind": "class"}
    if hasattr(type(raw), "__members__") and hasattr(raw, "value"):
        return {"kind": "enum_value", "value": int(raw)}
    if isinstance(raw, staticmethod):
        raw = raw.__func__
    if callable(raw):
        if inspect.isfunction(raw):  # a Python wrapper from the package's __init__.py
            return {"kind": "method", "signatures": [_py_signature(raw, drop_self=True)]}
        return {"kind": "method", "signatures": _signatures(name, raw.__doc__)}
    return {"kind": type(raw).__name__}


def _py_signature(fn, drop_self=False) -> dict:
    params = [str(p) for p in inspect.signature(fn).parameters.values()]
    return {"params": params[1:] if drop_self else params, "returns": None}


def _pure_virtuals(so_path: Path) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for cls, method in _PURE.findall(so_path.read_bytes()):
        found.setdefault(cls.decode(), set()).add(method.decode())
    return {k: sorted(v) for k, v in found.items()}


def introspect(module_name: str) -> dict:
    """The API entry for one imported bindings module (see the module docstring)."""
    mod = importlib.import_module(module_name)
    so = next(p for p in Path(mod.__file__).parent.glob("tensorrt*.so"))
    pure = _pure_virtuals(so)
    out = {"module": module_name, "version": mod.__version__, "enums": {}, "classes": {}, "functions": {}}
    for dotted in ENUMS:
        obj = mod
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        out["enums"][dotted] = None if obj is None else {k: int(v) for k, v in obj.__members__.items()}
    for name, members in CLASSES.items():
        cls = getattr(mod, name, None)
        if cls is None:
            out["classes"][name] = None
            continue
        bases = [b.__name__ for b in cls.__mro__[1:] if b.__module__.startswith(module_name)]
        entry = {"bases": bases, "dynamic_attributes": cls.__dictoffset__ != 0,
                 "members": {m: _member(cls, m) for m in members}}
        # Hooks TensorRT calls on a Python subclass that have no default: the trampoline of
        # the calibrators is a template whose error names its parameter "Derived".
        hooks = set(pure.get(name, ()))
        if "IInt8Calibrator" in bases:
            hooks |= set(pure.get("Derived", ()))
        if name == "IInt8Calibrator":
            hooks |= set(pure.get("Derived", ()))
        if name == "Logger":
            hooks = set()  # trt.Logger is NVIDIA's own logger: log() is implemented
        elif "ILogger" in bases:
            hooks |= set(pure.get("ILogger", ()))
        if hooks:
            entry["pure_virtual"] = sorted(hooks)
        out["classes"][name] = entry
    for name in FUNCTIONS:
        fn = getattr(mod, name, None)
        out["functions"][name] = None if fn is None else _py_signature(fn)
    return out


# -- driver: fetch wheels, build the stand-in, introspect each in a child process ---------------
def _needed_libs(so_path: Path) -> list[str]:
    text = subprocess.run(["readelf", "-d", str(so_path)], check=True, capture_output=True, text=True).stdout
    return [n for n in re.findall(r"Shared library: \[(.+?)\]", text) if re.match(r"libnv\w+\.so\.\d+$", n)]


def _unpack(requirement: str, work: Path) -> Path:
    name = requirement.replace("==", "-")
    dest = work / name
    if not dest.is_dir():
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", f"{sys.version_info.major}{sys.version_info.minor}",
                        requirement, "-d", str(wheels)], check=True)
        dist = requirement.split("==")[0].replace("-", "_")
        wheel = next(wheels.glob(f"{dist}-{requirement.split('==')[1]}-*.whl"))
        tmp = work / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp)
        tmp.rename(dest)
    return dest


def _standin(work: Path, needed: list[str]) -> Path:
    lib = work / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    so = lib / "libnvinfer_standin.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(so), str(HERE / "nvinfer_standin.c")],
                   check=True)
    for name in needed:
        link = lib / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(so.name)
    return lib


def dump_one(requirement: str | None, module: str, work: Path) -> dict:
    env = dict(os.environ)
    if requirement is not None:
        root = _unpack(requirement, work)
        so = next((root / module).glob("tensorrt*.so"))
        lib = _standin(work, _needed_libs(so))
        # The dynamic loader reads LD_LIBRARY_PATH at process start, hence the child process.
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, __file__, "--introspect", module], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"introspecting {module} ({requirement or 'installed'}) failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout)
    data["source"] = f"pip: {requirement}" if requirement else f"pip: installed {module} (imports for real)"
    return data


def _format(obj, indent: int = 0) -> str:
    """JSON with one line per enum and per class member, so diffs between versions read well."""
    if not isinstance(obj, dict) or not any(isinstance(v, dict) for v in obj.values()):
        return json.dumps(obj)
    pad = " " * (indent + 1)
    items = [f"{pad}{json.dumps(k)}: {_format(v, indent + 1)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgeport-trt-api"), help="download/unpack folder")
    ap.add_argument("--introspect", metavar="MODULE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.introspect:
        json.dump(introspect(args.introspect), sys.stdout)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    apis = {key: dump_one(req, module, args.work) for key, req, module in TARGETS}
    doc = {
        "about": "NVIDIA's real TensorRT Python API, limited to what edgeport and tests/trt_fake.py use. "
                 "Generated by scripts/trt_api/dump_api.py; do not edit by hand.",
        "apis": apis,
    }
    text = _format(doc) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(text)} bytes): {', '.join(apis)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
