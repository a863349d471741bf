"""edgeport exporter: PyTorch classifiers -> verified ONNX bundles.

torch, torchvision, onnx and onnxsim are imported inside functions, so the CLI (and every
`--help`) works on a device that has only the runtime's dependencies.
"""

from runtime import __version__  # the one version string
