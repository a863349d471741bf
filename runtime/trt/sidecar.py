"""Engine sidecars: how each engine was built, and the check that runs before loading it.

Every engine ``model.<precision>...engine`` in a bundle has ``<engine>.json`` next to it.
Engines stay plain serialized TensorRT plans (``trtexec --loadEngine`` reads them); the
sidecar is a separate file, and manifest.json is never rewritten (its sha256 values stay
valid). Engines are listed by globbing sidecars; an engine without a sidecar is ignored.

Before an engine is deserialized, ``resolve_engine`` compares its sidecar with this
machine and refuses a mismatch, saying what differs and the command that rebuilds it:

- TensorRT: the exact version that built it, unless built ``--version-compatible``
  (then any later release of the same major, plus NVIDIA's documented cross-major pairs
  8 -> 9/10 and 10 -> 11);
- GPU: the same compute capability, unless built ``--hardware-compat ampere+`` (then any
  GPU with compute capability >= 8.0); DLA engines always need the same device;
- integrity: the engine's sha256, and the source ONNX's sha256 against the bundle's
  manifest (a re-exported bundle makes old engines stale).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
from pathlib import Path

from ..bundle import sha256_file
from ..fsutil import atomic_write_bytes
from ..errors import BundleError, EdgeportError
from .policy import TrtVersion, _cc_tuple

SIDECAR_VERSION = 1
SIDECAR_GLOB = "*.engine.json"
# Cross-major pairs NVIDIA documents for version-compatible engines (built major -> runtime major).
VC_CROSS_MAJOR = {(8, 9), (8, 10), (9, 10), (10, 11)}


@dataclasses.dataclass(frozen=True)
class EngineRecord:
    """An engine file and its sidecar."""

    engine_path: Path
    sidecar_path: Path
    sidecar: dict

    @property
    def precision(self) -> str:
        return self.sidecar.get("precision", "?")

    @property
    def dla_core(self) -> int | None:
        return self.sidecar.get("dla_core")

    @property
    def target_label(self) -> str:
        """The 'provider' column of verify's table: gpu, or dla<N>."""
        return "gpu" if self.dla_core is None else f"dla{self.dla_core}"


# -- writing ---------------------------------------------------------------------------------
_atomic_write = atomic_write_bytes


def write_engine(bundle_root: Path, engine_name: str, plan: bytes, sidecar: dict) -> EngineRecord:
    """Write the engine, then its sidecar (with the engine's sha256), both atomically.

    The sidecar goes last: an interrupted write leaves at most an engine without a sidecar,
    which is never listed or loaded.
    """
    import hashlib

    root = Path(bundle_root)
    engine_path = root / engine_name
    sidecar_path = root / (engine_name + ".json")
    data = dict(sidecar)
    data["sidecar_version"] = SIDECAR_VERSION
    data["engine"] = {"file": engine_name, "sha256": hashlib.sha256(plan).hexdigest(), "bytes": len(plan)}
    try:
        # Remove a stale sidecar first, so a crash between the two writes cannot pair the
        # old sidecar with the new engine.
        with contextlib.suppress(FileNotFoundError):
            sidecar_path.unlink()
        _atomic_write(engine_path, bytes(plan))
        _atomic_write(sidecar_path, (json.dumps(data, indent=2) + "\n").encode())
    except OSError as exc:
        raise EdgeportError(f"Cannot write the engine {engine_path}: {exc}.",
                            hint="Check free space and permissions of the bundle folder.") from exc
    return EngineRecord(engine_path, sidecar_path, data)


# -- reading ----------------------------------------------------------------------------------
def list_engines(bundle) -> list[EngineRecord]:
    """Every engine with a readable sidecar in the bundle, sorted by file name."""
    records = []
    for path in sorted(Path(bundle.root).glob(SIDECAR_GLOB)):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("engine"), dict):
            continue
        name = data["engine"].get("file")
        if not isinstance(name, str) or "/" in name or "\\" in name or name != path.name[: -len(".json")]:
            continue
        records.append(EngineRecord(path.with_name(name), path, data))
    return records


