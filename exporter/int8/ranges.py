"""The calibration step: one pass of ONNX Runtime's calibrator, cached, as a ``CalibrationRanges``.

Calibration ranges are cached, keyed by a sha256 of everything they depend on (the FP32
graph, the preprocessing, the calibration files, the method, the sample count and this
recipe's version): calibration.json in the bundle, and the same file in the cache folder
(runtime/fsutil.py's ``cache_root()``: $EDGEPORT_CACHE, else $XDG_CACHE_HOME/edgeport, else
~/.cache/edgeport) because a bundle is rewritten by every export. The one pass records, per
tensor, the method's symmetric range (model.int8.onnx, calib.cache) and the observed min/max
(model.int8-cpu.onnx), so the CPU artifact never calibrates a second time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import EdgeportError
from runtime.fsutil import cache_root

from exporter.int8.calibration_file import CALIBRATION_FILE, CalibrationFileError, CalibrationRanges
from exporter.int8.ort_quant import quiet_ort

# Bump when the calibration or quantization recipe changes: old cached ranges then no longer match.
# 2: calibration.json also records each tensor's observed min/max (model.int8-cpu.onnx's ranges).
RECIPE_VERSION = 2
METHODS = ("minmax", "entropy", "percentile")
# Chosen by measurement (docs/int8.md): agreement and centered cosine vs PyTorch.
DEFAULT_METHOD = "minmax"
PERCENTILE = 99.999
_CHUNK = 16  # samples per calibrator pass: bounds the memory of histogram methods


def calibration_key(graph_bytes: bytes, preprocessing: dict, calib_digest: str, method: str, samples: int) -> str:
    """sha256 of everything the ranges depend on; any change gives a new key (recalibration)."""
    h = hashlib.sha256()
    for part in (
        f"edgeport-int8-recipe-{RECIPE_VERSION}",
        hashlib.sha256(graph_bytes).hexdigest(),
        json.dumps(preprocessing, sort_keys=True),
        calib_digest,
        method,
        str(samples),
        str(PERCENTILE) if method == "percentile" else "",
    ):
        h.update(part.encode("utf-8") + b"\n")
    return h.hexdigest()


def cache_file(key: str) -> Path:
    """Where the ranges of ``key`` are kept between exports."""
    return cache_root() / "calibration" / f"{key}.json"


def _calibrator(model_path: Path, method: str, tmp: Path):
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    # MinMax runs asymmetric: the symmetric range is derived below (+-max|x|, what ORT's own
    # symmetric MinMax computes), and the real min/max are kept for the CPU artifact.
    options = {"symmetric": method != "minmax"}
    if method == "percentile":
        options["percentile"] = PERCENTILE
    with quiet_ort():
        # op_types None: every float tensor, so calib.cache covers every layer TensorRT builds.
        return create_calibrator(model_path, None, augmented_model_path=str(tmp / "augmented.onnx"),
                                 calibrate_method=ort_method, extra_options=options)


def _collect(calibrator, calib, input_name: str, method: str) -> dict:
    """Run ``calib`` through the calibrator; ORT's TensorsData."""
    from exporter.int8.calibration import CalibrationReader

    with console.Progress(len(calib), f"calibrating ({method}, {len(calib)} samples)") as progress:
        # One sample per call: ORT's calibration session keeps every activation of a call alive
        # (~350 MB per densenet121 sample at 224x224), and speed per sample is the same.
        reader = CalibrationReader(calib, input_name, batch=1, on_batch=progress.update)
        try:
            with quiet_ort():
                for start in range(0, len(calib), _CHUNK):
                    reader.set_range(start, start + _CHUNK)
                    calibrator.collect_data(reader)
                return calibrator.compute_data()
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EdgeportError(f"Calibration failed in ONNX Runtime: {type(exc).__name__}: {str(exc)[:400]}",
                                hint="Rerun with --debug for the traceback.") from exc


