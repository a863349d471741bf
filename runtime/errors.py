"""The one user-facing error type and its exit codes."""

from __future__ import annotations

# Exit codes shared by every command.
EXIT_CHECK_FAILED = 1  # an accuracy check failed; reports are still written
EXIT_USAGE = 2  # bad options (click's own code for usage errors)
EXIT_ERROR = 3  # anything else: missing files, bad bundle, missing dependency...


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
