"""The builder's timing cache: one file per (TensorRT version, GPU), reused across builds.

TensorRT times candidate kernels ("tactics") for every layer; the timing cache keeps those
measurements, so a rebuild (another precision, another profile, a re-export) takes seconds
instead of minutes. A cache is only valid for the TensorRT version and GPU that produced
it, so the default file name carries both:
``$EDGEPORT_CACHE/timing/trt<version>-sm<CC>-<gpu>.cache`` (EDGEPORT_CACHE defaults to
``$XDG_CACHE_HOME/edgeport`` or ``~/.cache/edgeport``).

Builds of several bundles may run at once on one device: reads and writes hold an
advisory lock, and writes go through a temp file + rename, so the file is never torn.
"""

from __future__ import annotations

import re
from pathlib import Path

from runtime.errors import EdgeportError
from runtime.fsutil import atomic_write_bytes, cache_root, lock_file
from runtime.engines.policy import TrtVersion, cc_tag


def gpu_slug(text: str) -> str:
    """A GPU name as a file-name part ("NVIDIA A10" -> "nvidia-a10")."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "gpu"



def default_path(trt_version: str, gpu_name: str, compute_capability: str, root: Path | None = None) -> Path:
    """Where the timing cache for this TensorRT version and GPU lives."""
    v = TrtVersion.parse(trt_version)
    root = cache_root() if root is None else Path(root)
    return root / "timing" / f"trt{v}-{cc_tag(compute_capability)}-{gpu_slug(gpu_name)}.cache"


def locked(path: Path):
    """An exclusive advisory lock next to ``path`` (blocks until other builds release it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return lock_file(str(path) + ".lock")


def read_cache(path: Path, what: str, hint: str) -> bytes:
    """A cache file's bytes under its lock, or b"" when there is none yet (timing and runtime caches)."""
    path = Path(path)
    try:
        with locked(path):
            return path.read_bytes() if path.is_file() else b""
    except OSError as exc:
        raise EdgeportError(f"Cannot read {what} {path}: {exc}.", hint=hint) from exc


def write_cache(path: Path, data: bytes, what: str, hint: str) -> None:
    """Replace a cache file atomically under its lock (readers see the old or the new file, never half)."""
    path = Path(path)
    try:
        with locked(path):
            atomic_write_bytes(path, data)
    except OSError as exc:
        raise EdgeportError(f"Cannot write {what} {path}: {exc}.", hint=hint) from exc


def load(path: Path) -> bytes:
    """The timing cache's bytes, or b"" when there is none yet."""
    return read_cache(path, "the timing cache",
                      "Fix its permissions, delete it, or pass another --timing-cache PATH.")


def save(path: Path, data: bytes) -> None:
    """Replace the timing cache atomically."""
    write_cache(path, data, "the timing cache", "Free disk space or pass another --timing-cache PATH.")
