"""Putting a folder (a bundle, a Triton entry) or a file in place without losing the old one.

``replace_dir(staged, target, aside)`` swaps a fully written folder into place. On Linux it
is one system call, ``renameat2(RENAME_EXCHANGE)``: the path names the complete old folder
or the complete new one at every instant, whatever signal (SIGKILL included) arrives; the
old folder, now at the staged path, is removed afterwards. Where the exchange is not
available (another OS, a kernel before 3.15, a file system answering EINVAL/ENOSYS) the
fallback renames the old folder to ``aside`` and the staged one into place with SIGINT and
SIGTERM deferred, and puts the old folder back on any error; only SIGKILL can cut it between
the two renames, and then ``aside`` holds the complete old folder for the caller's next run
to restore (``restore_aside``).

Leftover names are matched with ``leftovers`` (a prefix test, no glob), so a name holding
``*`` or ``[`` never matches another export's folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import shutil
import signal
import sys
from pathlib import Path

RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100
_SYS_RENAMEAT2 = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276}
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class ExchangeUnsupported(OSError):
    """This OS, kernel or file system cannot exchange two paths atomically."""


def _renameat2():
    """libc's renameat2 (glibc 2.28+), else a wrapper around syscall(SYS_renameat2); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return fn
    nr = _SYS_RENAMEAT2.get(platform.machine().lower())
    if nr is None:
        return None
    libc.syscall.restype = ctypes.c_long
    return lambda *a: libc.syscall(ctypes.c_long(nr), ctypes.c_int(a[0]), ctypes.c_char_p(a[1]),
                                   ctypes.c_int(a[2]), ctypes.c_char_p(a[3]), ctypes.c_uint(a[4]))


def exchange(a: str | Path, b: str | Path) -> None:
    """Exchange the two existing paths ``a`` and ``b`` in one atomic step.

    Raises ExchangeUnsupported when this system cannot, OSError for anything else (a path
    missing, permissions); on any error nothing has moved.
    """
    import ctypes

    fn = _renameat2()
    if fn is None:
        raise ExchangeUnsupported(errno.ENOSYS, "renameat2 is not available on this system")
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return
    code = ctypes.get_errno()
    cls = ExchangeUnsupported if code in _UNSUPPORTED else OSError
    raise cls(code, os.strerror(code), str(a), None, str(b))


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM that arrive meanwhile are recorded, then raised again when the block ends
    (to the handlers the process had): two renames are not cut apart. Handlers, not a signal
    mask: a mask holds only the calling thread, and the kernel hands a process signal to any
    thread that does not block it (numpy's BLAS threads), which would end the process at once."""
    import threading

    got: list[int] = []
    old = {}
    if threading.current_thread() is threading.main_thread():  # handlers can be set from here only
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not None:  # None: set outside Python, cannot be put back
                old[sig] = signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(got):
            signal.raise_signal(sig)


def remove(path: Path) -> None:
    """Remove a folder tree, or a file or link (never following a link)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace_dir(staged: str | Path, target: str | Path, aside: str | Path, swapped=lambda: None) -> None:
    """Put the folder ``staged`` at ``target``, replacing what is there (see the module docstring).

    ``aside`` is where the fallback keeps the old folder between its two renames; it must be a
    free name in the same folder. ``swapped()`` runs right after the swap with SIGINT/SIGTERM
    still deferred, so what it records (the new bundle is complete) is true when a signal is
    handled. When this returns, ``staged`` and ``aside`` are gone.
    """
    staged, target, aside = Path(staged), Path(target), Path(aside)
    with signals_deferred():
        if not (target.exists() or target.is_symlink()):
            os.rename(staged, target)
            swapped()
            return
        try:
            exchange(staged, target)
            old = staged  # the old folder, now at the staged path
        except ExchangeUnsupported:
            _swap_by_renames(staged, target, aside)
            old = aside
        swapped()
    remove(old)


def _swap_by_renames(staged: Path, target: Path, aside: Path) -> None:
    """Old folder aside, staged one in; the old one is put back if the second rename fails."""
    os.rename(target, aside)
    try:
        os.rename(staged, target)
    except BaseException:
        if not (target.exists() or target.is_symlink()):
            os.rename(aside, target)
        raise


def leftovers(folder: Path, prefix: str) -> list[Path]:
    """Entries of ``folder`` whose name starts with ``prefix`` (sorted; no glob, so ``*``/``[`` in a
    name match only themselves)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(Path(folder) / n for n in names if n.startswith(prefix))


def pid_of(path: Path, prefix: str) -> int | None:
    """The PID a leftover ``<prefix><pid>`` carries, or None when the rest is not a number."""
    rest = path.name[len(prefix):]
    return int(rest) if rest.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def restore_aside(target: Path, aside: Path, complete: str) -> bool:
    """After a swap cut by SIGKILL: ``aside`` (holding ``complete``, e.g. its manifest) goes back to
    ``target`` when nothing is there; otherwise it is removed. True when it was restored."""
    if not (target.exists() or target.is_symlink()) and (aside / complete).is_file():
        os.rename(aside, target)
        return True
    remove(aside)
    return False


def write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new file next to ``path`` (flushed to disk, permissions from the umask, like
    a plain open()); returns its name. Nothing is left behind when writing fails."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def replace_pair(main: Path, main_data: bytes, index: Path, index_data: bytes) -> None:
    """Replace a file and the file describing it (an engine and its sidecar) as one step.

    Both new files are written completely under temporary names first, so a full disk leaves
    the old pair untouched. Then, with SIGINT/SIGTERM held back: the old ``index`` goes, ``main``
    is renamed in, ``index`` last. Only SIGKILL or a power cut between those renames can
    leave ``main`` without ``index`` (which readers ignore), never an old index paired with a
    new ``main``.
    """
    main, index = Path(main), Path(index)
    tmp_main = write_temp(main, main_data)
    try:
        tmp_index = write_temp(index, index_data)
    except BaseException:
        remove(tmp_main)
        raise
    try:
        with signals_deferred():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(index)
            os.rename(tmp_main, main)
            os.rename(tmp_index, index)
    finally:
        remove(tmp_main)
        remove(tmp_index)