def engine_precisions(bundle) -> list[str]:
    """Precisions that have at least one engine (in fp32, fp16, int8 order)."""
    have = {r.precision for r in list_engines(bundle)}
    found = [p for p in ("fp32", "fp16", "int8") if p in have]
    if not found:
        raise BundleError(f"Bundle '{bundle.root}' has no TensorRT engines yet.",
                          hint=f"Build them on this machine: {build_command(bundle.root, 'all')}")
    return found


# -- commands ---------------------------------------------------------------------------------
def build_command(bundle_root, precision: str = "all", options: dict | None = None) -> str:
    """The exact ``edgeport build`` command for a bundle and a sidecar's recorded options."""
    o = options or {}
    parts = ["edgeport", "build", shlex.quote(str(bundle_root)), "--precision", precision]
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
    return " ".join(parts)


def rebuild_command(bundle_root, sidecar: dict) -> str:
    return build_command(bundle_root, sidecar.get("precision", "all"), sidecar.get("build_options"))


# -- the check ------------------------------------------------------------------------------------
def _gpu_text(gpu: dict | None) -> str:
    if not gpu:
        return "no GPU"
    return f"compute capability {gpu.get('compute_capability', '?')} ({gpu.get('name', '?')})"


def compatibility_problems(sidecar: dict, env) -> list[str]:
    """What makes the engine unusable on ``env`` (a device.TargetEnv); empty when it fits."""
    problems = []
    built_v, here_v = sidecar.get("tensorrt"), env.tensorrt
    if here_v is None:
        problems.append("TensorRT is not installed here")
    elif not built_v:
        problems.append("the sidecar does not record the TensorRT version that built the engine")
    else:
        b, h = TrtVersion.parse(built_v), TrtVersion.parse(here_v)
        if sidecar.get("version_compatible"):
            cross_ok = b.major == h.major or (b.major, h.major) in VC_CROSS_MAJOR
            if (h.major, h.minor, h.patch) < (b.major, b.minor, b.patch) or not cross_ok:
                problems.append(
                    f"it is a version-compatible engine from TensorRT {built_v}, which runs on TensorRT {b.short} or "
                    f"newer of the same major (or NVIDIA's documented next major), not on TensorRT {here_v} here")
        else:
            same = (b.major, b.minor, b.patch) == (h.major, h.minor, h.patch) and (
                not b.build or not h.build or b.build == h.build)
            if not same:
                problems.append(f"TensorRT {built_v} built it, this machine has TensorRT {here_v} (engines only load "
                                "on the exact TensorRT version that built them unless built with --version-compatible)")
    built_gpu = sidecar.get("gpu") or {}
    if env.gpu is None:
        problems.append("no CUDA GPU is visible here")
    elif built_gpu.get("compute_capability"):
        here_cc = _cc_tuple(env.gpu.compute_capability)
        built_cc = _cc_tuple(built_gpu["compute_capability"])
        here_text = f"compute capability {env.gpu.compute_capability} ({env.gpu.name})"
        if sidecar.get("hardware_compat") == "ampere+" and sidecar.get("dla_core") is None:
            if here_cc < (8, 0):
                problems.append(f"it is an ampere+ hardware-compatible engine, which needs compute capability >= 8.0, "
                                f"and this GPU has {here_text}")
        elif here_cc != built_cc:
            problems.append(f"it was built for {_gpu_text(built_gpu)}, and this GPU has {here_text}")
    else:
        problems.append("the sidecar does not record the GPU's compute capability")
    dla = sidecar.get("dla_core")
    if dla is not None and env.dla_cores is not None and dla >= env.dla_cores:
        problems.append(f"it runs on DLA core {dla}, and TensorRT sees {env.dla_cores} DLA core(s) here")
    return problems


def compatibility_notes(sidecar: dict, env) -> list[str]:
    """Differences that do not block loading but are worth a warning."""
    notes = []
    built_gpu = sidecar.get("gpu") or {}
    if env.gpu and built_gpu.get("name") and built_gpu.get("name") != env.gpu.name \
            and sidecar.get("hardware_compat") != "ampere+":
        notes.append(f"built on {built_gpu['name']}, running on {env.gpu.name} (same compute capability; NVIDIA "
                     "advises rebuilding per GPU model for best performance)")
    built_cuda = (sidecar.get("cuda") or {}).get("runtime")
    if built_cuda and env.cuda_runtime and built_cuda.split(".")[0] != env.cuda_runtime.split(".")[0]:
        notes.append(f"built with CUDA {built_cuda}, this machine has CUDA {env.cuda_runtime}")
    return notes


