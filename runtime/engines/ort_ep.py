"""Options for ONNX Runtime's TensorRT execution provider (``--provider tensorrt``).

The EP builds its own engines from the ONNX graph; these options keep them (and its timing
cache) in the bundle, so only the first session pays for the build, and pin the batch
profile to the bundle's range so a new batch size does not trigger a rebuild. FP16/INT8
flags stay off: the precision is in the graph (model.fp16.onnx / model.int8.onnx), and
ONNX Runtime builds a strongly typed network when neither flag is set.
"""

from __future__ import annotations

ENGINE_CACHE_DIR = "ort-trt-cache"


def tensorrt_ep_options(bundle, precision: str, warn=None) -> dict:
    """Provider options for the bundle's ``precision`` artifact (creates the cache folder).

    The batch profile is always pinned; on a read-only bundle the engine cache is off (and
    ``warn`` says so: every session then rebuilds its engines).
    """
    rest = "x".join(str(d) for d in bundle.input.chw)
    lo = bundle.min_batch
    hi = bundle.max_batch
    opt = max(min(8, hi), lo)
    name = bundle.input_name
    options = {
        "trt_fp16_enable": "False",
        "trt_int8_enable": "False",
        "trt_profile_min_shapes": f"{name}:{lo}x{rest}",
        "trt_profile_opt_shapes": f"{name}:{opt}x{rest}",
        "trt_profile_max_shapes": f"{name}:{hi}x{rest}",
    }
    cache = bundle.root / ENGINE_CACHE_DIR / precision
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        if warn is not None:
            warn(f"cannot write the TensorRT provider's engine cache {cache} ({exc.strerror or exc}): engines are "
                 "rebuilt by every session; copy the bundle somewhere writable to keep them")
        return options
    options.update({
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    })
    return options
