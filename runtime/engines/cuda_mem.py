"""Device memory and streams for the TensorRT runner, via cuda-python or PyTorch.

Both backends expose the same five operations (alloc/free, host<->device copies on a
stream, synchronize), with device memory named by its integer address, which is what
``IExecutionContext.set_tensor_address`` takes. cuda-python is preferred (small, what
NVIDIA's samples use); PyTorch CUDA tensors serve where torch is installed anyway
(torch2trt's approach). No hand-written ctypes.
"""

from __future__ import annotations

import numpy as np

from runtime.errors import DependencyError, EdgeportError

INSTALL = ("Install cuda-python matching the CUDA driver (`pip install 'cuda-python==12.*'` for CUDA 12 / JetPack 6, "
           "13.* for CUDA 13), or PyTorch with CUDA.")


class CudaPythonMemory:
    """cuda-python's runtime API (``cuda.bindings.runtime``, or ``cuda.cudart`` on older releases)."""

    name = "cuda-python"

    def __init__(self, cudart):
        self.cudart = cudart

    def _check(self, result, what: str):
        err, rest = result[0], result[1:]
        if int(err) != 0:
            name = self.cudart.cudaGetErrorName(err)[1]
            raise EdgeportError(f"CUDA {what} failed: {name.decode() if isinstance(name, bytes) else name}.")
        return rest[0] if len(rest) == 1 else (rest or None)

    def alloc(self, nbytes: int) -> int:
        return int(self._check(self.cudart.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self.cudart.cudaFree(ptr)

    def stream(self):
        return self._check(self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def destroy_stream(self, stream) -> None:
        self.cudart.cudaStreamDestroy(stream)

    def htod(self, ptr: int, array: np.ndarray, stream) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, stream), "host-to-device copy")

    def dtoh(self, array: np.ndarray, ptr: int, stream) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, stream), "device-to-host copy")

    def synchronize(self, stream) -> None:
        self._check(self.cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


class TorchMemory:
    """PyTorch CUDA tensors as raw byte buffers (only used when torch is installed)."""

    name = "torch"

    def __init__(self, torch):
        self.torch = torch
        self._tensors: dict[int, object] = {}

    def alloc(self, nbytes: int) -> int:
        t = self.torch.empty(max(int(nbytes), 1), dtype=self.torch.uint8, device="cuda")
        self._tensors[t.data_ptr()] = t
        return t.data_ptr()

    def free(self, ptr: int) -> None:
        self._tensors.pop(ptr, None)

    def stream(self):
        return self.torch.cuda.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.cuda_stream)

    def destroy_stream(self, stream) -> None:
        pass

    def htod(self, ptr: int, array: np.ndarray, stream) -> None:
        src = self.torch.from_numpy(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        with self.torch.cuda.stream(stream):
            self._tensors[ptr][: array.nbytes].copy_(src)

    def dtoh(self, array: np.ndarray, ptr: int, stream) -> None:
        dst = self.torch.from_numpy(array.reshape(-1).view(np.uint8))
        with self.torch.cuda.stream(stream):
            dst.copy_(self._tensors[ptr][: array.nbytes])

    def synchronize(self, stream) -> None:
        stream.synchronize()


# The driver answers, but no device is there to run on: installing anything would not help.
_NO_DEVICE = ("cudaErrorNoDevice", "cudaErrorDevicesUnavailable")


def _no_gpu(reported: str):
    import os

    raise EdgeportError(
        f"Running TensorRT engines needs an NVIDIA GPU, and CUDA sees none here (cudaGetDeviceCount: {reported}; "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}).",
        hint="Check that `nvidia-smi` lists a GPU and that CUDA_VISIBLE_DEVICES (or the container's `--gpus`) exposes "
             "it, or run the bundle's ONNX artifacts on the CPU: --backend onnxruntime.")


def default_memory():
    """cuda-python if importable, else PyTorch with CUDA, else a DependencyError."""
    from runtime.engines.device import import_cudart, optional_import

    cudart = import_cudart()
    cudart_error = None
    if cudart is not None:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) == 0 and count:
            return CudaPythonMemory(cudart)
        # e.g. cuda-python 13 on a CUDA 12 driver: cudaErrorInsufficientDriver
        cudart_error = getattr(err, "name", str(err))
        if cudart_error in _NO_DEVICE or (int(err) == 0 and not count):
            _no_gpu(cudart_error if int(err) else "0 devices")
    torch = optional_import("torch")  # optional; never imported at module level under runtime/
    if torch is not None and torch.cuda.is_available():
        return TorchMemory(torch)
    found = (f"cuda-python is installed but reports {cudart_error}" if cudart_error
             else "neither cuda-python nor PyTorch with CUDA is importable here")
    raise DependencyError(f"Running TensorRT engines needs a way to allocate GPU memory from Python: {found}.",
                          hint=INSTALL)
