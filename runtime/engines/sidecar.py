"""Engine sidecars: how each engine was built, and the check that runs before loading it.

Every engine ``model.<precision>...engine`` in a bundle has ``<engine>.json`` next to it: an
``EngineSidecar``, written by ``write_engine`` and read by ``list_engines`` (one place each).
Engines stay plain serialized plans (``trtexec --loadEngine`` reads them); the sidecar is a
separate file, and manifest.json is never rewritten (its sha256 values stay valid). Engines
are listed by globbing sidecars; an engine without a sidecar is ignored.

Sidecar schema versions: 1 (edgeport 0.1: TensorRT only, the version under ``tensorrt``)
and 2 (``runtime`` = tensorrt | tensorrt-rtx, ``version``, TensorRT-RTX compute-capability
targets and runtime cache). Version 1 files load as TensorRT sidecars.

Before an engine is deserialized, ``resolve_engine`` compares its sidecar with this
machine and refuses a mismatch, saying what differs and the command that rebuilds it:

- TensorRT: the exact version that built it, unless built ``--version-compatible``
  (then any later release of the same major, plus NVIDIA's documented cross-major pairs
  8 -> 9/10 and 10 -> 11); TensorRT-RTX: the exact release;
- GPU: the same compute capability, unless built ``--hardware-compat ampere+`` (then any
  GPU with compute capability >= 8.0); DLA engines always need the same device;
  TensorRT-RTX engines: one of their target compute capabilities (the library's default
  targets leave out Turing, 7.5);
- integrity: the engine's sha256, and the source ONNX's sha256 against the bundle's
  manifest (a re-exported bundle makes old engines stale).

TensorRT-RTX engines then also pass the library's own ``get_engine_validity`` check in the
runner (runtime/runners/tensorrt_rtx.py), still before deserializing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from pathlib import Path

from runtime.errors import BundleError, EdgeportError
from runtime.fsutil import atomic_write_bytes, sha256_file
from runtime.engines.policy import RTX_DEFAULT_TARGETS, TENSORRT, TENSORRT_RTX, TrtVersion, cc_tuple, product_name

SIDECAR_VERSION = 2
SIDECAR_GLOB = "*.engine.json"
# Cross-major pairs NVIDIA documents for version-compatible engines (built major -> runtime major).
VC_CROSS_MAJOR = {(8, 9), (8, 10), (9, 10), (10, 11)}


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


def _typed(cls, value):
    if not isinstance(value, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in value.items() if k in names})


@dataclasses.dataclass(frozen=True)
class EngineSidecar:
    """Everything recorded about one engine (schema ``SIDECAR_VERSION``)."""

    precision: str = "?"
    build_path: str = ""
    runtime: str = TENSORRT  # tensorrt | tensorrt-rtx
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
        for key in ("compute_capabilities", "default_compute_capabilities", "builder_flags", "messages"):
            data[key] = list(data[key])
        data["sidecar_version"] = SIDECAR_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "EngineSidecar":
        """Read schema 1 or 2; ValueError for anything else (a newer edgeport, or not a sidecar)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("sidecar_version", 1)
        if version not in (1, 2):
            raise ValueError(f"sidecar version {version} (this edgeport reads 1 and 2)")
        plain = {f.name for f in dataclasses.fields(cls)} - {"source", "gpu", "engine", "sidecar_version"}
        values = {k: v for k, v in data.items() if k in plain}
        if version == 1:  # edgeport 0.1: TensorRT only
            values.update(runtime=TENSORRT, version=data.get("tensorrt"), messages=data.get("tensorrt_messages") or ())
        for key in ("compute_capabilities", "default_compute_capabilities", "builder_flags", "messages"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values, source=_typed(SourceArtifact, data.get("source")) or SourceArtifact(),
                   gpu=_typed(BuildGpu, data.get("gpu")), engine=_typed(EngineFile, data.get("engine")))

    @property
    def target_label(self) -> str:
        """The 'provider' column of verify's table: gpu, or dla<N>."""
        return "gpu" if self.dla_core is None else f"dla{self.dla_core}"


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """An engine file and its sidecar."""

    engine_path: Path
    sidecar_path: Path
    sidecar: EngineSidecar

    @property
    def precision(self) -> str:
        return self.sidecar.precision

    @property
    def dla_core(self) -> int | None:
        return self.sidecar.dla_core

    @property
    def runtime(self) -> str:
        return self.sidecar.runtime

    @property
    def target_label(self) -> str:
        return self.sidecar.target_label


