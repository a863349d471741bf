"""Options for ONNX Runtime's TensorRT execution provider (``--provider tensorrt``).

The EP builds its own engines from the ONNX graph; these options keep them (and its timing
cache) in edgeport's cache folder, so only the first session pays for the build, and pin the
batch profile to the bundle's range so a new batch size does not trigger a rebuild. FP16/INT8
flags stay off: the precision is in the graph (model.fp16.onnx / model.int8.onnx), and
ONNX Runtime builds a strongly typed network when neither flag is set.

The cache folder is ``$EDGEPORT_CACHE/ort-trt/<graph sha256>-b<min>-<max>``: named by the
graph's content (its sha256, checked against the manifest before anything runs) and the
profile, never by a key or file name from the bundle, and never inside the bundle, so a
bundle can neither name where edgeport writes nor plant engines the provider would load.
"""

from __future__ import annotations

from pathlib import Path

ENGINE_CACHE_DIR = "ort-trt"  # under runtime.fsutil.cache_root()


def engine_cache_dir(sha256: str, min_batch: int, max_batch: int, root: Path | None = None) -> Path:
    """The provider's cache folder for the graph with ``sha256`` and this batch profile."""
    from runtime.fsutil import cache_root

    if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
        raise ValueError(f"not a sha256: {sha256!r}")
    root = cache_root() if root is None else Path(root)
    return root / ENGINE_CACHE_DIR / f"{sha256}-b{int(min_batch)}-{int(max_batch)}"


def tensorrt_ep_options(bundle, precision: str, warn=None) -> dict:
    """Provider options for the bundle's ``precision`` artifact (creates the cache folder).

    The batch profile is always pinned; when the cache folder cannot be written the engine
    cache is off (and ``warn`` says so: every session then rebuilds its engines).
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
    bundle.artifact_path(precision)  # the graph's sha256 checked: the key below names these bytes
    cache = engine_cache_dir(bundle.artifact(precision).sha256, lo, hi)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        if warn is not None:
            warn(f"cannot write the TensorRT provider's engine cache {cache} ({exc.strerror or exc}): engines are "
                 "rebuilt by every session; set EDGEPORT_CACHE to a writable folder to keep them")
        return options
    options.update({
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
    })
    return options
