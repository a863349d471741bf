"""OpenVINO runner: the bundle's ONNX artifacts compiled by OpenVINO for the CPU.

``edgeport[openvino]`` (PyPI ``openvino``) is optional and imported only when this backend
is used. Which artifact runs (``artifact_key``):

- ``fp32`` (model.onnx) and ``fp16`` (model.fp16.onnx, upcast by OpenVINO's CPU plugin);
- ``int8`` means ``int8-ov`` when the bundle has it (model.int8-ov.onnx, NNCF's graph for
  OpenVINO: ``export --int8 --int8-openvino``), else ``int8-cpu`` (model.int8-cpu.onnx, ONNX
  Runtime's U8S8 graph: read correctly, but slower on OpenVINO; exporter/int8/openvino_int8.py
  says why). OpenVINO reads Q/DQ pairs as FakeQuantize and runs those layers in int8;
- ``--qdq`` / model.int8.onnx (the TensorRT graph, with FP16 regions) is refused: OpenVINO
  does not read its FP16 regions the way ONNX Runtime and ONNX's reference evaluator do
  (measured: densenet121, centered cosine 0.964 against their 0.9997), so its results would
  say nothing about the artifact (tests/runtime/runners/test_openvino.py keeps this true).

**One compiled model per input shape.** The bundle's graphs have a dynamic batch; compiled as
they are, OpenVINO's CPU plugin runs every call through its dynamic-shape path. The runner knows
each call's shape, so it reshapes a copy of the model to that static shape and compiles it on
first use (process CPU time per call, one thread: densenet121 INT8 5-8 % less, resnet18 INT8 at
batch 1 6-11 %, the rest 0-10 %; docs/benchmarks.md has the table). At most ``COMPILED_SHAPES`` compiled models are
kept (least recently used goes first): each holds its own copy of the weights in the plugin's
layout.

**A batch runs as parallel streams** (``streams_for``): a call of 8 samples on 2 threads is two
requests of 4, started together on two streams of one thread each (``NUM_STREAMS`` 2,
``THROUGHPUT``), and their outputs concatenated; the batch must split into equal parts, so one
compiled shape serves every part. One stream with 2 threads synchronizes its threads at every
layer, and waits for the slower: on this 2-core machine with a niced job beside it, resnet18 INT8
at batch 8 took 68.9 ms that way and 39.6 ms as two streams; quiet, 1.00-1.05x (INT8) and 1.11x
(FP16, bf16 arithmetic). Batch 1 (or a batch with no equal split) is one request with every
thread: ``LATENCY`` for batch 1, ``THROUGHPUT`` above, ``NUM_STREAMS`` 1.
``threads`` sets ``INFERENCE_NUM_THREADS``. ``fp32`` runs with ``INFERENCE_PRECISION_HINT f32``: on CPUs
with native bfloat16 (AVX512_BF16, AMX) OpenVINO's default is bf16 arithmetic, which is not
what an FP32 artifact promises (it fails fp32's tolerance); the other artifacts keep the
plugin's default (bf16 there, f32 elsewhere), within their tolerances.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from runtime.errors import DependencyError, EdgeportError, UsageError
from runtime.runners.base import Runner, TensorSpec

COMPILED_SHAPES = 4  # compiled models kept per runner (module docstring): batch 1, 8 and two others
INSTALL_HINT = "Install it with `pip install 'edgeport[openvino]'` (openvino; x86_64 and ARM64 CPUs)."
QDQ_REFUSED = ("OpenVINO does not read model.int8.onnx (the TensorRT graph with FP16 regions) the way ONNX Runtime "
               "and ONNX's reference evaluator do (measured on densenet121: centered cosine 0.964 against their "
               "0.9997), so edgeport does not run it there.")


def import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise DependencyError("--backend openvino needs OpenVINO, which is not installed.",
                              hint=INSTALL_HINT) from exc
    return openvino


def artifact_key(available: list[str], precision: str, qdq: bool) -> str:
    """The artifact key ``precision`` selects on OpenVINO (module docstring)."""
    from runtime.precision import CPU_INT8, OV_INT8

    ours = [k for k in (OV_INT8, CPU_INT8) if k in available]
    if precision == "int8" and (qdq or not ours and "int8" in available):
        raise UsageError(QDQ_REFUSED, hint="Run --precision int8 (model.int8-ov.onnx or model.int8-cpu.onnx) on "
                                           "OpenVINO, or check model.int8.onnx with --backend onnxruntime --qdq.")
    if precision == "int8":
        return ours[0] if ours else OV_INT8
    return precision


def runnable(keys: list[str]) -> list[str]:
    """What ``all`` means on OpenVINO: every artifact but the TensorRT INT8 graph."""
    return [k for k in keys if k != "int8"]


def streams_for(batch: int, threads: int) -> int:
    """How many parallel streams a call of ``batch`` samples runs as on ``threads`` threads: the
    largest divisor of the batch not above the threads (equal parts, one compiled shape)."""
    return max(n for n in range(1, max(1, min(batch, threads)) + 1) if batch % n == 0)


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorSpec(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), shape)


class OpenVINORunner(Runner):
    backend = "openvino"

    def __init__(self, model: str | Path, *, threads: int | None = None, max_batch: int | None = None,
                 device: str = "CPU", precision_hint: str | None = None):
        super().__init__()
        ov = import_openvino()
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}.")
        self.core = ov.Core()
        self.device, self.threads, self.precision_hint = device, threads, precision_hint
        try:
            self.model = self.core.read_model(str(model))
        except Exception as exc:  # OpenVINO raises RuntimeError with its frontend's message
            raise EdgeportError(f"OpenVINO could not read {model}: {type(exc).__name__}: {str(exc)[:400]}.") from exc
        self.inputs = [_spec(p) for p in self.model.inputs]
        self.outputs = [_spec(p) for p in self.model.outputs]
        self.max_batch = max_batch
        self._requests: OrderedDict[tuple, list] = OrderedDict()  # input shapes -> infer requests, one per stream
        # Compile now, for batch 1: a broken artifact fails at open, not at the first call.
        self._request(tuple(tuple(1 if i == 0 else d for i, d in enumerate(t.shape)) for t in self.inputs))

    @property
    def description(self) -> str:
        return f"openvino/{self.device.lower()}"

    def _config(self, batch: int, streams: int) -> dict:
        config = {"PERFORMANCE_HINT": "LATENCY" if batch == 1 else "THROUGHPUT", "NUM_STREAMS": streams}  # call's batch
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.precision_hint is not None:
            config["INFERENCE_PRECISION_HINT"] = self.precision_hint
        return config

    def _static(self, shapes: tuple):
        """The model reshaped to ``shapes`` (one per input; None keeps a dimension dynamic)."""
        if all(d is not None for shape in shapes for d in shape) and shapes == tuple(t.shape for t in self.inputs):
            return self.model
        model = self.model.clone()  # reshape works in place; the read model stays as read
        model.reshape({port: [-1 if d is None else d for d in shape] for port, shape in zip(model.inputs, shapes)})
        return model

    def _streams(self, shapes: tuple) -> int:
        """Parallel streams for a call of these input shapes (module docstring): only where every
        output has the batch first, so the parts' outputs concatenate into the call's."""
        batch = shapes[0][0] if shapes and shapes[0] else 1
        if not batch or batch == 1 or any(t.shape[:1] != (None,) for t in (*self.inputs, *self.outputs)):
            return 1
        return streams_for(batch, self.threads or _usable_cores())

    def _request(self, shapes: tuple) -> list:
        """The infer requests compiled for these input shapes, one per stream (cached,
        COMPILED_SHAPES at most): each request runs an equal part of the batch."""
        if shapes in self._requests:
            self._requests.move_to_end(shapes)
            return self._requests[shapes]
        streams = self._streams(shapes)
        part = tuple((s[0] // streams, *s[1:]) if s else s for s in shapes)
        batch = shapes[0][0] if shapes and shapes[0] else 1
        try:
            compiled = self.core.compile_model(self._static(part), self.device, self._config(batch or 1, streams))
        except Exception as exc:
            raise EdgeportError(f"OpenVINO could not compile the model for {self.device} (input shapes "
                                f"{[list(s) for s in part]}): {type(exc).__name__}: {str(exc)[:400]}.") from exc
        self._requests[shapes] = [compiled.create_infer_request() for _ in range(streams)]
        while len(self._requests) > COMPILED_SHAPES:
            self._requests.popitem(last=False)
        return self._requests[shapes]

    def infer_impl(self, feed):
        requests = self._request(tuple(tuple(feed[t.name].shape) for t in self.inputs))
        # Shared buffers: OpenVINO reads the caller's arrays in place (no input copy: 4.8 MB at
        # batch 8, 224 px) and the outputs are copied once here, because a request's next call
        # overwrites them.
        if len(requests) == 1:
            result = requests[0].infer({t.name: feed[t.name] for t in self.inputs}, share_inputs=True,
                                       share_outputs=True)
            return {t.name: np.array(result[i]) for i, t in enumerate(self.outputs)}
        size = len(feed[self.inputs[0].name]) // len(requests)
        for k, request in enumerate(requests):
            request.start_async({t.name: feed[t.name][k * size:(k + 1) * size] for t in self.inputs},
                                share_inputs=True)
        for request in requests:
            request.wait()
        return {t.name: np.concatenate([r.get_output_tensor(i).data for r in requests])
                for i, t in enumerate(self.outputs)}

    def close(self) -> None:
        self._requests.clear()
