"""Writing a bundle atomically: stage in a temp folder, then swap it into place.

- A lock file (``OUT/.<name>.lock``, fcntl) serializes exports into the same bundle, so two
  concurrent exports never produce a mix; the second one fails fast with a clear message.
- Everything is written into ``OUT/.<name>.tmp-<pid>/``; the manifest is written last.
- The swap renames any existing bundle aside, renames the staged folder into place and
  deletes the old one. An interruption at any point leaves either the old bundle or the new
  one at ``OUT/<name>``; leftovers (stale temp folders, an old bundle renamed aside) are
  cleaned up, or restored, by the next export.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from runtime.bundle import MANIFEST, sha256_file
from runtime.manifest import FileEntry, Manifest
from runtime.errors import EdgeportError
from runtime.fsutil import LockHeld, lock_file


class StagedBundle:
    def __init__(self, out_dir: Path, name: str):
        self.out_dir = Path(out_dir)
        self.name = name
        self.final = self.out_dir / name
        self.staging = self.out_dir / f".{name}.tmp-{os.getpid()}"
        self._lock_cm = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "StagedBundle":
        prepare_output(self.out_dir)
        self._lock()
        self._recover()
        try:
            self.staging.mkdir()
        except OSError as exc:
            self._unlock()
            raise _os_error(exc, self.staging) from exc
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.staging.exists():
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._unlock()
        return False

    def _lock(self) -> None:
        path = self.out_dir / f".{self.name}.lock"
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(lock_file(path, wait=False))
        except LockHeld:
            raise EdgeportError(
                f"Another edgeport export is writing '{self.final}' right now (lock {path} is held).",
                hint="Wait for it to finish, or export into another --output folder.") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # lock_file does not follow a symlink planted at the lock's path
                raise EdgeportError(f"The lock file '{path}' is a symbolic link; edgeport does not follow it.",
                                    hint="Delete it (nothing else uses it), then export again.") from None
            raise _os_error(exc, path) from exc
        self._lock_cm = stack

    def _unlock(self) -> None:
        if self._lock_cm is not None:
            self._lock_cm.close()  # closing the file releases the flock
            self._lock_cm = None

    def _recover(self) -> None:
        """With the lock held, any staging folder is stale; an old bundle aside is restored."""
        for p in self.out_dir.glob(f".{self.name}.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in sorted(self.out_dir.glob(f".{self.name}.old-*")):
            if not self.final.exists() and (p / MANIFEST).is_file():
                os.replace(p, self.final)
            else:
                shutil.rmtree(p, ignore_errors=True)

    # -- writing -----------------------------------------------------------------------------
    def path(self, filename: str) -> Path:
        return self.staging / filename

    def entry(self, filename: str) -> FileEntry:
        """The manifest entry of a staged file: its name, sha256 and size."""
        p = self.path(filename)
        return FileEntry(file=filename, sha256=sha256_file(p), bytes=p.stat().st_size)

    def write_text(self, filename: str, text: str) -> None:
        """Write a text file into the staged bundle (disk errors become EdgeportError)."""
        with guard_disk(self.staging):
            self.path(filename).write_text(text)

    def add_file(self, src: Path, filename: str) -> None:
        """Put an existing file into the staged bundle: a hard link (the staging folder is a
        sibling of the old bundle, so the same file system), else a copy."""
        with guard_disk(self.staging):
            try:
                os.link(src, self.path(filename))
            except OSError:
                shutil.copy2(src, self.path(filename))

    def write_manifest(self, manifest: Manifest) -> None:
        """Write manifest.json, sealed with the digest of its content (written last)."""
        text = manifest.sealed().to_json()
        with guard_disk(self.staging):
            self.path(MANIFEST).write_text(text)

    def commit(self) -> Path:
        """Swap the staged bundle into place."""
        if not self.path(MANIFEST).is_file():
            raise RuntimeError("commit() before write_manifest()")
        from runtime import interrupts

        interrupts.check()  # a Ctrl-C swallowed by native code must not publish the bundle
        old = None
        if self.final.exists() or self.final.is_symlink():
            if self.final.is_file():  # exporter/reexport.py refuses it earlier; a file that appeared since
                raise EdgeportError(f"'{self.final}' exists and is a file, not a bundle folder.",
                                    hint="Remove it or choose another --output.")
            old = self.out_dir / f".{self.name}.old-{os.getpid()}"
            os.replace(self.final, old)
        os.replace(self.staging, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final


def prepare_output(out_dir: Path) -> None:
    """Create the output folder and check it is writable and not itself a bundle (called early,
    before slow work)."""
    from exporter.reexport import check_not_a_bundle

    out_dir = Path(out_dir)
    check_not_a_bundle(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise EdgeportError(f"Output path '{out_dir}' exists and is not a folder.",
                            hint="Pass --output DIR pointing to a folder.") from None
    except OSError as exc:
        raise _os_error(exc, out_dir) from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise EdgeportError(f"Output folder '{out_dir}' is not writable.",
                            hint="Choose another --output folder or fix its permissions.")


def _os_error(exc: OSError, path: Path) -> EdgeportError:
    if exc.errno == errno.ENOSPC:
        return EdgeportError(f"No space left on the device while writing '{path}'.",
                             hint="Free some disk space or choose another --output folder; nothing was left half-written.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EdgeportError(f"Cannot write '{path}': {exc.strerror}.",
                             hint="Choose another --output folder or fix its permissions.")
    return EdgeportError(f"Cannot write '{path}': {exc}.")


@contextlib.contextmanager
def guard_disk(path: Path):
    """Turn OSErrors (disk full, permissions) into a clear EdgeportError."""
    try:
        yield
    except OSError as exc:
        raise _os_error(exc, path) from exc
