"""The engine sidecar's types, and its one strict reader: every field's type and range, or a BundleError naming it.

``EngineSidecar.from_dict`` calls ``read_fields``; nothing else reads a sidecar's JSON
(runtime/engines/sidecar.py writes and lists sidecars and checks them against this machine). A
bundle may come from elsewhere, so a malformed value (a negative batch, a runtime edgeport
does not know, a command-line option that is not a number) is refused with the sidecar's file
name and the field ("engine sidecar model.int8....engine.json: profile.max must be a
positive integer <= 4096, got -5") before anything is compared, printed or loaded. Unknown
fields and schema versions other than this edgeport's are refused too.
"""

from __future__ import annotations

import dataclasses
import re

from runtime.engines.registry import DEFAULT_RUNTIME, product_name
from runtime.errors import BundleError

SIDECAR_VERSION = 2

# The largest batch `edgeport export --max-batch` accepts, so no engine profile can exceed it.
MAX_BATCH = 4096
_CC = re.compile(r"^\d{1,2}\.\d$")  # a compute capability, "8.6"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+){0,2}$")
_FILE = re.compile(r"^[^/\\]+\.engine$")
CC_WANT = "a compute capability such as 8.6"
HINT = "Rebuild the engine with `edgeport build`, or delete the engine and its sidecar."


# -- the sidecar ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SourceArtifact:
    """The bundle artifact an engine was built from."""

    artifact: str | None = None
    file: str | None = None
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class EngineFile:
    file: str
    sha256: str | None = None
    bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class BuildGpu:
    """The GPU the engine was built on (TensorRT); TensorRT-RTX AOT builds may have none."""

    name: str | None = None
    compute_capability: str | None = None
    total_memory: int | None = None
    jetson: bool = False


@dataclasses.dataclass(frozen=True)
class EngineSidecar:
    """Everything recorded about one engine (schema ``SIDECAR_VERSION``)."""

    precision: str = "?"
    build_path: str = ""
    runtime: str = DEFAULT_RUNTIME  # a key of runtime.engines.registry.ENGINE_RUNTIMES
    version: str | None = None  # the TensorRT / TensorRT-RTX release that built it
    source: SourceArtifact = SourceArtifact()
    gpu: BuildGpu | None = None
    cuda: dict = dataclasses.field(default_factory=dict)  # {"runtime", "driver"} of the build machine
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets; () = the library's default
    default_compute_capabilities: tuple[str, ...] = ()  # what that default was (TensorRT-RTX)
    input: dict = dataclasses.field(default_factory=dict)  # {"name", "min", "opt", "max"} shapes
    profile: dict = dataclasses.field(default_factory=dict)  # {"min", "opt", "max"} batch
    dla_core: int | None = None
    gpu_fallback: bool = False
    hardware_compat: str = "none"
    version_compatible: bool = False
    builder_flags: tuple[str, ...] = ()
    graph_rewrites: tuple[str, ...] = ()  # applied to a copy of the source graph before parsing (turing.py)
    builder_optimization_level: int | None = None
    workspace_mib: int | None = None
    timing_cache: dict = dataclasses.field(default_factory=dict)  # {"path", "reused"}
    runtime_cache: dict | None = None  # TensorRT-RTX: {"enabled", "path"} (path None: the default on the target)
    calibration_cache: str | None = None
    built_at: str | None = None
    build_seconds: float | None = None
    edgeport: str | None = None
    build_options: dict = dataclasses.field(default_factory=dict)
    rebuild: str | None = None
    messages: tuple[str, ...] = ()  # the library's warnings and errors during the build
    # What the engine is made of, read from the builder's layer information (runtime/engines/layers.py:
    # LayerSummary.to_dict()); None when the build did not log it (TensorRT builds today).
    layers: dict | None = None
    engine: EngineFile | None = None
    sidecar_version: int = SIDECAR_VERSION

    @property
    def product(self) -> str:
        return product_name(self.runtime)

    def to_dict(self) -> dict:
        """The JSON layout of schema version ``SIDECAR_VERSION``."""
        data = dataclasses.asdict(self)
        for key in ("compute_capabilities", "default_compute_capabilities", "builder_flags", "graph_rewrites",
                    "messages"):
            data[key] = list(data[key])
        data["sidecar_version"] = SIDECAR_VERSION
        return data

    @classmethod
    def from_dict(cls, data, name: str = "engine.json") -> "EngineSidecar":
        """The sidecar in ``data`` (parsed JSON), every field checked; BundleError naming the
        field (and the sidecar file ``name``) for anything malformed."""
        return cls(**read_fields(data, name))

    @property
    def target_label(self) -> str:
        """The 'provider' column of verify's table: gpu, or dla<N>."""
        return "gpu" if self.dla_core is None else f"dla{self.dla_core}"



