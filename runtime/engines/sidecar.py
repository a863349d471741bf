"""Engine sidecars: how each engine was built, and the check that runs before loading it.

Every engine ``model.<precision>...engine`` in a bundle has ``<engine>.json`` next to it: an
``EngineSidecar``, written by ``write_engine`` and read by ``list_engines`` (one place each).
Engines stay plain serialized plans (``trtexec --loadEngine`` reads them); the sidecar is a
separate file, and manifest.json is never rewritten (its sha256 values stay valid). Engines
are listed by globbing sidecars; an engine without a sidecar is ignored.

Sidecars are read strictly (runtime/engines/sidecar_schema.py): every field's type and range
is checked, and a malformed value is a ``BundleError`` naming the sidecar and the field,
before anything is compared or loaded. ``runtime`` is a key of the engine-runtime registry
(runtime/engines/registry.py), which owns every runtime-specific rule below.

Before an engine is deserialized, ``resolve_engine`` compares its sidecar with this
machine and refuses a mismatch, saying what differs and the command that rebuilds it:

- the runtime's release: TensorRT the exact version that built it, unless built
  ``--version-compatible`` (then any later release of the same major, plus NVIDIA's
  documented cross-major pairs 8 -> 9/10 and 10 -> 11); TensorRT-RTX the exact release;
- GPU: TensorRT the same compute capability, unless built ``--hardware-compat ampere+``
  (then any GPU with compute capability >= 8.0), DLA engines always the same device;
  TensorRT-RTX one of their target compute capabilities (the library's default targets
  leave out Turing, 7.5);
- integrity: the engine's sha256, and the source ONNX's sha256 against the bundle's
  manifest (a re-exported bundle makes old engines stale).

TensorRT-RTX engines then also pass the library's own ``get_engine_validity`` check in the
runner (runtime/runners/tensorrt_rtx.py), still before deserializing.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from runtime.errors import BundleError, EdgeportError
from runtime.fsutil import open_regular, sha256_fileobj
from runtime.engines.registry import DEFAULT_RUNTIME, engine_runtime, product_name
from runtime.engines.sidecar_schema import (  # noqa: F401 - the sidecar's types, public here
    SIDECAR_VERSION, BuildGpu, EngineFile, EngineSidecar, SourceArtifact)

SIDECAR_GLOB = "*.engine.json"


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
def write_engine(bundle_root: Path, engine_name: str, plan: bytes, sidecar: EngineSidecar) -> EngineRecord:
    """Write the engine and its sidecar (with the engine's sha256) under temporary names, then
    swap them in (runtime/atomic.py).

    Both are complete on disk before anything old is touched, so a full disk or an error
    leaves the old pair working. The swap drops the old sidecar first and puts the new one in
    last: a kill between the renames leaves at most an engine without a sidecar, which is
    never listed or loaded, never an old sidecar paired with a new engine.
    """
    import hashlib

    from runtime import atomic

    root = Path(bundle_root)
    engine_path = root / engine_name
    sidecar_path = root / (engine_name + ".json")
    sidecar = dataclasses.replace(sidecar, sidecar_version=SIDECAR_VERSION, engine=EngineFile(
        engine_name, hashlib.sha256(plan).hexdigest(), len(plan)))
    try:
        atomic.replace_pair(engine_path, bytes(plan), sidecar_path,
                            (json.dumps(sidecar.to_dict(), indent=2) + "\n").encode())
    except OSError as exc:
        raise EdgeportError(f"Cannot write the engine {engine_path}: {exc}.",
                            hint="Check free space and permissions of the bundle folder.") from exc
    return EngineRecord(engine_path, sidecar_path, sidecar)


# -- reading ----------------------------------------------------------------------------------
def read_sidecar(path: Path) -> EngineSidecar:
    """The sidecar at ``path``; BundleError when it is unreadable or any field is malformed."""
    path = Path(path)
    hint = "Rebuild the engine with `edgeport build`, or delete the engine and its sidecar."
    try:
        with open_regular(path) as f:  # never a link out of the bundle, nor a FIFO
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"engine sidecar {path.name} cannot be read as JSON: {exc}.", hint=hint) from None
    sidecar = EngineSidecar.from_dict(data, path.name)
    if sidecar.engine.file != path.name[: -len(".json")]:
        raise BundleError(f"engine sidecar {path.name}: engine.file must name the engine next to it "
                          f"({path.name[: -len('.json')]}), got {sidecar.engine.file!r}.", hint=hint)
    return sidecar


def list_engines(bundle, runtime: str | None = None) -> list[EngineRecord]:
    """Every engine of the bundle (of ``runtime`` when given), by file name; a malformed sidecar is a BundleError."""
    records = []
    for path in sorted(Path(bundle.root).glob(SIDECAR_GLOB)):
        sidecar = read_sidecar(path)
        if runtime is None or sidecar.runtime == runtime:
            records.append(EngineRecord(path.with_name(sidecar.engine.file), path, sidecar))
    return records


def engine_precisions(bundle, runtime: str = DEFAULT_RUNTIME) -> list[str]:
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
    """The exact ``edgeport build`` command for a bundle and a sidecar's recorded options; every
    value is shell-quoted, since a sidecar's values come from whoever wrote the bundle."""
    o = options or {}
    parts = ["edgeport", "build", str(bundle_root), "--precision", str(precision)]
    if o.get("runtime") not in (None, DEFAULT_RUNTIME):
        parts += ["--runtime", str(o["runtime"])]
    if o.get("compute_capabilities"):
        parts += ["--compute-capability", ",".join(map(str, o["compute_capabilities"]))]
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
        parts += ["--runtime-cache", str(o["runtime_cache"])]
    if o.get("no_runtime_cache"):
        parts.append("--no-runtime-cache")
    return " ".join(shlex.quote(p) for p in parts)


def rebuild_command(bundle_root, sidecar: EngineSidecar) -> str:
    return build_command(bundle_root, sidecar.precision, sidecar.build_options)



# -- the check ------------------------------------------------------------------------------------
def compatibility_problems(sidecar: EngineSidecar, env) -> list[str]:
    """What makes the engine unusable on ``env`` (a device.TargetEnv, whose ``tensorrt`` is
    the version of the sidecar's runtime here); empty when it fits."""
    rt = engine_runtime(sidecar.runtime)
    if env.tensorrt is None:
        problems = [f"{rt.product} is not installed here"]
    elif not sidecar.version:  # sidecars read from disk always have one; hand-made ones may not
        problems = [f"the sidecar does not record the {rt.product} version that built the engine"]
    else:
        problems = rt.version_problems(sidecar, env.tensorrt)
    problems += ["no CUDA GPU is visible here"] if env.gpu is None else rt.gpu_problems(sidecar, env)
    dla = sidecar.dla_core
    if dla is not None and env.dla_cores is not None and dla >= env.dla_cores:
        problems.append(f"it runs on DLA core {dla}, and TensorRT sees {env.dla_cores} DLA core(s) here")
    return problems


def compatibility_notes(sidecar: EngineSidecar, env) -> list[str]:
    """Differences that do not block loading but are worth a warning."""
    return engine_runtime(sidecar.runtime).compatibility_notes(sidecar, env)


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
            with open_regular(record.engine_path) as f:  # a link to a file outside the bundle: BundleError
                actual = sha256_fileobj(f)
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
    return (engine_runtime(sc.runtime).portability(sc), -_timestamp(sc.built_at))


def _timestamp(text) -> float:
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


def probe_target(runtime: str = DEFAULT_RUNTIME, *, dla: bool = False):
    """This machine as a ``runtime`` engine's sidecar is compared with (imports that library)."""
    return engine_runtime(runtime).probe_env(dla=dla)


def resolve_engine(bundle, precision: str, *, runtime: str = DEFAULT_RUNTIME, env=None, dla_core: int | None = None,
                   check_engine_hash: bool = True, warn=None) -> EngineRecord:
    """The ``runtime`` engine to load for ``precision`` on this machine, checked; or a refusal.

    Used by ``edgeport verify --backend <engine runtime>`` and by predict/bench. ``env``
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
