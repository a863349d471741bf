"""Progress and warnings through the standard ``logging`` module (logger ``edgeport``).

Library code calls ``log``/``warn``/``Progress``; it never prints. What a user sees is
decided by whoever configures logging:

- the CLI installs ``StderrHandler`` (``[edgeport] message`` lines on stderr, progress bars
  on a terminal; ``--quiet`` keeps warnings only);
- a script gets Python's defaults (warnings on stderr, progress silent) or passes
  ``progress=callback`` to the API (``edgeport.api``), which attaches ``CallbackHandler``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time

LOGGER = logging.getLogger("edgeport")
LOGGER.setLevel(logging.INFO - 1)  # PROGRESS and up; handlers choose what to show
PROGRESS = logging.INFO - 1  # progress-bar redraws: only handlers that draw bars take them


# C0 and C1 control characters (ESC starts a terminal escape sequence, U+009B is a one-byte CSI)
# and the bidirectional overrides that reorder what a terminal shows; tab and newline stay.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text) -> str:
    """``text`` without the characters that drive a terminal instead of showing: a bundle's names
    come from whoever wrote it (docs/security.md), so everything printed passes through here."""
    return _UNPRINTABLE.sub("", str(text))


def log(message: str) -> None:
    """One line of progress."""
    LOGGER.info(message)


def warn(message: str) -> None:
    LOGGER.warning(message)


class StderrHandler(logging.Handler):
    """The CLI's handler: writes to the *current* sys.stderr (test runners swap it)."""

    def __init__(self, quiet: bool = False):
        super().__init__(logging.WARNING if quiet else PROGRESS)

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        text = record.getMessage()
        if record.levelno == PROGRESS:  # edgeport's own bar, drawn with \r and an erase sequence
            if _draws_bars():
                stream.write(text)
                stream.flush()
            return
        text = printable(text)
        prefix = "[edgeport] warning: " if record.levelno >= logging.WARNING else "[edgeport] "
        if _bar_drawn.pop("open", False):
            stream.write("\r\x1b[K")
        stream.write(f"{prefix}{text}\n")
        stream.flush()


_bar_drawn: dict = {}


def _draws_bars() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def install_cli_handler(quiet: bool = False) -> StderrHandler:
    """Replace any earlier CLI handler by one with this quietness (idempotent)."""
    for h in list(LOGGER.handlers):
        if isinstance(h, StderrHandler):
            LOGGER.removeHandler(h)
    handler = StderrHandler(quiet)
    LOGGER.addHandler(handler)
    LOGGER.propagate = False  # the CLI owns the output; no duplicate lines via the root logger
    return handler


def set_quiet(quiet: bool) -> None:
    """--quiet: only warnings and errors (results still go to stdout)."""
    install_cli_handler(quiet)


class CallbackHandler(logging.Handler):
    """Sends each progress line and warning to ``callback(message)`` (the API's ``progress=``)."""

    def __init__(self, callback):
        super().__init__(logging.INFO)
        self.callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        self.callback(prefix + record.getMessage())


@contextlib.contextmanager
def progress_to(callback):
    """Route edgeport's messages to ``callback`` for the duration of a call (None: no change)."""
    if callback is None:
        yield
        return
    handler = CallbackHandler(callback)
    LOGGER.addHandler(handler)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)


class Progress:
    """A progress reporter for long loops.

    A terminal gets a redrawn bar; otherwise a plain line at most every ``interval`` seconds
    and a summary at the end, so CI logs stay short. An interrupted loop (Ctrl-C, an error)
    ends with "stopped after N/M", never "done".
    """

    def __init__(self, total: int, label: str, interval: float = 5.0):
        self.total = max(int(total), 0)
        self.label = label
        self.count = 0
        self.interval = interval
        self._start = time.monotonic()
        # Plain mode: the first interim line comes after ``interval`` s, so short steps log once.
        self._last = self._start
        self._last_draw = 0.0

    def __enter__(self):
        return self

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if LOGGER.isEnabledFor(PROGRESS) and _draws_bars():
            # Redraw at most ~10 times a second (and at the end): a fast loop must not spend
            # its time writing to the terminal.
            if now - self._last_draw < 0.1 and self.count < self.total:
                return
            self._last_draw = now
            width = 30
            frac = min(self.count / self.total, 1.0) if self.total else 1.0
            bar = "#" * int(frac * width)
            elapsed = now - self._start
            eta = ""
            if 0 < self.count < self.total and elapsed > 1.0:
                eta = f" ETA {elapsed * (self.total - self.count) / self.count:.0f} s"
            _bar_drawn["open"] = True
            LOGGER.log(PROGRESS, f"\r\x1b[K[edgeport] {self.label} [{bar:<{width}}] {self.count}/{self.total}"
                                 f" {elapsed:.0f} s{eta}")
        elif now - self._last >= self.interval and self.count < self.total:
            self._last = now
            log(f"{self.label}: {self.count}/{self.total}")

    def __exit__(self, exc_type, exc, tb):
        elapsed = time.monotonic() - self._start
        if exc_type is None:
            log(f"{self.label}: {self.count}/{self.total} done in {elapsed:.1f} s")
        elif issubclass(exc_type, KeyboardInterrupt):
            log(f"{self.label}: interrupted after {self.count}/{self.total} ({elapsed:.1f} s)")
        else:
            log(f"{self.label}: stopped after {self.count}/{self.total} ({elapsed:.1f} s)")
        return False
