"""edgeport runtime: read a bundle, run its artifacts, verify them against PyTorch.

Needs numpy and ONNX Runtime (or TensorRT); never torch, never the exporter package.
Heavy backends are imported lazily so that `import runtime` works everywhere.
"""

__version__ = "0.1.0"  # the one version string: pyproject.toml and edgeport.__version__ read it
