"""TensorRT runner: a serialized engine through the I/O tensor API (TensorRT 8.6+).

num_io_tensors / get_tensor_name / get_tensor_mode enumerate the I/O; per call the runner
sets input shapes (set_input_shape), binds device addresses (set_tensor_address) and runs
execute_async_v3 on its stream. Device memory comes from cuda-python or PyTorch
(runtime/engines/cuda_mem.py).

Batches outside the engine's profile are handled here, so callers can feed any batch:
larger ones are split into chunks of at most the profile's max, smaller ones are padded up
to its min (DLA engines have one static batch) and the padding is dropped from the outputs.

Load engines through ``runtime.engines.sidecar.resolve_engine``, which refuses engines built
for another TensorRT or GPU before they reach ``deserialize_cuda_engine``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import EdgeportError
from runtime.runners.base import Runner, TensorSpec


def plan_chunks(n: int, min_batch: int, max_batch: int) -> list[tuple[int, int, int]]:
    """Split a batch of ``n`` into (start, stop, run_size) chunks the profile accepts.

    Each chunk has at most ``max_batch`` real samples and runs at ``run_size`` >=
    ``min_batch`` (the difference is padding).
    """
    if n < 1:
        return []
    if not 1 <= min_batch <= max_batch:
        raise EdgeportError(f"Invalid engine batch range {min_batch}..{max_batch}.")
    chunks = []
    start = 0
    while start < n:
        stop = min(start + max_batch, n)
        chunks.append((start, stop, max(stop - start, min_batch)))
        start = stop
    return chunks


def pad_batch(array: np.ndarray, size: int) -> np.ndarray:
    """Repeat the last sample until the batch has ``size`` samples (real data, so no NaN paths)."""
    if len(array) >= size:
        return np.ascontiguousarray(array)
    reps = np.repeat(array[-1:], size - len(array), axis=0)
    return np.ascontiguousarray(np.concatenate([array, reps], axis=0))


class TensorRTRunner(Runner):
    backend = "tensorrt"
    product = "TensorRT"

    def __init__(self, path: str | Path, *, sidecar=None, dla_core: int | None = None, memory=None, trt=None,
                 trust_engine_host_code: bool = False):
        """Deserialize ``path``. ``sidecar`` (an EngineSidecar from resolve_engine) says whether
        the engine is version-compatible and which DLA core it targets (batches are split/padded
        to the engine's own profile); ``memory`` and ``trt`` let tests inject fakes.
        ``trust_engine_host_code``: the user's explicit consent (``--trust-engine-host-code``) to
        run the host code a version-compatible engine embeds; without it such an engine is refused."""
        super().__init__()
        self.trust_engine_host_code = bool(trust_engine_host_code)
        from runtime.engines.builder import make_logger

        self.trt = trt if trt is not None else self._import_library()
        self.path = Path(path)
        self.sidecar = sidecar  # None: a plain engine file, not version-compatible, on the GPU
        self._messages: list[str] = []
        self._logger = make_logger(self.trt, self._messages)
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (address, capacity in bytes)
        self._stream = None
        self.context = self.engine = None
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise EdgeportError(f"Cannot read the engine {self.path}: {exc}.") from exc
        self.runtime = self.trt.Runtime(self._logger)
        self._check_plan(data)  # before anything touches the GPU
        if memory is None:
            from runtime.engines.cuda_mem import default_memory

            memory = default_memory()
        self.memory = memory
        if getattr(self.sidecar, "version_compatible", False):
            # Version-compatible plans embed TensorRT's lean runtime: host code that runs in this
            # process. The sidecar's sha256 is written by whoever wrote the engine, so it proves
            # nothing about who that was: only the user can allow the code (docs/security.md).
            self._require_host_code_trust()
            self.runtime.engine_host_code_allowed = True
        dla = dla_core if dla_core is not None else getattr(self.sidecar, "dla_core", None)
        if dla is not None:
            self.runtime.DLA_core = int(dla)
        self.dla_core = dla
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise EdgeportError(
                f"{self.product} {self.trt.__version__} could not deserialize {self.path.name}: "
                f"{'; '.join(self._messages[-3:]) or 'no message'}.",
                hint="Rebuild the engine on this machine with `edgeport build` (see the engine's .json sidecar).")
        self.context = self._create_context()
        if self.context is None:
            raise EdgeportError(f"{self.product} could not create an execution context for {self.path.name}: "
                                f"{'; '.join(self._messages[-3:]) or 'out of GPU memory?'}.")
        self._stream = self.memory.stream()
        self._read_io()

    def _require_host_code_trust(self) -> None:
        if not self.trust_engine_host_code:
            raise EdgeportError(
                f"{self.path.name} is a version-compatible engine (its sidecar says so): such a plan embeds "
                f"{self.product}'s lean runtime, host code that runs inside this process with your permissions, "
                "and whoever can write the bundle can replace the engine and its sidecar together, so edgeport "
                "loads it only with --trust-engine-host-code (trust_engine_host_code=True in the Python API).",
                hint="Pass --trust-engine-host-code only if you trust whoever built this engine; otherwise rebuild "
                     "it on this machine without --version-compatible (`edgeport build`).")

    # Hooks for the TensorRT-RTX runner (runtime/runners/tensorrt_rtx.py).
    def _import_library(self):
        from runtime.engines.device import import_tensorrt

        return import_tensorrt("Running TensorRT engines")

    def _check_plan(self, data: bytes) -> None:
        """A last check of the serialized plan before it is deserialized (none for TensorRT)."""

    def _create_context(self):
        return self.engine.create_execution_context()

    def _read_io(self) -> None:
        trt, engine = self.trt, self.engine
        self.batch_range = None
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            spec = TensorSpec(name, dtype, tuple(d if d >= 0 else None for d in shape))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(spec)
                lo, _, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
                rng = (lo[0], hi[0]) if shape and shape[0] < 0 else (shape[0], shape[0])
                # All inputs share the batch dimension; keep the tightest range.
                self.batch_range = rng if self.batch_range is None else (
                    max(self.batch_range[0], rng[0]), min(self.batch_range[1], rng[1]))
            else:
                self.outputs.append(spec)
        if self.batch_range is None:
            self.batch_range = (1, 1)

    @property
    def description(self) -> str:
        return f"{self.backend}/" + ("gpu" if self.dla_core is None else f"dla{self.dla_core}")

    # -- inference ---------------------------------------------------------------------------
    def infer_impl(self, feed):
        n = len(next(iter(feed.values())))
        lo, hi = self.batch_range
        parts: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        for start, stop, run in plan_chunks(n, lo, hi):
            chunk = {name: pad_batch(arr[start:stop], run) for name, arr in feed.items()}
            result = self._execute(chunk)
            for name, value in result.items():
                parts[name].append(value[: stop - start])
        return {name: np.concatenate(values, axis=0) for name, values in parts.items()}

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, capacity = self._buffers.get(name, (None, 0))
        if ptr is None or capacity < nbytes:
            if ptr is not None:
                self.memory.free(ptr)
            ptr, capacity = self.memory.alloc(nbytes), max(nbytes, 1)
            self._buffers[name] = (ptr, capacity)
        return ptr

    def _bind(self, name: str, ptr: int) -> None:
        # set_tensor_address returns False (and logs why) for an unknown tensor name or an
        # address TensorRT cannot use; running on would read or write the wrong memory.
        if not self.context.set_tensor_address(name, ptr):
            raise EdgeportError(f"TensorRT refused the device address {ptr:#x} for tensor '{name}' of "
                                f"{self.path.name}: {'; '.join(self._messages[-3:]) or 'no message'}.",
                                hint=f"Check the memory backend ({getattr(self.memory, 'name', '?')}) and that the "
                                "engine matches the bundle (rebuild it with `edgeport build`).")

    def _execute(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ctx, mem, stream = self.context, self.memory, self._stream
        for name, array in feed.items():
            if not ctx.set_input_shape(name, tuple(array.shape)):
                raise EdgeportError(f"TensorRT rejected the input shape {list(array.shape)} for '{name}' "
                                    f"(engine batch range {self.batch_range[0]}..{self.batch_range[1]}).")
            ptr = self._buffer(name, array.nbytes)
            mem.htod(ptr, array, stream)
            self._bind(name, ptr)
        host = {}
        for spec in self.outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise EdgeportError(f"TensorRT could not infer the shape of output '{spec.name}' ({list(shape)}).")
            host[spec.name] = np.empty(shape, dtype=spec.dtype)
            self._bind(spec.name, self._buffer(spec.name, host[spec.name].nbytes))
        if not ctx.execute_async_v3(mem.stream_handle(stream)):
            raise EdgeportError(f"TensorRT failed to run {self.path.name}: {'; '.join(self._messages[-3:]) or 'no message'}.")
        for name, array in host.items():
            mem.dtoh(array, self._buffers[name][0], stream)
        mem.synchronize(stream)
        return host

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            try:
                self.memory.free(ptr)
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        self._buffers.clear()
        if self._stream is not None:
            try:
                self.memory.destroy_stream(self._stream)
            except Exception:  # noqa: BLE001
                pass
            self._stream = None
        # Destroy in dependency order: context before engine before runtime.
        self.context = None
        self.engine = None
