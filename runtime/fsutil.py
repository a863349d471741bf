"""File helpers shared by bundles, reports, calibration files, sidecars and timing caches:
atomic writes, sha256, opening a bundle's file as what it claims to be, the one advisory file
lock (``lock_file``) and the one cache folder (``cache_root``)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO


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
    with open(path, "rb") as f:
        return sha256_fileobj(f, chunk)


def sha256_fileobj(f: BinaryIO, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of an open file from its current position to the end."""
    h = hashlib.sha256()
    while block := f.read(chunk):
        h.update(block)
    return h.hexdigest()


def open_regular(path: str | Path) -> BinaryIO:
    """Open a bundle file for reading, only if it is a regular file reached without a symbolic link.

    A bundle is written by someone else (docs/security.md): ``model.onnx`` may be a link to a
    file outside it, or a FIFO that blocks the reader. ``O_NOFOLLOW`` refuses a link in the last
    component (file names inside a bundle have no other), ``O_NONBLOCK`` keeps a FIFO from
    blocking the open, and ``fstat`` on the descriptor checks what was opened, so the bytes a
    caller hashes and loads are those of the file checked. Raises BundleError otherwise."""
    from runtime.errors import BundleError

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise BundleError(f"{path} is a symbolic link; edgeport reads only regular files of a bundle and "
                              "never follows a link out of it.", hint="Replace the link by the file itself, or "
                                                                      "re-export the bundle.") from exc
        raise BundleError(f"{path} cannot be read ({exc.strerror or exc}).",
                          hint="Copy the whole bundle folder again, or re-export it.") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "folder" if stat.S_ISDIR(mode) else "special file (device, FIFO or socket)"
        raise BundleError(f"{path} is a {kind}, not a regular file; edgeport reads only regular files of a bundle.",
                          hint="Re-export the bundle.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    f = os.fdopen(fd, "rb")
    f.raw.name = str(path)  # named by its path, as open() names it (fdopen names it by the descriptor)
    return f


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
def lock_file(path: str | Path, *, wait: bool = True, remove: bool = False):
    """An exclusive advisory lock (flock) on ``path``, held for the ``with`` block.

    The file is created when missing. O_NOFOLLOW: a symlink planted at ``path`` (a shared
    cache or output folder) is refused instead of followed, so the lock never creates or
    truncates a file elsewhere. ``path`` may also be an existing folder (the Triton model
    repository locks itself). ``wait=False`` raises ``LockHeld`` at once when the lock is taken.
    ``remove=True``: the file is deleted when the block ends, so no lock file stays behind; the
    lock still excludes, because a holder checks that ``path`` is still the file it locked (a
    process that locked a file deleted meanwhile tries again on the new one).
    """
    import fcntl

    path = Path(path)
    while True:
        flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(f"{path} is locked by another process") from None
        except BaseException:
            os.close(fd)
            raise
        if not remove or _same_file(fd, path):
            break
        os.close(fd)  # locked a file its holder deleted on release: lock the one at the path now
    try:
        yield
    finally:
        if remove and _same_file(fd, path):
            with contextlib.suppress(OSError):
                path.unlink()  # while still holding the lock: a waiter then sees a deleted file and retries
        os.close(fd)  # closing releases the flock


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
