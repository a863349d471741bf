"""edgeport: PyTorch classifiers to verified ONNX, INT8 and TensorRT engines.

The public Python API (docs/api.md)::

    import edgeport

    result = edgeport.export(model, input_size=224, num_classes=10, fp16=True, int8=True)
    bundle = edgeport.Bundle.open(result.bundle)
    with bundle.runner("int8") as runner:          # ONNX Runtime CPU by default
        logits = runner.infer(images)["logits"]    # a bare array for single-input models
    report = edgeport.verify(bundle)               # typed results; report.json/.md/.html written
    bench = edgeport.benchmark(bundle, batches=(1, 8))
    engines = edgeport.build(bundle, runtime="tensorrt")

``exporter`` (needs torch) and ``runtime`` (numpy + ONNX Runtime or TensorRT) are the two
packages underneath; this facade imports them lazily, so ``import edgeport`` works on a
device without torch and only ``edgeport.export`` needs it.
"""

from __future__ import annotations

from runtime import __version__  # the one version string (pyproject.toml reads it too)

_API = {
    "export": "edgeport.api", "verify": "edgeport.api", "benchmark": "edgeport.api", "build": "edgeport.api",
    "predict": "edgeport.api", "Bundle": "runtime.bundle", "ExportResult": "exporter.pipeline",
    "VerifyResult": "edgeport.api", "BenchmarkResult": "edgeport.api", "Latency": "edgeport.api",
    "Prediction": "edgeport.api", "ClassScore": "edgeport.api", "open_runner": "runtime.runners",
    "Target": "runtime.runners", "Comparison": "runtime.compare", "Tolerance": "runtime.compare",
    "Manifest": "runtime.manifest", "Preprocessing": "runtime.preprocess", "EdgeportError": "runtime.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
