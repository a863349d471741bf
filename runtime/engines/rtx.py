"""TensorRT-RTX: importing it, its own engine-validity check, and the JIT runtime cache.

TensorRT-RTX builds engines ahead of time on any x86_64 machine (no GPU needed) and compiles
them for the user's GPU when they load ("JIT"); the runtime cache keeps those compiled
kernels, so the second start is fast. The cache is only valid for one TensorRT-RTX version,
GPU and CUDA driver major, so its file carries the version, the GPU and the engine's sha256:
``$EDGEPORT_CACHE/rtx-runtime/rtx<version>-sm<CC>-<gpu>-<sha256[:16]>.cache``, never a path
named by the bundle.

Python module: ``tensorrt_rtx`` when NVIDIA's ``tensorrt-rtx-cu12`` metapackage is installed
(it re-exports the bindings plus plugin helpers), else ``tensorrt_rtx_bindings`` from the
``tensorrt-rtx-cu12-bindings`` wheel that ``edgeport[rtx]`` installs. Wheels exist for x86_64
Linux and Windows only: there is no TensorRT-RTX for Jetson (aarch64).
"""

from __future__ import annotations

import platform
from pathlib import Path

from runtime.errors import DependencyError, EdgeportError
from runtime.engines.policy import TrtVersion, cc_tag

MODULES = ("tensorrt_rtx", "tensorrt_rtx_bindings")
RTX_INSTALL = (
    "Install NVIDIA's TensorRT-RTX wheels with `pip install 'edgeport[rtx]'` (tensorrt-rtx-cu12-libs and "
    "tensorrt-rtx-cu12-bindings; x86_64 Linux or Windows). Building needs no GPU; running the engines needs an "
    "RTX-class NVIDIA GPU (compute capability 7.5, 8.0, 8.6, 8.9 or 12.x)."
)


def import_tensorrt_rtx(purpose: str = "Building TensorRT-RTX engines", rerun: str | None = None):
    """The TensorRT-RTX Python module, or a DependencyError saying what to install."""
    import importlib

    errors = []
    for name in MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - broken native installs raise OSError/RuntimeError
            raise DependencyError(f"{purpose} needs NVIDIA TensorRT-RTX, and `import {name}` failed while loading "
                                  f"its libraries ({type(exc).__name__}: {exc}).", hint=RTX_INSTALL) from exc
    machine = platform.machine().lower()
    hint = RTX_INSTALL if machine in ("x86_64", "amd64") else (
        f"This machine is {platform.machine()}, and NVIDIA publishes TensorRT-RTX for x86_64 Linux and Windows only "
        "(there is none for Jetson): build the engines on an x86_64 machine and copy the bundle, or use "
        "`edgeport build --runtime tensorrt` with the TensorRT that JetPack ships.")
    if rerun:
        hint += f" Then run: {rerun}"
    raise DependencyError(f"{purpose} needs NVIDIA TensorRT-RTX's Python package, and neither module imports here "
                          f"({'; '.join(errors)}).", hint=hint)


# -- the library's own check, before an engine is deserialized ----------------------------------------
def diagnostic_names(trt, bits: int) -> list[str]:
    """EngineInvalidityDiagnostics members set in ``bits`` (a bit mask)."""
    members = getattr(trt, "EngineInvalidityDiagnostics", None)
    if members is None:
        return [str(bits)] if bits else []
    return [name for name, member in members.__members__.items() if int(bits) & int(member)]


def engine_validity(trt, runtime, data: bytes) -> tuple[str, list[str]]:
    """(VALID / SUBOPTIMAL / INVALID, diagnostics) from ``Runtime.get_engine_validity``.

    It reads the plan's header and checks it against this machine (TensorRT-RTX version,
    compute capability, CUDA driver and runtime, memory) without deserializing the engine.
    """
    validity, bits = runtime.get_engine_validity(data)
    return getattr(validity, "name", str(validity)), diagnostic_names(trt, int(bits))


ADVICE = {
    "MALFORMED_ENGINE": "the file is damaged or not a TensorRT-RTX engine: rebuild it",
    "VERSION_MISMATCH": "another TensorRT-RTX release built it: rebuild it with this one",
    "UNSUPPORTED_CC": "it was not built for this GPU: rebuild it with --compute-capability for this GPU",
    "OLD_CUDA_DRIVER": "update the NVIDIA driver",
    "OLD_CUDA_RUNTIME": "update the CUDA runtime",
    "INSUFFICIENT_GPU_MEMORY": "close other GPU programs or use a smaller --max-batch",
    "CUDA_ERROR": "check the NVIDIA driver and CUDA installation (nvidia-smi)",
}