def calibrate_ranges(model_path: Path, calib, input_name: str, method: str, tmp: Path) -> tuple[dict, dict]:
    """Run the calibrator over every float tensor, once.

    Returns ``(ranges, observed)``: ``ranges`` ``{tensor: [lo, hi]}`` is the method's symmetric
    range (model.int8.onnx, calib.cache); ``observed`` ``{tensor: [min, max]}`` is the real
    minimum and maximum seen, which model.int8-cpu.onnx's asymmetric uint8 grid needs
    (exporter/int8/cpu_int8.py), so that artifact never calibrates a second time.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    calibrator = _calibrator(model_path, method, tmp)
    data = _collect(calibrator, calib, input_name, method)
    found = _finite_pairs({name: td.range_value for name, td in data.items()})
    if not found:
        raise EdgeportError("Calibration produced no tensor ranges (the calibrator saw no float tensors).")
    if method == "minmax":
        observed = found
        ranges = {n: [-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))] for n, (lo, hi) in found.items()}
    else:
        ranges = found
        observed = _histogram_min_max(calibrator, ranges)
        if observed is None:  # an ORT whose histogram collector keeps no min/max: one MinMax pass more
            console.log("calibration: this ONNX Runtime's histogram calibrator does not expose the observed "
                        "min/max; measuring them with a MinMax pass for model.int8-cpu.onnx")
            observed = calibrate_ranges(model_path, calib, input_name, "minmax", tmp)[1]
    return ranges, observed


def _finite_pairs(values: dict) -> dict[str, list[float]]:
    out = {}
    for name, pair in values.items():
        lo, hi = (float(np.asarray(v, dtype=np.float64).reshape(-1)[0]) for v in pair)
        if math.isfinite(lo) and math.isfinite(hi):
            out[name] = [lo, hi]
    return out


def _histogram_min_max(calibrator, ranges: dict) -> dict | None:
    """The observed min/max that ORT's histogram collector records next to each histogram
    (entries ``(hist, edges, min, max, ...)``); None when this ORT keeps them elsewhere."""
    histograms = getattr(getattr(calibrator, "collector", None), "histogram_dict", None)
    if not isinstance(histograms, dict):
        return None
    try:
        observed = _finite_pairs({name: (h[2], h[3]) for name, h in histograms.items() if name in ranges})
    except (IndexError, TypeError, ValueError):
        return None
    return observed if set(observed) >= set(ranges) else None


def _read_cached(path: Path, key: str) -> CalibrationRanges | None:
    """The ranges of a calibration.json with this key; None when absent or unusable (a miss)."""
    try:
        cached = CalibrationRanges.read(path)
    except (OSError, CalibrationFileError):
        return None
    return cached if cached.key == key else None


def _save_cache(ranges: CalibrationRanges) -> None:
    target = cache_file(ranges.key)
    try:
        ranges.write(target)
    except OSError as exc:
        console.warn(f"could not save the calibration cache {target} ({exc}); the next export will calibrate again")


def cached_or_calibrated(previous_bundle: Path, key: str, method: str, calib, pre_path: Path, input_name: str,
                         tmp: Path) -> tuple[CalibrationRanges, bool]:
    """(the ranges for ``key``, calibrated?): the previous bundle's or the cache's, else a calibration
    run (then saved in the cache)."""
    source = {"path": str(calib.path), "kind": calib.source, "digest": calib.digest, "skipped": len(calib.skipped)}
    for candidate in (previous_bundle / CALIBRATION_FILE, cache_file(key)):
        cached = _read_cached(candidate, key)
        if cached is not None:
            console.log(f"calibration cache hit (key {key[:12]}): reusing the {method} ranges of "
                        f"{len(cached.ranges)} tensors from {candidate}")
            # Same key, same data (digest); the path and skipped files are this export's.
            return dataclasses.replace(cached, source=source, samples=len(calib)), False
    console.log(f"calibration cache miss (key {key[:12]}): calibrating with {method} on {calib.describe()}")
    ranges, observed = calibrate_ranges(pre_path, calib, input_name, method, tmp)
    result = CalibrationRanges(
        key=key, method=method, samples=len(calib), source=source,
        ranges={n: tuple(v) for n, v in ranges.items()},
        observed={n: tuple(observed.get(n, v)) for n, v in ranges.items()},
        recipe_version=RECIPE_VERSION, percentile=PERCENTILE if method == "percentile" else None)
    _save_cache(result)
    return result, True


# -- the calibration images -----------------------------------------------------------------------
def _verify_files(config):
    from runtime.preprocess import list_images

    from exporter.golden import BUILTIN_DIR

    if config.golden_data:
        if Path(config.golden_data).is_file():  # preprocessed arrays: no image files to compare
            return [], f"--golden-data {config.golden_data}"
        return list_images(config.golden_data)[: config.golden_samples], f"--golden-data {config.golden_data}"
    return list_images(BUILTIN_DIR), f"the built-in golden photos ({BUILTIN_DIR})"


def calibration_set(manifest, pre, config, *, check: bool = True, log=console.log):
    """The calibration images (or arrays) as configured; with ``check``, warned about and checked
    not to overlap the golden set."""
    from exporter.int8.calibration import check_overlap, default_calib_dir, load_calibration

    calib_path = Path(config.calib_data) if config.calib_data else default_calib_dir()
    calib = load_calibration(calib_path, pre, tuple(manifest.input.chw), config.calib_samples,
                             input_name=manifest.input.name, log=log)
    if not check:
        return calib
    if config.calib_samples and len(calib) < config.calib_samples:
        console.warn(f"--calib-samples {config.calib_samples} asked for more samples than {calib_path} provides; "
                     f"calibrating on {len(calib)}")
    if calib.skipped:
        console.warn(f"calibration: {len(calib.skipped)} of {calib.available} files could not be read "
                     f"(first: {calib.skipped[0][0]}: {calib.skipped[0][1]})")
    check_overlap(calib, *_verify_files(config))
    return calib