def integrity_problems(record: EngineRecord, bundle, *, check_engine_hash: bool = True) -> list[str]:
    """The engine's sha256 and its source ONNX against the bundle's manifest."""
    problems = []
    sc = record.sidecar
    if not record.engine_path.is_file():
        return [f"the engine file {record.engine_path.name} is missing"]
    expected = (sc.get("engine") or {}).get("sha256")
    if check_engine_hash:
        if not expected:
            problems.append("the sidecar records no sha256 for the engine")
        else:
            actual = sha256_file(record.engine_path)
            if actual != expected:
                problems.append(f"the engine's sha256 is {actual[:16]}..., the sidecar recorded {expected[:16]}... "
                                "(the file was truncated, corrupted or replaced)")
    source = sc.get("source") or {}
    art = bundle.manifest.artifacts.get(source.get("artifact"))
    if art is None:
        problems.append(f"its source artifact '{source.get('artifact')}' is no longer in the bundle's manifest")
    elif art.sha256 != source.get("sha256"):
        problems.append(f"it was built from {source.get('file')} with sha256 {str(source.get('sha256'))[:16]}..., and the "
                        f"bundle's {art.file} now has {str(art.sha256)[:16]}... (the bundle was re-exported)")
    return problems


def _rank(record: EngineRecord) -> tuple:
    # Prefer engines built exactly for this device and version (fastest), then the newest.
    sc = record.sidecar
    portable = (sc.get("hardware_compat") not in (None, "none")) + bool(sc.get("version_compatible"))
    return (portable, -_timestamp(sc.get("built_at")))


def _timestamp(text) -> float:
    import datetime as _dt

    try:
        return _dt.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return 0.0


def resolve_engine(bundle, precision: str, *, env=None, dla_core: int | None = None,
                   check_engine_hash: bool = True, warn=None) -> EngineRecord:
    """The engine to load for ``precision`` on this machine, checked; or a refusal.

    Used by ``edgeport verify --backend tensorrt`` and by predict/bench. ``env`` defaults to
    probing this machine (which imports tensorrt). GPU engines are preferred unless
    ``dla_core`` asks for a DLA engine.
    """
    records = [r for r in list_engines(bundle) if r.precision == precision]
    if dla_core is not None:
        records = [r for r in records if r.dla_core == dla_core]
    elif any(r.dla_core is None for r in records):
        records = [r for r in records if r.dla_core is None]
    where = f" on DLA core {dla_core}" if dla_core is not None else ""
    if not records:
        cmd = build_command(bundle.root, precision, {"dla_core": dla_core} if dla_core is not None else None)
        raise BundleError(f"Bundle '{bundle.root}' has no {precision} TensorRT engine{where}.",
                          hint=f"Build it on this machine: {cmd}")
    if env is None:
        from .device import import_tensorrt, probe_env

        env = probe_env(import_tensorrt("Running TensorRT engines"), dla=any(r.dla_core is not None for r in records))
    checked = [(r, compatibility_problems(r.sidecar, env)) for r in records]
    fitting = sorted((r for r, p in checked if not p), key=_rank)
    if not fitting:
        r, problems = checked[0]
        detail = "; ".join(f"{rec.engine_path.name}: {', '.join(p)}" for rec, p in checked)
        raise EdgeportError(
            f"No {precision} engine in bundle '{bundle.root}' can run here, so none is loaded: {detail}.",
            hint=f"Rebuild it on this machine: {rebuild_command(bundle.root, r.sidecar)}")
    chosen = fitting[0]
    problems = integrity_problems(chosen, bundle, check_engine_hash=check_engine_hash)
    if problems:
        raise BundleError(f"The engine {chosen.engine_path} is refused before loading: {'; '.join(problems)}.",
                          hint=f"Rebuild it: {rebuild_command(bundle.root, chosen.sidecar)}")
    if warn is not None:
        for note in compatibility_notes(chosen.sidecar, env):
            warn(f"{chosen.engine_path.name}: {note}")
    return chosen
