"""TensorRT-RTX runner: the TensorRT runner with NVIDIA's TensorRT-RTX module as ``trt``.

TensorRT-RTX has TensorRT's runtime API (Runtime, deserialize_cuda_engine, the I/O tensor
API, execute_async_v3), so only three things differ:

- before deserializing, the library's own ``get_engine_validity`` reads the plan's header
  and refuses an engine that is malformed, from another TensorRT-RTX release, or not built
  for this GPU's compute capability (after resolve_engine's sidecar check);
- the execution context is created with a runtime config that carries the runtime (JIT)
  cache, loaded from disk, so kernels compiled on an earlier run are reused;
- closing the runner saves the cache (atomically, under a lock).

Load engines through ``runtime.engines.sidecar.resolve_engine(..., runtime="tensorrt-rtx")``
(``--backend tensorrt-rtx``: runtime/engines/tensorrt_rtx.py names this runner).
Nothing here has run on a GPU yet (docs/tensorrt.md); the refusals are tested on CPU.
"""

from __future__ import annotations

from pathlib import Path

from runtime.runners.tensorrt import TensorRTRunner


class TensorRTRXRunner(TensorRTRunner):
    backend = "tensorrt-rtx"
    product = "TensorRT-RTX"

    def __init__(self, path: str | Path, *, sidecar=None, memory=None, trt=None,
                 runtime_cache: Path | None | bool = True, warn=None, trust_engine_host_code: bool = False):
        """``runtime_cache``: True = the engine's cache under edgeport's cache folder (keyed by the
        engine's sha256; off when the sidecar disables it), False = none, a path = that file (the
        caller's choice; a sidecar's ``runtime_cache.path`` is never used)."""
        self._runtime_cache_arg = runtime_cache
        self._warn = warn
        self.runtime_cache_path: Path | None = None
        self.runtime_cache_loaded = False
        self._cache = None
        self._plan_sha256 = ""
        super().__init__(path, sidecar=sidecar, memory=memory, trt=trt, trust_engine_host_code=trust_engine_host_code)

    def _import_library(self):
        from runtime.engines.rtx import import_tensorrt_rtx

        return import_tensorrt_rtx("Running TensorRT-RTX engines")

    def _check_plan(self, data: bytes) -> None:
        from runtime.engines.rtx import require_valid_engine

        import hashlib

        require_valid_engine(self.trt, self.runtime, data, self.path.name, self._messages, warn=self._warn)
        self._plan_sha256 = hashlib.sha256(data).hexdigest()  # the runtime cache's key: the bytes loaded

    def _cache_path(self) -> Path | None:
        from runtime.engines.device import probe_gpu
        from runtime.engines.rtx import runtime_cache_path

        arg = self._runtime_cache_arg
        if arg is False or arg is None:
            return None
        if arg is not True:
            return Path(arg)
        setting = self.sidecar.runtime_cache if self.sidecar is not None else None
        return runtime_cache_path(setting, str(self.trt.__version__), probe_gpu()[0], self._plan_sha256)

    def _create_context(self):
        from runtime.engines.rtx import load_runtime_cache, runtime_config_with_cache

        self.runtime_cache_path = self._cache_path()
        if self.runtime_cache_path is None:
            return self.engine.create_execution_context()
        data = load_runtime_cache(self.runtime_cache_path)
        runtime_config, self._cache, self.runtime_cache_loaded = runtime_config_with_cache(
            self.engine, data, self._messages)
        return self.engine.create_execution_context(runtime_config)

    def save_runtime_cache(self) -> None:
        """Write the kernels compiled so far to the runtime cache file."""
        from runtime.engines.rtx import save_runtime_cache

        if self._cache is not None and self.runtime_cache_path is not None:
            save_runtime_cache(self.runtime_cache_path, bytes(memoryview(self._cache.serialize())))

    def close(self) -> None:
        try:
            self.save_runtime_cache()
        finally:
            self._cache = None
            super().close()
