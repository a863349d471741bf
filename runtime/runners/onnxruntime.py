"""ONNX Runtime runner: CPU, CUDA and TensorRT execution providers by short name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.errors import DependencyError, EdgeportError, UsageError
from runtime.runners.base import Runner, TensorSpec

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
}


def import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyError(
            "Running ONNX artifacts needs ONNX Runtime, which is not installed.",
            hint="Install `pip install edgeport[cpu]` (onnxruntime) or, on GPU machines, "
            "`pip install edgeport[gpu]` (onnxruntime-gpu); never both.",
        ) from exc
    return ort


def resolve_provider(provider: str) -> str:
    """Map a short provider name to ONNX Runtime's, checking it is available here."""
    ort = import_ort()
    if provider not in PROVIDERS:
        raise UsageError(f"Unknown provider '{provider}'; choose one of {', '.join(PROVIDERS)}.")
    full = PROVIDERS[provider]
    available = ort.get_available_providers()
    if full not in available:
        short = [k for k, v in PROVIDERS.items() if v in available]
        raise DependencyError(
            f"--provider {provider} needs onnxruntime-gpu, which is not installed here: this ONNX Runtime offers "
            f"{', '.join(short)} only ({', '.join(available)}).",
            hint="Install onnxruntime-gpu (`pip uninstall onnxruntime` then `pip install edgeport[gpu]`: onnxruntime "
            "and onnxruntime-gpu must not both be installed, the CPU one hides the GPU one) on a machine with an "
            "NVIDIA GPU, or run on the CPU with --provider cpu.",
        )
    return full


def check_provider_started(session, full: str, label: str) -> None:
    """ONNX Runtime falls back to the CPU when a GPU provider cannot start (no device, CUDA init
    failed) and only logs it: timings and accuracy would silently be the CPU's, so refuse."""
    if full == "CPUExecutionProvider" or full in session.get_providers():
        return
    import os

    raise DependencyError(
        f"ONNX Runtime's {full} is installed but could not start for {label}: no NVIDIA GPU is visible to CUDA "
        f"here (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}), or its CUDA/cuDNN "
        "libraries do not match the driver.",
        hint="Check that `nvidia-smi` lists a GPU on this machine and that CUDA_VISIBLE_DEVICES names it, or run "
        "on the CPU with --provider cpu.")


OPTIMIZATION_LEVELS = ("all", "basic", "none")


def _with_outputs(model, names: list[str]):
    """A copy of the ModelProto ``model`` whose graph also outputs ``names`` (untyped)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    have = {o.name for o in copy.graph.output}
    copy.graph.output.extend([onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in have])
    return copy


def create_session(model, *, provider: str = "cpu", threads: int | None = None, optimization: str = "all",
                   provider_options: dict | None = None, optimized_model_path: str | Path | None = None,
                   what: str | None = None, extra_outputs: list[str] | None = None):
    """The one place edgeport creates an ONNX Runtime session.

    ``model`` is a path, serialized bytes or an onnx ModelProto. ``threads`` sets the
    intra-op threads (inter-op 1: the graphs are sequential). ``optimized_model_path``
    makes ORT write the graph it will run (to see which kernels it fused). ``extra_outputs``
    (``model`` a ModelProto): intermediate tensors the session also returns, declared without a
    type so ONNX Runtime infers it (an int64 shape tensor stays int64). Errors become an
    EdgeportError naming ``what`` (default: the path).
    """
    ort = import_ort()
    if optimization not in OPTIMIZATION_LEVELS:
        raise UsageError(f"Unknown graph optimization level '{optimization}'; choose {', '.join(OPTIMIZATION_LEVELS)}.")
    full = resolve_provider(provider)
    opts = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}.")
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    opts.log_severity_level = 3
    if optimized_model_path is not None:
        opts.optimized_model_filepath = str(optimized_model_path)
    providers: list = [full] if full == "CPUExecutionProvider" else [full, "CPUExecutionProvider"]
    if provider_options:
        # e.g. the TensorRT EP's engine cache in edgeport's cache folder (runtime/engines/ort_ep.py)
        providers[0] = (full, dict(provider_options))
    if extra_outputs:
        model = _with_outputs(model, extra_outputs)
    if hasattr(model, "SerializeToString"):
        source, label = model.SerializeToString(), what or "an in-memory ONNX graph"
    elif isinstance(model, (bytes, bytearray)):
        source, label = bytes(model), what or "an in-memory ONNX graph"
    else:
        source, label = str(model), what or str(model)
    try:
        session = ort.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as exc:  # ORT raises its own exception types
        raise EdgeportError(f"ONNX Runtime could not load {label}: {type(exc).__name__}: {str(exc)[:400]}.") from exc
    check_provider_started(session, full, label)
    return session


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX graph on ONNX Runtime. ``model``: a path, serialized bytes, an onnx ModelProto,
    or an already created ``InferenceSession`` (Polygraphy-style: the exporter hands over the
    sessions and graphs it holds instead of running them by hand)."""

    backend = "onnxruntime"

    def __init__(self, model, *, provider: str = "cpu", threads: int | None = None,
                 max_batch: int | None = None, optimization: str = "all", provider_options: dict | None = None,
                 what: str | None = None):
        super().__init__()
        self.provider = provider
        if _is_session(model):
            self.session = model
        else:
            self.session = create_session(model, provider=provider, threads=threads, optimization=optimization,
                                          provider_options=provider_options, what=what)
        self.inputs = [
            TensorSpec(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)), tuple(
                d if isinstance(d, int) else None for d in i.shape))
            for i in self.session.get_inputs()
        ]
        self.outputs = [
            TensorSpec(o.name, np.dtype(_ORT_TYPES.get(o.type, np.float32)), tuple(
                d if isinstance(d, int) else None for d in o.shape))
            for o in self.session.get_outputs()
        ]
        self._output_names = [o.name for o in self.outputs]
        self.max_batch = max_batch
        self.run_options = None  # an ort.RunOptions for every run (e.g. a quieter log level)

    @property
    def description(self) -> str:
        return f"onnxruntime/{self.provider}"

    def infer_impl(self, feed):
        values = self.session.run(self._output_names, feed, self.run_options)
        return dict(zip(self._output_names, values))


def _is_session(model) -> bool:
    """An InferenceSession (or anything that runs like one), as opposed to a graph to load."""
    return callable(getattr(model, "run", None)) and callable(getattr(model, "get_inputs", None))
