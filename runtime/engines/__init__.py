"""TensorRT and TensorRT-RTX engines for a bundle: build them, record how, refuse mismatches.

The package is split so that every decision can be tested without TensorRT or a GPU:

- ``policy``        which build path, flags, profile and workspace a (TensorRT version,
                    precision, device) combination gets, and what TensorRT-RTX (its own
                    product line) has and lacks: plain functions, no imports of tensorrt;
- ``device``        what this machine has (TensorRT version, GPU, Jetson, DLA cores);
- ``sidecar``       the JSON next to each engine, the compatibility check that runs before
                    an engine is deserialized, and ``resolve_engine`` (used by verify,
                    predict and bench);
- ``timing_cache``  where the reusable timing cache lives and how it is saved safely;
- ``calibration``   the TensorRT calibration cache of a bundle (implicit INT8 for DLA);
- ``builder``       the thin layer that calls the builder API (TensorRT and TensorRT-RTX);
- ``rtx``           importing TensorRT-RTX, its engine-validity check, its runtime (JIT) cache;
- ``build``         ``edgeport build``: ties the above together for each precision;
- ``cuda_mem``      device memory through cuda-python or PyTorch (for the runner);
- ``ort_ep``        options for ONNX Runtime's TensorRT execution provider.

``import tensorrt`` (and TensorRT-RTX's module) happens only inside functions, so
``import runtime.engines`` (and every ``--help``) works on machines without either.
"""
