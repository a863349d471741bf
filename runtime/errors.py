"""The one user-facing error type and its exit codes."""

from __future__ import annotations

# Exit codes shared by every command: one rule, whatever the command (README "Exit status").
EXIT_CHECK_FAILED = 1  # the work ran and a check failed; its results (reports) are written
EXIT_USAGE = 2  # what the user typed: unknown names, paths that do not exist or are of the wrong kind,
#                 options the bundle cannot satisfy; checked before any heavy work
EXIT_ERROR = 3  # a failure while working: bad content (bundle, image, checkpoint), missing dependency...


class EdgeportError(Exception):
    """An error the user can act on.

    The message is one paragraph: what failed, the observed values, then what to do.
    The CLI prints it without a traceback (``--debug`` shows one).
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.hint = hint

    def render(self) -> str:
        text = str(self).strip()
        if self.hint:
            # Messages built from exceptions often end without punctuation ("... 'width'").
            if not text.endswith((".", "!", "?", ":")):
                text += "."
            text = f"{text} {self.hint}"
        return text


class UsageError(EdgeportError):
    """Options that make no sense together or values out of range."""

    exit_code = EXIT_USAGE


class BundleError(EdgeportError):
    """A bundle that is missing, incomplete, tampered with or too new."""


class BundleUsageError(BundleError):
    """A bundle path that does not exist or is no bundle folder, or an option the bundle cannot
    satisfy (a precision it lacks): what the user typed, so exit 2 like any usage error."""

    exit_code = EXIT_USAGE


class DependencyError(EdgeportError):
    """An optional dependency (torch, onnxsim, tensorrt, ...) is not installed."""


def require(module: str, *, purpose: str, install: str):
    """Import an optional module or raise a DependencyError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - message path tested via CLI
        raise DependencyError(
            f"{purpose} needs the Python package '{module}', which is not importable here ({exc}).",
            hint=f"Install it with: {install}",
        ) from exc