# -- the reader --------------------------------------------------------------------------------------
class _Fields:
    """Typed look-ups into one JSON object of a sidecar (``path`` prefixes the field names)."""

    def __init__(self, name: str, data, path: str = "", known: tuple[str, ...] | None = None):
        self.name, self.path = name, path
        if not isinstance(data, dict):
            raise self.error(path.rstrip(".") or "the sidecar", "a JSON object", data)
        self.data = data
        unknown = sorted(set(data) - set(known)) if known is not None else []
        if unknown:
            raise BundleError(f"engine sidecar {name}: unknown field {path}{unknown[0]} (this edgeport writes "
                              f"{', '.join(path + k for k in known)}).", hint=HINT)

    def error(self, field: str, want: str, value) -> BundleError:
        return BundleError(f"engine sidecar {self.name}: {field} must be {want}, got {value!r}.", hint=HINT)

    def _get(self, key: str, optional: bool):
        if key not in self.data and not optional:
            raise BundleError(f"engine sidecar {self.name}: the field {self.path}{key} is missing.", hint=HINT)
        return self.data.get(key)

    def text(self, key: str, *, optional: bool = False, choices=None, pattern=None, want: str = "a string"):
        value = self._get(key, optional)
        if value is None and optional:
            return None
        ok = isinstance(value, str) and (choices is None or value in choices) and (
            pattern is None or pattern.match(value))
        if not ok:
            raise self.error(self.path + key, f"one of {', '.join(choices)}" if choices else want, value)
        return value

    def integer(self, key: str, lo: int, hi: int | None = None, *, optional: bool = False, want: str = ""):
        value = self._get(key, optional)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
            raise self.error(self.path + key, want or f"an integer >= {lo}" + (f" and <= {hi}" if hi else ""), value)
        return value

    def batch(self, key: str, *, optional: bool = False):
        return self.integer(key, 1, MAX_BATCH, optional=optional,
                            want=f"a positive integer <= {MAX_BATCH}")

    def number(self, key: str):
        value = self._get(key, True)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            raise self.error(self.path + key, "a number >= 0", value)
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._get(key, True)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(self.path + key, "true or false", value)
        return value

    def texts(self, key: str, *, pattern=None, want: str = "a list of strings") -> tuple[str, ...]:
        value = self._get(key, True)
        value = [] if value is None else value
        if not isinstance(value, list) or not all(isinstance(v, str) and (pattern is None or pattern.match(v))
                                                  for v in value):
            raise self.error(self.path + key, want, value)
        return tuple(value)

    def section(self, key: str, known: tuple[str, ...] | None, *, optional: bool = False) -> "_Fields | None":
        value = self._get(key, optional)
        if value is None and optional:
            return None
        return _Fields(self.name, value, f"{self.path}{key}.", known)


def read_fields(data, name: str) -> dict:
    """EngineSidecar's constructor arguments from the parsed JSON of sidecar ``name``."""
    known = tuple(f for f in EngineSidecar.__dataclass_fields__)
    f = _Fields(name, data, known=known)
    f.integer("sidecar_version", SIDECAR_VERSION, SIDECAR_VERSION,
              want=f"{SIDECAR_VERSION} (this edgeport's sidecar schema; rebuild engines after upgrading edgeport)")
    values = {"sidecar_version": SIDECAR_VERSION, **_build(f), **_origin(f), **_shapes(f)}
    values.update(_target(f))
    values["build_options"] = _options(f)
    return values


def _build(f: _Fields) -> dict:
    """What was built: precision, runtime and its release, the build path and flags."""
    from runtime.engines.policy import DLA_IMPLICIT, FLAGS, PRECISIONS, STRONGLY_TYPED
    from runtime.engines.registry import ENGINE_RUNTIMES

    return {
        "precision": f.text("precision", choices=PRECISIONS),
        "runtime": f.text("runtime", choices=tuple(ENGINE_RUNTIMES)),
        "version": f.text("version", pattern=_VERSION, want="a release number such as 10.3.0.30"),
        "build_path": f.text("build_path", choices=(STRONGLY_TYPED, FLAGS, DLA_IMPLICIT)),
        "builder_flags": f.texts("builder_flags", pattern=re.compile(r"^[A-Z0-9_]+$"),
                                 want="a list of BuilderFlag names"),
        "graph_rewrites": f.texts("graph_rewrites", pattern=re.compile(r"^gemm-as-conv1x1$"),
                                  want="a list of known graph rewrites (gemm-as-conv1x1)"),
        "builder_optimization_level": f.integer("builder_optimization_level", 0, 5, optional=True),
        "workspace_mib": f.integer("workspace_mib", 1, optional=True),
        "messages": f.texts("messages"),
        "layers": None if f.section("layers", None, optional=True) is None else f.data["layers"],
    }


