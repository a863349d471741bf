"""Ctrl-C and SIGTERM that cannot be lost.

Python turns SIGINT into KeyboardInterrupt at the next bytecode, but native code that
checks for signals (PyErr_CheckSignals) inside a C++ ``catch (...)`` can swallow it: the
call returns normally and the program runs on. The CLI's handlers therefore also record
the signal here, and code about to make work permanent (a bundle's final rename, an
engine's sidecar) calls ``check()``, which raises KeyboardInterrupt when a signal came.
"""

from __future__ import annotations

import signal

_received: list[int] = []
_completed: list[str] = []  # work made permanent, e.g. "the bundle '...' is complete"
_installed: list[bool] = []


def note(signum: int) -> None:
    """Record that ``signum`` arrived (the CLI's handlers call this before raising)."""
    _received.append(int(signum))


def requested() -> bool:
    return bool(_received)


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if its exception was swallowed."""
    if _received:
        raise KeyboardInterrupt(f"interrupted by signal {signal.Signals(_received[0]).name}")


def completed(what: str) -> None:
    """Record that work was made permanent (a committed bundle): an interrupt after it says so."""
    _completed.append(what)


def forget_completed() -> None:
    """A new piece of work starts: what an earlier one completed no longer describes it."""
    _completed.clear()


def exit_code() -> int:
    """128 + the first signal received (130 for SIGINT, 143 for SIGTERM), as a shell reports it."""
    return 128 + _received[0] if _received else 130


def message() -> str:
    """The one line the CLI prints when interrupted: what is complete, or that nothing was left."""
    name = signal.Signals(_received[0]).name if _received else "SIGINT"
    if _completed:
        return f"interrupted ({name}) after the work was made permanent: {_completed[-1]}."
    return f"interrupted ({name}); nothing half-written was left behind."


def installed() -> bool:
    """Whether ``install()`` set the handlers (then every real Ctrl-C is recorded by ``note``)."""
    return bool(_installed)


def install() -> None:
    """SIGINT and SIGTERM record themselves, then raise KeyboardInterrupt (main thread only)."""

    def handler(signum, frame):
        note(signum)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not in the main thread (embedded use)
            return
    _installed.append(True)
