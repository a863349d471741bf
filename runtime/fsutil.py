"""File helpers shared by bundles, reports, calibration files, sidecars and timing caches:
atomic writes, sha256, the one advisory file lock (``lock_file``) and the one cache folder
(``cache_root``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: readers see the old or the new
    file, never half of one. Permissions follow the umask like a plain open() would
    (mkstemp alone creates 0600 files)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_root(environ=None) -> Path:
    """edgeport's cache folder (calibration ranges, timing caches, runtime caches):
    $EDGEPORT_CACHE, else $XDG_CACHE_HOME/edgeport, else ~/.cache/edgeport."""
    env = os.environ if environ is None else environ
    if env.get("EDGEPORT_CACHE"):
        return Path(env["EDGEPORT_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "edgeport"
    return Path.home() / ".cache" / "edgeport"


class LockHeld(OSError):
    """``lock_file(..., wait=False)``: another process holds the lock."""


@contextlib.contextmanager
def lock_file(path: str | Path, *, wait: bool = True):
    """An exclusive advisory lock (flock) on ``path``, held for the ``with`` block.

    The file is created when missing. O_NOFOLLOW: a symlink planted at ``path`` (a shared
    cache or output folder) is refused instead of followed, so the lock never creates or
    truncates a file elsewhere. ``path`` may also be an existing folder (the Triton model
    repository locks itself). ``wait=False`` raises ``LockHeld`` at once when the lock is taken.
    """
    import fcntl

    path = Path(path)
    flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeld(f"{path} is locked by another process") from None
        yield
    finally:
        os.close(fd)  # closing releases the flock