def _origin(f: _Fields) -> dict:
    """Where it came from: the source artifact, the engine file, the build machine and time."""
    src = f.section("source", ("artifact", "file", "sha256"))
    eng = f.section("engine", ("file", "sha256", "bytes"))
    gpu = f.section("gpu", ("name", "compute_capability", "total_memory", "jetson"), optional=True)
    cuda = f.section("cuda", ("runtime", "driver"), optional=True)
    return {
        "source": SourceArtifact(src.text("artifact"), src.text("file"),
                                 src.text("sha256", pattern=_SHA256, want="a sha256 (64 hex digits)")),
        "engine": EngineFile(eng.text("file", pattern=_FILE, want="a file name ending in .engine"),
                             eng.text("sha256", pattern=_SHA256, want="a sha256 (64 hex digits)"),
                             eng.integer("bytes", 0)),
        "gpu": None if gpu is None else BuildGpu(
            gpu.text("name", optional=True), gpu.text("compute_capability", pattern=_CC, want=CC_WANT),
            gpu.integer("total_memory", 0, optional=True), gpu.flag("jetson")),
        "cuda": {} if cuda is None else {k: cuda.text(k, optional=True) for k in ("runtime", "driver") if k in cuda.data},
        "built_at": f.text("built_at", optional=True),
        "build_seconds": f.number("build_seconds"),
        "edgeport": f.text("edgeport", optional=True),
        "rebuild": f.text("rebuild", optional=True),
    }


def _shapes(f: _Fields) -> dict:
    """The batch profile and the input shapes it gives, which must agree."""
    prof = f.section("profile", ("min", "opt", "max"))
    batches = {k: prof.batch(k) for k in ("min", "opt", "max")}
    if not batches["min"] <= batches["opt"] <= batches["max"]:
        raise prof.error("profile", "min <= opt <= max", f.data["profile"])
    inp = f.section("input", ("name", "min", "opt", "max"))
    shapes = {"name": inp.text("name")}
    for k in ("min", "opt", "max"):
        shape = inp.data.get(k)
        ok = isinstance(shape, list) and len(shape) >= 1 and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        if not ok or shape[0] != batches[k]:
            raise inp.error(f"input.{k}", f"a shape of positive integers whose batch is profile.{k} "
                                          f"({batches[k]})", shape)
        shapes[k] = shape
    return {"profile": batches, "input": shapes}


def _target(f: _Fields) -> dict:
    """What the engine targets: compute capabilities, DLA, compatibility levels, caches."""
    from runtime.engines.policy import HARDWARE_COMPAT

    timing = f.section("timing_cache", ("path", "reused"), optional=True)
    rcache = f.section("runtime_cache", ("enabled", "path"), optional=True)
    return {
        "compute_capabilities": f.texts("compute_capabilities", pattern=_CC, want="a list of " + CC_WANT + "s"),
        "default_compute_capabilities": f.texts("default_compute_capabilities", pattern=_CC,
                                                want="a list of " + CC_WANT + "s"),
        "dla_core": f.integer("dla_core", 0, 15, optional=True),
        "gpu_fallback": f.flag("gpu_fallback"),
        "hardware_compat": f.text("hardware_compat", choices=HARDWARE_COMPAT),
        "version_compatible": f.flag("version_compatible"),
        "timing_cache": {} if timing is None else {k: v for k, v in (
            ("path", timing.text("path", optional=True)), ("reused", timing.flag("reused"))) if k in timing.data},
        "runtime_cache": None if rcache is None else {"enabled": rcache.flag("enabled", True),
                                                       "path": rcache.text("path", optional=True)},
        "calibration_cache": f.text("calibration_cache", optional=True),
    }


def _options(f: _Fields) -> dict:
    """The build options the rebuild command is made of (they end up in a printed shell command)."""
    from runtime.engines.policy import FLAGS, HARDWARE_COMPAT, PRECISIONS, STRONGLY_TYPED
    from runtime.engines.registry import ENGINE_RUNTIMES

    o = f.section("build_options", ("precision", "min_batch", "opt_batch", "max_batch", "dla_core", "gpu_fallback",
                                    "builder_level", "hardware_compat", "version_compatible", "build_path",
                                    "runtime", "compute_capabilities", "runtime_cache", "no_runtime_cache"))
    out = {"precision": o.text("precision", choices=PRECISIONS)}
    for key in ("min_batch", "opt_batch", "max_batch"):
        out[key] = o.batch(key, optional=True)
    out.update(dla_core=o.integer("dla_core", 0, 15, optional=True),
               builder_level=o.integer("builder_level", 0, 5, optional=True),
               gpu_fallback=o.flag("gpu_fallback"), version_compatible=o.flag("version_compatible"),
               no_runtime_cache=o.flag("no_runtime_cache"),
               hardware_compat=o.text("hardware_compat", optional=True, choices=HARDWARE_COMPAT),
               build_path=o.text("build_path", optional=True, choices=("auto", STRONGLY_TYPED, FLAGS)),
               runtime=o.text("runtime", optional=True, choices=tuple(ENGINE_RUNTIMES)),
               compute_capabilities=list(o.texts("compute_capabilities", pattern=_CC,
                                                 want="a list of " + CC_WANT + "s")),
               runtime_cache=o.text("runtime_cache", optional=True))
    return {k: v for k, v in out.items() if k in o.data}
