"""ONNX Runtime's static quantizer driven by edgeport's own ranges: the one place that calls it.

Both INT8 graphs are written by ``quantize_with_ranges``: model.int8.onnx (TensorRT's rules,
exporter/int8/quantize.py) and model.int8-cpu.onnx (ONNX Runtime CPU's U8S8 recipe,
exporter/int8/cpu_int8.py). The ranges come from one calibration pass
(exporter/int8/ranges.py); ORT's calibrator never runs here: the ranges are handed over
through ``calibration_cache_path``, in ORT's own cache format.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import DependencyError


def quiet_ort():
    """ORT's quantization tools print to stdout and log warnings on the root logger."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    stack.callback(root.setLevel, level)
    return stack


def prepare_for_quantization(graph_bytes: bytes, tmp: Path, *, optimize: bool = False) -> Path:
    """ORT's quant_pre_process on a copy of ``graph_bytes``; returns the prepared file.

    ``optimize=False``: shape inference only, so tensor names stay model.onnx's (calib.cache
    must name the tensors TensorRT sees when it parses model.onnx). ``optimize=True``: ORT's
    own graph optimizations too (Conv+BN folding, constant folding), as its quantization
    guide asks for CPU graphs.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    stem = "fp32.cpu" if optimize else "fp32"
    tmp = Path(tmp).resolve()
    src, dst = tmp / f"{stem}.onnx", tmp / f"{stem}.pre.onnx"
    src.write_bytes(graph_bytes)
    # ORT's symbolic shape inference saves its partial result (sym_shape_infer_temp.onnx and a
    # <uuid>.data) into the current directory when it fails: run it in ``tmp``.
    with quiet_ort(), contextlib.chdir(tmp):
        try:
            quant_pre_process(str(src), str(dst), skip_optimization=not optimize, skip_symbolic_shape=not optimize)
        except Exception as exc:  # noqa: BLE001 - ORT raises a bare Exception
            if not optimize or "symbolic shape inference" not in str(exc):
                raise
            # Resize/Upsample with a skip connection: symbolic inference gives up where ONNX's
            # own shape inference (still run) does not; a CNN needs nothing more from it.
            quant_pre_process(str(src), str(dst), skip_optimization=False, skip_symbolic_shape=True)
            console.log("int8-cpu: ONNX Runtime's symbolic shape inference gave up on this graph "
                        f"({str(exc)[:120]}); prepared with ONNX shape inference only")
    return dst


def quantize_with_ranges(model_path: Path, out_path: Path, ranges: dict, tmp: Path, **options) -> None:
    """``quantize_static`` in Q/DQ format on ``model_path`` with ``ranges`` ({tensor: [lo, hi]}).

    ``options`` are quantize_static's (activation/weight types, per_channel, reduce_range,
    nodes_to_exclude, extra_options...); the calibration arguments are ours.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise DependencyError(
            f"This ONNX Runtime ({onnxruntime.__version__}) has no quantize_static(calibration_cache_path=...), "
            "which edgeport uses to hand over its own calibration ranges.",
            hint="Upgrade it on the export host: pip install -U onnxruntime.")
    cache = tmp / f"{Path(out_path).stem}.ort-ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()}), cache)
    with quiet_ort():
        quantize_static(str(model_path), str(out_path), None, quant_format=QuantFormat.QDQ,
                        calibrate_method=CalibrationMethod.MinMax,  # the ranges are ours; only the cache is read
                        calibration_cache_path=str(cache), **options)
