"""Writing a bundle atomically: stage in a temp folder, then swap it into place.

- A lock file (``OUT/.<name>.lock``, fcntl) serializes exports into the same bundle, so two
  concurrent exports never produce a mix; the second one fails fast with a clear message. It is
  deleted when the export ends (runtime/fsutil.py lock_file(remove=True) keeps that safe), and a
  failed export removes the output folders it created while they are empty (``created_output``).
- Everything is written into ``OUT/.<name>.tmp-<pid>/``; the manifest is written last.
- The swap is one atomic exchange of the staged folder with the old bundle
  (runtime/atomic.py: ``renameat2(RENAME_EXCHANGE)``, or two renames that put the old bundle
  back on any error); then the old one is deleted. A signal at any point, SIGKILL included,
  leaves either the old bundle or the new one at ``OUT/<name>``; leftovers (temp folders of
  dead exports, an old bundle set aside by a fallback swap cut by SIGKILL) are cleaned up, or
  restored, by the next export. Leftovers are matched by exact prefix, never by glob, so a
  name with ``*`` or ``[`` touches only its own.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from pathlib import Path

from runtime import atomic
from runtime.bundle import MANIFEST, sha256_file
from runtime.manifest import FileEntry, Manifest
from runtime.errors import EdgeportError, UsageError
from runtime.fsutil import LockHeld, lock_file


# One path component, printable: no separator, no control character (a trailing newline
# included: fullmatch, not a $-anchored match), not hidden (leftovers are ".NAME.tmp-PID").
_NAME = re.compile(r"[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]{0,199}")


def check_name(name: str) -> None:
    """A bundle name is one folder name inside --output (a UsageError otherwise, before any work).
    Glob characters are allowed: leftovers are matched by prefix, never by glob."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.strip() != name:
        raise UsageError(f"--name {name!r} is not a usable bundle name: it must be one folder name (no '/', no "
                         "'\\', not starting with '.', no control characters or surrounding spaces, at most 200 "
                         "characters).", hint="Pass a plain name such as --name resnet18_v2; use --output to choose "
                                              "the parent folder.")


class StagedBundle:
    def __init__(self, out_dir: Path, name: str):
        check_name(name)
        self.out_dir = Path(out_dir)
        self.name = name
        self.final = self.out_dir / name
        self.staging = self.out_dir / f".{name}.tmp-{os.getpid()}"
        self._lock_cm = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "StagedBundle":
        from runtime import interrupts

        interrupts.forget_completed()  # an earlier export in this process says nothing about this one
        prepare_output(self.out_dir)
        try:
            self._lock()
        except FileNotFoundError:
            # A failed export removed the folder it had created, between our mkdir and our lock
            # (created_output): create it again; our lock file then keeps it.
            prepare_output(self.out_dir)
            try:
                self._lock()
            except FileNotFoundError as exc:
                raise _os_error(exc, self.out_dir) from exc
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
            stack.enter_context(lock_file(path, wait=False, remove=True))  # no .NAME.lock stays behind
        except LockHeld:
            raise EdgeportError(
                f"Another edgeport export is writing '{self.final}' right now (lock {path} is held).",
                hint="Wait for it to finish, or export into another --output folder.") from None
        except FileNotFoundError:
            raise
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
        """With the lock held: staging folders of dead exports are removed; an old bundle set aside
        by a swap cut by SIGKILL is restored when no bundle is at the path."""
        for prefix in (f".{self.name}.tmp-", f".{self.name}.old-"):
            for p in atomic.leftovers(self.out_dir, prefix):
                pid = atomic.pid_of(p, prefix)
                if pid is None or (pid != os.getpid() and atomic.pid_alive(pid)):
                    continue  # another name's folder, or a live process's (a lock that did not hold)
                if prefix.endswith("old-"):
                    atomic.restore_aside(self.final, p, MANIFEST)
                else:
                    atomic.remove(p)

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
        """Swap the staged bundle into place (one atomic exchange, runtime/atomic.py)."""
        if not self.path(MANIFEST).is_file():
            raise RuntimeError("commit() before write_manifest()")
        from runtime import interrupts

        interrupts.check()  # a Ctrl-C swallowed by native code must not publish the bundle
        if self.final.is_file() or (self.final.is_symlink() and not self.final.is_dir()):
            # exporter/reexport.py refuses it earlier; a file that appeared since
            raise EdgeportError(f"'{self.final}' exists and is a file, not a bundle folder.",
                                hint="Remove it or choose another --output.")
        with guard_disk(self.final):
            atomic.replace_dir(self.staging, self.final, self.out_dir / f".{self.name}.old-{os.getpid()}",
                               swapped=lambda: interrupts.completed(f"the bundle '{self.final}' is complete"))
        return self.final


@contextlib.contextmanager
def created_output(out_dir: Path):
    """``prepare_output``, and when the block fails, the folders it created are removed again while
    they are empty: a failed export leaves no empty ``exports/`` behind. A folder another export
    wrote into meanwhile is not empty, and stays."""
    out_dir = Path(out_dir).absolute()
    missing = [p for p in (out_dir, *out_dir.parents) if not p.exists()]  # deepest first
    prepare_output(out_dir)
    try:
        yield
    except BaseException:
        for folder in missing:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (someone else's files), or gone: the folders above stay too
        raise


def prepare_output(out_dir: Path) -> None:
    """Create the output folder and check it is writable and not itself a bundle (called early,
    before slow work)."""
    from exporter.reexport import check_not_a_bundle

    out_dir = Path(out_dir)
    check_not_a_bundle(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"Output path '{out_dir}' exists and is not a folder.",
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
