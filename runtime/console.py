"""Messages and progress on stderr: bars on a terminal, plain lines in CI and pipes."""

from __future__ import annotations

import os
import sys
import time

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def log(message: str) -> None:
    """One line of progress on stderr (suppressed by --quiet)."""
    if not _state["quiet"]:
        print(f"[edgeport] {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"[edgeport] warning: {message}", file=sys.stderr, flush=True)


class Progress:
    """A minimal progress reporter.

    On a terminal it redraws one line; otherwise it prints a plain line at most every
    ``interval`` seconds and at the end, so CI logs stay short and line-buffered.
    """

    def __init__(self, total: int, label: str, interval: float = 5.0):
        self.total = max(int(total), 0)
        self.label = label
        self.count = 0
        self.tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.interval = interval
        self._start = time.monotonic()
        # Plain mode: the first interim line comes after ``interval`` s, so short steps log once.
        self._last = self._start

    def __enter__(self):
        return self

    def update(self, n: int = 1) -> None:
        self.count += n
        if _state["quiet"]:
            return
        now = time.monotonic()
        if self.tty:
            # Redraw at most ~10 times a second (and always at the end): a fast loop must not
            # spend its time writing to the terminal.
            if now - self._last < 0.1 and self.count < self.total:
                return
            self._last = now
            width = 30
            frac = min(self.count / self.total, 1.0) if self.total else 1.0
            bar = "#" * int(frac * width)
            elapsed = now - self._start
            eta = ""
            if 0 < self.count < self.total and elapsed > 1.0:
                eta = f" ETA {elapsed * (self.total - self.count) / self.count:.0f} s"
            sys.stderr.write(f"\r\x1b[K[edgeport] {self.label} [{bar:<{width}}] {self.count}/{self.total}"
                             f" {elapsed:.0f} s{eta}")
            sys.stderr.flush()
            self._drawn = True
        elif now - self._last >= self.interval and self.count < self.total:
            self._last = now
            log(f"{self.label}: {self.count}/{self.total}")

    def __exit__(self, *exc):
        if _state["quiet"]:
            return
        elapsed = time.monotonic() - self._start
        if self.tty and getattr(self, "_drawn", False):
            sys.stderr.write("\r\x1b[K")  # replace the bar by the summary line below
        log(f"{self.label}: {self.count}/{self.total} done in {elapsed:.1f} s")