# -- writing ---------------------------------------------------------------------------------
_atomic_write = atomic_write_bytes


def write_engine(bundle_root: Path, engine_name: str, plan: bytes, sidecar: EngineSidecar) -> EngineRecord:
    """Write the engine, then its sidecar (with the engine's sha256), both atomically.

    The sidecar goes last: an interrupted write leaves at most an engine without a sidecar,
    which is never listed or loaded.
    """
    import hashlib

    root = Path(bundle_root)
    engine_path = root / engine_name
    sidecar_path = root / (engine_name + ".json")
    sidecar = dataclasses.replace(sidecar, sidecar_version=SIDECAR_VERSION, engine=EngineFile(
        engine_name, hashlib.sha256(plan).hexdigest(), len(plan)))
    try:
        # Remove a stale sidecar first, so a crash between the two writes cannot pair the
        # old sidecar with the new engine.
        with contextlib.suppress(FileNotFoundError):
            sidecar_path.unlink()
        _atomic_write(engine_path, bytes(plan))
        _atomic_write(sidecar_path, (json.dumps(sidecar.to_dict(), indent=2) + "\n").encode())
    except OSError as exc:
        raise EdgeportError(f"Cannot write the engine {engine_path}: {exc}.",
                            hint="Check free space and permissions of the bundle folder.") from exc
    return EngineRecord(engine_path, sidecar_path, sidecar)


