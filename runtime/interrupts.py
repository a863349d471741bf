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


def note(signum: int) -> None:
    """Record that ``signum`` arrived (the CLI's handlers call this before raising)."""
    _received.append(int(signum))


def requested() -> bool:
    return bool(_received)


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even if its exception was swallowed."""
    if _received:
        raise KeyboardInterrupt(f"interrupted by signal {signal.Signals(_received[0]).name}")


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