def require_valid_engine(trt, runtime, data: bytes, name: str, messages: list[str], warn=None) -> None:
    """Refuse an engine TensorRT-RTX says is INVALID here; warn when it is SUBOPTIMAL."""
    if not hasattr(runtime, "get_engine_validity"):  # TensorRT-RTX releases before the API: nothing to ask
        return
    status, diagnostics = engine_validity(trt, runtime, data)
    if status == "VALID":
        return
    why = ", ".join(diagnostics) or "no diagnostics given"
    if status == "SUBOPTIMAL":
        if warn is not None:
            warn(f"TensorRT-RTX says {name} is valid here but may run slower ({why})")
        return
    detail = "; ".join(m.split(": ", 1)[-1].strip().rstrip(".") for m in messages[-2:])
    advice = [ADVICE[d] for d in diagnostics if d in ADVICE] or [
        "without diagnostics this usually means no usable GPU: check the NVIDIA driver (nvidia-smi)"]
    raise EdgeportError(
        f"TensorRT-RTX {trt.__version__}'s own check refuses {name} before loading it: {status} ({why})"
        + (f"; {detail}" if detail else "") + ".",
        hint=_sentence("; ".join(advice)) + " The engine's .json sidecar has the command that rebuilds it.")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# -- the runtime (JIT) cache ----------------------------------------------------------------------------
def default_runtime_cache_path(version: str, gpu_name: str, compute_capability: str, engine_sha256: str,
                               root: Path | None = None) -> Path:
    """The runtime cache of one engine (by its sha256) on this TensorRT-RTX version and GPU.

    Always under edgeport's cache folder and named by content: a cache file's location never
    comes from a bundle (docs/security.md), and one engine's kernels never mix with another's."""
    from runtime.engines.timing_cache import gpu_slug
    from runtime.fsutil import cache_root

    if not (len(engine_sha256) == 64 and all(c in "0123456789abcdef" for c in engine_sha256)):
        raise ValueError(f"not a sha256: {engine_sha256!r}")
    v = TrtVersion.parse(version)
    root = cache_root() if root is None else Path(root)
    name = f"rtx{v}-{cc_tag(compute_capability)}-{gpu_slug(gpu_name)}-{engine_sha256[:16]}.cache"
    return root / "rtx-runtime" / name


def runtime_cache_path(setting: dict | None, version: str, gpu, engine_sha256: str) -> Path | None:
    """The cache file for an engine's sidecar setting ({"enabled", "path"}) on ``gpu``; None when off.

    The setting's ``path`` is ignored: a sidecar is bundle data, and a path taken from it would
    let a bundle author overwrite any file the user can write with cache bytes."""
    setting = setting or {}
    if setting.get("enabled") is False or gpu is None:
        return None
    return default_runtime_cache_path(version, gpu.name, gpu.compute_capability, engine_sha256)


def load_runtime_cache(path: Path) -> bytes:
    """The cache's bytes, or b"" when there is none yet (reads hold the cache's lock)."""
    from runtime.engines.timing_cache import read_cache

    return read_cache(path, "the TensorRT-RTX runtime cache",
                      "Fix its permissions or delete it (it is rebuilt on the next run).")


def save_runtime_cache(path: Path, data: bytes) -> None:
    """Replace the cache atomically, under its lock."""
    from runtime.engines.timing_cache import write_cache

    write_cache(path, data, "the TensorRT-RTX runtime cache",
                "Free disk space, or rebuild with --runtime-cache PATH or --no-runtime-cache.")


def runtime_config_with_cache(engine, cache_bytes: bytes, messages: list[str]):
    """(IRuntimeConfig with a runtime cache, the cache, whether ``cache_bytes`` were loaded).

    IRuntimeCache.deserialize validates the bytes against this GPU, TensorRT-RTX and CUDA and
    returns False on any mismatch: then the cache starts empty and is replaced when saved.
    """
    runtime_config = engine.create_runtime_config()
    cache = runtime_config.create_runtime_cache()
    loaded = False
    if cache_bytes:
        loaded = bool(cache.deserialize(cache_bytes))
        if not loaded:
            messages.append("WARNING: the runtime cache was written for another GPU, driver or TensorRT-RTX; "
                            "starting a new one")
    if not runtime_config.set_runtime_cache(cache):
        raise EdgeportError("TensorRT-RTX refused to attach the runtime cache to the engine's runtime config.")
    return runtime_config, cache, loaded