# -- reading ----------------------------------------------------------------------------------
def read_sidecar(path: Path) -> EngineSidecar | None:
    """The sidecar at ``path``, or None when it is unreadable, not a sidecar or from a newer edgeport."""
    try:
        return EngineSidecar.from_dict(json.loads(Path(path).read_text()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError):
        return None


def list_engines(bundle, runtime: str | None = None) -> list[EngineRecord]:
    """Every engine with a readable sidecar in the bundle (of ``runtime`` when given), by file name."""
    records = []
    for path in sorted(Path(bundle.root).glob(SIDECAR_GLOB)):
        sidecar = read_sidecar(path)
        if sidecar is None or sidecar.engine is None:
            continue
        name = sidecar.engine.file
        if not isinstance(name, str) or "/" in name or "\\" in name or name != path.name[: -len(".json")]:
            continue
        if runtime is None or sidecar.runtime == runtime:
            records.append(EngineRecord(path.with_name(name), path, sidecar))
    return records


def engine_precisions(bundle, runtime: str = TENSORRT) -> list[str]:
    """Precisions that have at least one ``runtime`` engine (in the precision registry's order)."""
    records = list_engines(bundle)
    have = {r.precision for r in records if r.runtime == runtime}
    from runtime.precision import engine_keys

    found = [p for p in engine_keys(runtime) if p in have]
    if not found:
        others = sorted({r.runtime for r in records} - {runtime})
        also = f" (it has {', '.join(product_name(o) for o in others)} engines: --backend {others[0]})" if others else ""
        raise BundleError(f"Bundle '{bundle.root}' has no {product_name(runtime)} engines yet{also}.",
                          hint=f"Build them: {build_command(bundle.root, 'all', {'runtime': runtime})}")
    return found


# -- commands ---------------------------------------------------------------------------------
def build_command(bundle_root, precision: str = "all", options: dict | None = None) -> str:
    """The exact ``edgeport build`` command for a bundle and a sidecar's recorded options."""
    o = options or {}
    parts = ["edgeport", "build", shlex.quote(str(bundle_root)), "--precision", precision]
    if o.get("runtime") not in (None, TENSORRT):
        parts += ["--runtime", str(o["runtime"])]
    if o.get("compute_capabilities"):
        parts += ["--compute-capability", ",".join(o["compute_capabilities"])]
    for key, flag in (("min_batch", "--min-batch"), ("opt_batch", "--opt-batch"), ("max_batch", "--max-batch"),
                      ("dla_core", "--dla-core"), ("builder_level", "--builder-level")):
        if o.get(key) is not None:
            parts += [flag, str(o[key])]
    if o.get("gpu_fallback"):
        parts.append("--gpu-fallback")
    if o.get("hardware_compat") not in (None, "none"):
        parts += ["--hardware-compat", str(o["hardware_compat"])]
    if o.get("version_compatible"):
        parts.append("--version-compatible")
    if o.get("build_path") not in (None, "auto"):
        parts += ["--build-path", str(o["build_path"])]
    if o.get("runtime_cache"):
        parts += ["--runtime-cache", shlex.quote(str(o["runtime_cache"]))]
    if o.get("no_runtime_cache"):
        parts.append("--no-runtime-cache")
    return " ".join(parts)


def rebuild_command(bundle_root, sidecar: EngineSidecar) -> str:
    return build_command(bundle_root, sidecar.precision, sidecar.build_options)



# -- the check ------------------------------------------------------------------------------------
def _gpu_text(gpu: BuildGpu | None) -> str:
    if gpu is None:
        return "no GPU"
    return f"compute capability {gpu.compute_capability or '?'} ({gpu.name or '?'})"


def _here_text(env) -> str:
    return f"compute capability {env.gpu.compute_capability} ({env.gpu.name})"


def _same_release(built: str, here: str) -> bool:
    b, h = TrtVersion.parse(built), TrtVersion.parse(here)
    return (b.major, b.minor, b.patch) == (h.major, h.minor, h.patch) and (
        not b.build or not h.build or b.build == h.build)


def _version_problems(sidecar: EngineSidecar, env) -> list[str]:
    built_v, here_v, product = sidecar.version, env.tensorrt, sidecar.product
    if here_v is None:
        return [f"{product} is not installed here"]
    if not built_v:
        return [f"the sidecar does not record the {product} version that built the engine"]
    if sidecar.version_compatible and sidecar.runtime == TENSORRT:
        b, h = TrtVersion.parse(built_v), TrtVersion.parse(here_v)
        cross_ok = b.major == h.major or (b.major, h.major) in VC_CROSS_MAJOR
        if (h.major, h.minor, h.patch) < (b.major, b.minor, b.patch) or not cross_ok:
            return [f"it is a version-compatible engine from TensorRT {built_v}, which runs on TensorRT {b.short} or "
                    f"newer of the same major (or NVIDIA's documented next major), not on TensorRT {here_v} here"]
        return []
    if _same_release(built_v, here_v):
        return []
    if sidecar.runtime == TENSORRT_RTX:
        return [f"TensorRT-RTX {built_v} built it, this machine has TensorRT-RTX {here_v} (TensorRT-RTX engines "
                "load only on the release that built them)"]
    return [f"TensorRT {built_v} built it, this machine has TensorRT {here_v} (engines only load "
            "on the exact TensorRT version that built them unless built with --version-compatible)"]


def _rtx_gpu_problems(sidecar: EngineSidecar, env) -> list[str]:
    here = cc_tuple(env.gpu.compute_capability)
    if sidecar.compute_capabilities:
        if here not in {cc_tuple(cc) for cc in sidecar.compute_capabilities}:
            return [f"it was built for compute capabilities {', '.join(sidecar.compute_capabilities)}, and this GPU "
                    f"has {_here_text(env)}"]
    elif here < (8, 0):
        defaults = ", ".join(sidecar.default_compute_capabilities or RTX_DEFAULT_TARGETS)
        return [f"it was built for TensorRT-RTX's default targets ({defaults}), which leave out {_here_text(env)} "
                f"(rebuild with --compute-capability {env.gpu.compute_capability})"]
    return []


def _gpu_problems(sidecar: EngineSidecar, env) -> list[str]:
    if env.gpu is None:
        return ["no CUDA GPU is visible here"]
    if sidecar.runtime == TENSORRT_RTX:
        return _rtx_gpu_problems(sidecar, env)
    built = sidecar.gpu
    if built is None or not built.compute_capability:
        return ["the sidecar does not record the GPU's compute capability"]
    here_cc, built_cc = cc_tuple(env.gpu.compute_capability), cc_tuple(built.compute_capability)
    if sidecar.hardware_compat == "ampere+" and sidecar.dla_core is None:
        if here_cc < (8, 0):
            return [f"it is an ampere+ hardware-compatible engine, which needs compute capability >= 8.0, "
                    f"and this GPU has {_here_text(env)}"]
    elif here_cc != built_cc:
        return [f"it was built for {_gpu_text(built)}, and this GPU has {_here_text(env)}"]
    return []


def compatibility_problems(sidecar: EngineSidecar, env) -> list[str]:
    """What makes the engine unusable on ``env`` (a device.TargetEnv, whose ``tensorrt`` is
    the version of the sidecar's runtime here); empty when it fits."""
    problems = _version_problems(sidecar, env) + _gpu_problems(sidecar, env)
    dla = sidecar.dla_core
    if dla is not None and env.dla_cores is not None and dla >= env.dla_cores:
        problems.append(f"it runs on DLA core {dla}, and TensorRT sees {env.dla_cores} DLA core(s) here")
    return problems


def compatibility_notes(sidecar: EngineSidecar, env) -> list[str]:
    """Differences that do not block loading but are worth a warning."""
    notes = []
    if sidecar.runtime == TENSORRT_RTX:
        defaults = sidecar.default_compute_capabilities or RTX_DEFAULT_TARGETS
        if env.gpu and not sidecar.compute_capabilities and env.gpu.compute_capability not in defaults:
            notes.append(f"compute capability {env.gpu.compute_capability} is not among the default targets NVIDIA "
                         f"documents ({', '.join(defaults)}); TensorRT-RTX's own validity check decides")
        return notes
    built_gpu = sidecar.gpu
    if env.gpu and built_gpu and built_gpu.name and built_gpu.name != env.gpu.name \
            and sidecar.hardware_compat != "ampere+":
        notes.append(f"built on {built_gpu.name}, running on {env.gpu.name} (same compute capability; NVIDIA "
                     "advises rebuilding per GPU model for best performance)")
    built_cuda = sidecar.cuda.get("runtime")
    if built_cuda and env.cuda_runtime and built_cuda.split(".")[0] != env.cuda_runtime.split(".")[0]:
        notes.append(f"built with CUDA {built_cuda}, this machine has CUDA {env.cuda_runtime}")
    return notes


def integrity_problems(record: EngineRecord, bundle, *, check_engine_hash: bool = True) -> list[str]:
    """The engine's sha256 and its source ONNX against the bundle's manifest."""
    problems = []
    sc = record.sidecar
    if not record.engine_path.is_file():
        return [f"the engine file {record.engine_path.name} is missing"]
    expected = sc.engine.sha256 if sc.engine else None
    if check_engine_hash:
        if not expected:
            problems.append("the sidecar records no sha256 for the engine")
        else:
            actual = sha256_file(record.engine_path)
            if actual != expected:
                problems.append(f"the engine's sha256 is {actual[:16]}..., the sidecar recorded {expected[:16]}... "
                                "(the file was truncated, corrupted or replaced)")
    source = sc.source
    art = bundle.manifest.artifacts.get(source.artifact)
    if art is None:
        problems.append(f"its source artifact '{source.artifact}' is no longer in the bundle's manifest")
    elif art.sha256 != source.sha256:
        problems.append(f"it was built from {source.file} with sha256 {str(source.sha256)[:16]}..., and the "
                        f"bundle's {art.file} now has {str(art.sha256)[:16]}... (the bundle was re-exported)")
    return problems


def _rank(record: EngineRecord) -> tuple:
    # Prefer engines built exactly for this device and version (fastest), then the newest.
    sc = record.sidecar
    portable = (sc.hardware_compat not in (None, "none")) + bool(sc.version_compatible) + (
        sc.runtime == TENSORRT_RTX and not sc.compute_capabilities)
    return (portable, -_timestamp(sc.built_at))


def _timestamp(text) -> float:
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


def probe_target(runtime: str = TENSORRT, *, dla: bool = False):
    """This machine as a ``runtime`` engine's sidecar is compared with (imports that library)."""
    from runtime.engines.device import import_tensorrt, probe_env

    if runtime == TENSORRT_RTX:
        from runtime.engines.rtx import import_tensorrt_rtx

        return probe_env(import_tensorrt_rtx("Running TensorRT-RTX engines"))
    return probe_env(import_tensorrt("Running TensorRT engines"), dla=dla)


def resolve_engine(bundle, precision: str, *, runtime: str = TENSORRT, env=None, dla_core: int | None = None,
                   check_engine_hash: bool = True, warn=None) -> EngineRecord:
    """The ``runtime`` engine to load for ``precision`` on this machine, checked; or a refusal.

    Used by ``edgeport verify --backend tensorrt|tensorrt-rtx`` and by predict/bench. ``env``
    defaults to probing this machine (which imports the library). GPU engines are preferred
    unless ``dla_core`` asks for a DLA engine.
    """
    records = [r for r in list_engines(bundle, runtime) if r.precision == precision]
    if dla_core is not None:
        records = [r for r in records if r.dla_core == dla_core]
    elif any(r.dla_core is None for r in records):
        records = [r for r in records if r.dla_core is None]
    where = f" on DLA core {dla_core}" if dla_core is not None else ""
    if not records:
        options = {"dla_core": dla_core, "runtime": runtime}
        raise BundleError(f"Bundle '{bundle.root}' has no {precision} {product_name(runtime)} engine{where}.",
                          hint=f"Build it on this machine: {build_command(bundle.root, precision, options)}")
    if env is None:
        env = probe_target(runtime, dla=any(r.dla_core is not None for r in records))
    checked = [(r, compatibility_problems(r.sidecar, env)) for r in records]
    fitting = sorted((r for r, p in checked if not p), key=_rank)
    if not fitting:
        r, problems = checked[0]
        detail = "; ".join(f"{rec.engine_path.name}: {', '.join(p)}" for rec, p in checked)
        hint = f"Rebuild it on this machine: {rebuild_command(bundle.root, r.sidecar)}"
        if env.gpu is None:
            hint = (f"Run this on the machine with the NVIDIA GPU the engines are for ({product_name(runtime)} "
                    "engines need one to run); install cuda-python there so edgeport can see the GPU.")
        raise EdgeportError(
            f"No {precision} engine in bundle '{bundle.root}' can run here, so none is loaded: {detail}.", hint=hint)
    chosen = fitting[0]
    problems = integrity_problems(chosen, bundle, check_engine_hash=check_engine_hash)
    if problems:
        raise BundleError(f"The engine {chosen.engine_path} is refused before loading: {'; '.join(problems)}.",
                          hint=f"Rebuild it: {rebuild_command(bundle.root, chosen.sidecar)}")
    if warn is not None:
        for note in compatibility_notes(chosen.sidecar, env):
            warn(f"{chosen.engine_path.name}: {note}")
    return chosen
