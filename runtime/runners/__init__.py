"""Runners: one small interface, one implementation per backend."""

from .base import Runner

__all__ = ["Runner", "make_runner"]


def make_runner(backend: str, path, *, provider: str = "cpu", threads: int | None = None, **kwargs) -> Runner:
    """Create a runner for ``backend`` (``onnxruntime``, ``tensorrt`` or ``tensorrt-rtx``)."""
    from ..errors import UsageError

    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, provider=provider, threads=threads, **kwargs)
    if backend == "tensorrt":
        from .tensorrt import TensorRTRunner  # noqa: F401  (lazy: needs tensorrt)

        return TensorRTRunner(path, **kwargs)
    if backend == "tensorrt-rtx":
        from .tensorrt_rtx import TensorRTRXRunner  # lazy: needs TensorRT-RTX

        return TensorRTRXRunner(path, **kwargs)
    raise UsageError(f"Unknown backend '{backend}'; choose onnxruntime, tensorrt or tensorrt-rtx.")
