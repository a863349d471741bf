"""Runners: one small interface (base.Runner), one implementation per backend, and one
loader (loader.open_runner) that picks the artifact for a precision and a target."""

from runtime.runners.base import Runner
from runtime.runners.loader import (BACKEND_CHOICES, PROVIDER_CHOICES, Resolved, Target, backend_help, open_runner, resolve,
                                    select_precisions)

__all__ = ["Runner", "Target", "Resolved", "open_runner", "resolve", "select_precisions", "BACKEND_CHOICES",
           "PROVIDER_CHOICES", "backend_help"]
