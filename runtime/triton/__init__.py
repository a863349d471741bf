"""Triton Inference Server model repositories from a bundle (``edgeport triton``).

- ``config``: config.pbtxt as data, rendered as protobuf text and checked against Triton's
  ModelConfig schema (tritonclient, optional);
- ``plan``: options and the checks that pick what one entry serves (artifact or engine);
- ``repository``: writing ``<repository>/<name>/`` atomically;
- ``python_backend_model.py``: the python backend's model.py (numpy + onnxruntime only; it
  is copied into the repository, never imported by edgeport).

Imports only numpy and runtime at top level; tritonclient is imported when checking.
"""

from runtime.triton.plan import BACKENDS, PRECISIONS, TritonOptions
from runtime.triton.repository import TritonModel, write_repository

__all__ = ["BACKENDS", "PRECISIONS", "TritonModel", "TritonOptions", "write_repository"]
