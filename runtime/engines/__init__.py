"""TensorRT and TensorRT-RTX engines for a bundle: build them, record how, refuse mismatches.

The package is split so that every decision can be tested without TensorRT or a GPU:

- ``registry``      the engine runtimes (``ENGINE_RUNTIMES``: TensorRT, TensorRT-RTX) behind
                    one ``EngineRuntime`` protocol; nothing else compares a runtime's name;
- ``tensorrt``      TensorRT: capabilities per release, build plans (flags, DLA, paths),
                    engine names, the compatibility rules of its sidecars;
- ``tensorrt_rtx``  TensorRT-RTX (its own product line, 1.x): the same for it;
- ``policy``        what every runtime shares: versions, capabilities, the BuildPlan, batch
                    profile, workspace, Jetson detection: plain functions, no tensorrt import;
- ``target``        what one ``edgeport build`` shares (precisions, profile, calibration);
- ``device``        what this machine has (TensorRT version, GPU, Jetson, DLA cores);
- ``sidecar``       writing and listing the JSON next to each engine, the compatibility check
                    that runs before an engine is deserialized, and ``resolve_engine`` (used
                    by verify, predict and bench); ``sidecar_schema`` its types and strict reader;
- ``timing_cache``  where the reusable timing cache lives and how it is saved safely;
- ``calibration``   the TensorRT calibration cache of a bundle (implicit INT8 for DLA);
- ``builder``       the thin layer that calls the builder API (every runtime);
- ``layers``        what an engine is made of, from the builder's layer information;
- ``rtx``           importing TensorRT-RTX, its engine-validity check, its runtime (JIT) cache;
- ``build``         ``edgeport build``: ties the above together for each precision;
- ``cuda_mem``      device memory through cuda-python or PyTorch (for the runner);
- ``ort_ep``        options for ONNX Runtime's TensorRT execution provider.

``import tensorrt`` (and TensorRT-RTX's module) happens only inside functions, so
``import runtime.engines`` (and every ``--help``) works on machines without either.
"""
