"""INT8 by explicit quantization: a Q/DQ ONNX graph that TensorRT 8.6 to 11 builds as INT8.

TensorRT 11 removed implicit INT8 calibration, so the precision lives in the graph as
QuantizeLinear/DequantizeLinear pairs. ONNX Runtime's static quantizer writes them,
configured for TensorRT's rules (runtime/graph/qdq_lint.py checks every one of them):

- symmetric INT8 everywhere, zero points 0 (TensorRT: "Non-zero zero point is not supported");
- activations per tensor, weights per output channel (int8 initializers + DequantizeLinear);
- biases stay float (``QuantizeBias: False``): TensorRT's parser cannot dequantize the INT32
  bias ORT writes by default, and folds float biases into INT8 convolutions anyway;
- Q/DQ on the inputs of every Conv, Gemm and MatMul (constant B); outputs of weighted ops are
  not quantized (TensorRT's placement advice: quantize inputs, let it fuse the outputs);
- residual Adds: Q/DQ on the identity input; the input coming straight from a Conv is left
  float so TensorRT fuses Conv+Add(+ReLU) into one INT8 kernel (as in NVIDIA's ResNet recipe);
- Concat (DenseNet): Q/DQ on the inputs, with one scale shared by every tensor connected
  through Concats, so TensorRT can drop the concatenation instead of re-quantizing.

Calibration ranges are cached, keyed by a sha256 of everything they depend on (the FP32
graph, the preprocessing, the calibration files, the method, the sample count and this
recipe's version): calibration.json in the bundle, and the same file in a cache folder
($EDGEPORT_CACHE, else $XDG_CACHE_HOME/edgeport, else ~/.cache/edgeport) because a bundle
is rewritten by every export. The same ranges give ``calib.cache`` in TensorRT's format for
the implicit-INT8 path of TensorRT <= 10 (DLA builds), with model.onnx's tensor names.
calibration.json also keeps each tensor's observed min/max from the same pass: the ranges of
model.int8-cpu.onnx (exporter/int8/cpu_int8.py), which therefore never calibrates a second time.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import DependencyError, EdgeportError, UsageError, require
from runtime.fsutil import atomic_write_text
from runtime.manifest import CalibrationSource, Int8Info, TrtCalibrationCache
from runtime.graph.index import GraphIndex
from runtime.precision import precision
from runtime.engines.calibration import TABLE_VERSION, write_table

from exporter.graph.qdq_graph import prune_dead_qdq

# Bump when the calibration or quantization recipe changes: old cached ranges then no longer match.
# 2: calibration.json also records each tensor's observed min/max (model.int8-cpu.onnx's ranges).
RECIPE_VERSION = 2
METHODS = ("minmax", "entropy", "percentile")
# Chosen by measurement (docs/int8.md): agreement and centered cosine vs PyTorch.
DEFAULT_METHOD = "minmax"
PERCENTILE = 99.999
INT8_FILE = precision("int8").artifact
CALIBRATION_FILE = "calibration.json"
TRT_CACHE_FILE = "calib.cache"
# NV_TENSORRT_VERSION of the TensorRT that reads calib.cache by default: 10.3.0 (JetPack 6,
# the last JetPack whose TensorRT has implicit INT8 and DLA). 8.6.1 would be "8601".
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
QUANTIZED_OPS = WEIGHTED_OPS + ("Add", "Concat")
# Pools get Q/DQ on their input (ModelOpt does the same): TensorRT then pools INT8 data and the
# layer before writes INT8. ORT's quantizer leaves pool inputs alone (it only propagates an
# existing input scale to the output), so quantize_pool_inputs places them.
POOL_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool")
_CHUNK = 16  # samples per calibrator pass: bounds the memory of histogram methods


def cache_dir() -> Path:
    """Where calibration ranges are kept between exports."""
    if os.environ.get("EDGEPORT_CACHE"):
        return Path(os.environ["EDGEPORT_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "edgeport"
    return Path.home() / ".cache" / "edgeport"


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


# -- calibration ------------------------------------------------------------------------------
def quiet_ort():
    """ORT's quantization tools print to stdout and log warnings on the root logger."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    stack.callback(root.setLevel, level)
    return stack


def prepare_for_quantization(graph_bytes: bytes, tmp: Path) -> Path:
    """ORT's quant_pre_process on a copy: shape inference only, so tensor names stay model.onnx's."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = tmp / "fp32.onnx", tmp / "fp32.pre.onnx"
    src.write_bytes(graph_bytes)
    with quiet_ort():
        # No ORT graph optimization: it could fuse or rename nodes, and calib.cache must
        # name the tensors TensorRT sees when it parses model.onnx.
        quant_pre_process(str(src), str(dst), skip_optimization=True, skip_symbolic_shape=True)
    return dst


def calibrate_ranges(model_path: Path, calib, input_name: str, method: str, tmp: Path) -> tuple[dict, dict]:
    """Run the calibrator over every float tensor, once.

    Returns ``(ranges, observed)``: ``ranges`` ``{tensor: [lo, hi]}`` is the method's symmetric
    range (model.int8.onnx, calib.cache); ``observed`` ``{tensor: [min, max]}`` is the real
    minimum and maximum seen, which model.int8-cpu.onnx's asymmetric uint8 grid needs
    (exporter/int8/cpu_int8.py), so that artifact never calibrates a second time.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    from exporter.int8.calibration import CalibrationReader

    ort.set_default_logger_severity(3)
    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    # MinMax runs asymmetric: the symmetric range is derived below (+-max|x|, what ORT's own
    # symmetric MinMax computes), and the real min/max are kept for the CPU artifact.
    options = {"symmetric": method != "minmax"}
    if method == "percentile":
        options["percentile"] = PERCENTILE
    with quiet_ort():
        # op_types None: every float tensor, so calib.cache covers every layer TensorRT builds.
        calibrator = create_calibrator(model_path, None, augmented_model_path=str(tmp / "augmented.onnx"),
                                       calibrate_method=ort_method, extra_options=options)
    with console.Progress(len(calib), f"calibrating ({method}, {len(calib)} samples)") as progress:
        # One sample per call: ORT's calibration session keeps every activation of a call alive
        # (~350 MB per densenet121 sample at 224x224), and speed per sample is the same.
        reader = CalibrationReader(calib, input_name, batch=1, on_batch=progress.update)
        try:
            with quiet_ort():
                for start in range(0, len(calib), _CHUNK):
                    reader.set_range(start, start + _CHUNK)
                    calibrator.collect_data(reader)
                data = calibrator.compute_data()
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EdgeportError(f"Calibration failed in ONNX Runtime: {type(exc).__name__}: {str(exc)[:400]}",
                                hint="Rerun with --debug for the traceback.") from exc
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


def _read_cached(path: Path, key: str) -> tuple[dict, dict] | None:
    """(ranges, observed) from a calibration.json with this key; None when absent or unusable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("tensors"), dict):
        return None
    try:
        ranges = {name: [float(v["min"]), float(v["max"])] for name, v in data["tensors"].items()}
        observed = {name: [float(v["observed"][0]), float(v["observed"][1])] for name, v in data["tensors"].items()}
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return ranges, observed


def observed_ranges(document: dict) -> dict[str, list[float]]:
    """The observed ``{tensor: [min, max]}`` of a calibration.json document (model.int8-cpu.onnx's ranges)."""
    return {name: [float(v["observed"][0]), float(v["observed"][1])] for name, v in document["tensors"].items()}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def calibration_document(key: str, method: str, calib, ranges: dict, observed: dict) -> dict:
    """calibration.json: the ranges plus what they were computed from.

    Per tensor: ``min``/``max``/``amax``, the method's symmetric range (model.int8.onnx and
    calib.cache), and ``observed``, the real [min, max] (model.int8-cpu.onnx)."""
    return {
        "format": "edgeport-calibration",
        "version": 1,
        "key": key,
        "recipe_version": RECIPE_VERSION,
        "method": method,
        "percentile": PERCENTILE if method == "percentile" else None,
        "samples": len(calib),
        "source": {"path": str(calib.path), "kind": calib.source, "digest": calib.digest,
                   "skipped": len(calib.skipped)},
        "tensors": {name: {"min": lo, "max": hi, "amax": max(abs(lo), abs(hi)),
                           "observed": observed.get(name, [lo, hi])}
                    for name, (lo, hi) in sorted(ranges.items())},
    }


# -- quantization -----------------------------------------------------------------------------
def shared_concat_ranges(model, ranges: dict) -> dict:
    """One range for every group of tensors joined by Concats (inputs and outputs).

    TensorRT removes a Concat whose inputs share a scale (each producer writes INT8 into
    its slice); different scales force a re-quantization per input.
    """
    groups: dict[str, list[str]] = {}
    for t, root in GraphIndex(model).concat_groups(keep=lambda t: t in ranges).items():
        groups.setdefault(root, []).append(t)
    out = dict(ranges)
    for members in groups.values():
        amax = max(max(abs(ranges[t][0]), abs(ranges[t][1])) for t in members)
        for t in members:
            out[t] = [-amax, amax]
    return out


def _nodes_to_exclude(model) -> list[str]:
    """Adds/Concats with a constant input (a bias add, a normalization) stay float: only
    activation-activation Adds are residual joins, and a constant would be quantized to INT8."""
    constants = GraphIndex(model).constants
    out = []
    for node in model.graph.node:
        if node.op_type in ("Add", "Concat") and any(i in constants for i in node.input if i):
            out.append(node.name)
        if node.op_type == "MatMul" and not (len(node.input) > 1 and node.input[1] in constants):
            out.append(node.name)  # activation x activation MatMul: not a weighted layer
    return out


def _ensure_node_names(model) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def quantize_qdq(pre_path: Path, ranges: dict, out_path: Path, tmp: Path):
    """ORT's static quantizer with TensorRT's rules; returns the post-processed ModelProto."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    model = onnx.load(str(pre_path))
    _ensure_node_names(model)
    named = tmp / "fp32.named.onnx"
    onnx.save(model, str(named))
    ranges = shared_concat_ranges(model, ranges)
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()})
    ort_cache = tmp / "ort-ranges.json"
    save_tensors_data(tensors, ort_cache)
    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise DependencyError(
            f"This ONNX Runtime ({onnxruntime.__version__}) has no quantize_static(calibration_cache_path=...), "
            "which edgeport uses to hand over its own calibration ranges.",
            hint="Upgrade it on the export host: pip install -U onnxruntime.")
    try:
        with quiet_ort():
            quantize_static(
                str(named), str(out_path), None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                reduce_range=False,
                activation_type=QuantType.QInt8,  # ORT's default QUInt8 is asymmetric: TensorRT refuses it
                weight_type=QuantType.QInt8,
                nodes_to_exclude=_nodes_to_exclude(model),
                calibrate_method=CalibrationMethod.MinMax,  # the ranges are ours; only the cache is read
                calibration_cache_path=str(ort_cache),
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    "QuantizeBias": False,
                    "MatMulConstBOnly": True,
                    # Quantize inputs only; TensorRT fuses the output scale into the next layer.
                    "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
                    # Output-channel axis of the weights: Conv [K,C,R,S] -> 0, MatMul [K,N] -> 1.
                    "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "MatMul": 1},
                },
            )
    except Exception as exc:  # noqa: BLE001 - ORT raises many types on unusual graphs
        raise EdgeportError(f"ONNX Runtime could not quantize the model: {type(exc).__name__}: {str(exc)[:400]}",
                            hint="Rerun with --debug for the traceback; export without --int8 meanwhile.") from exc
    qmodel = onnx.load(str(out_path))
    fused = fuse_residual_inputs(qmodel)
    quantize_pool_inputs(qmodel, ranges)
    return qmodel, fused


def apply_fp16_regions(qmodel, ranges: dict, keep_fp32=()):
    """FP16 float regions (exporter/graph/float_regions.py) on ``qmodel`` in place; returns the pass's
    stats, or None (with a warning, the graph unchanged) when the result does not type-check."""
    import onnx

    from exporter.graph.float_regions import fp16_float_regions

    candidate = onnx.ModelProto()
    candidate.CopyFrom(qmodel)
    try:
        stats = fp16_float_regions(candidate, ranges, keep_fp32)
        onnx.shape_inference.infer_shapes(candidate, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - an op the pass does not know: keep the FP32 regions
        console.warn(f"INT8: could not give the float regions FP16 types ({type(exc).__name__}: {str(exc)[:200]}); "
                     "model.int8.onnx keeps them in FP32")
        return None
    qmodel.CopyFrom(candidate)
    return stats


def quantize_pool_inputs(model, ranges: dict) -> int:
    """Q/DQ (symmetric INT8, per tensor, scale amax/127 as ORT computes it) on the input of every
    MaxPool/AveragePool/GlobalAveragePool not already quantized; returns how many were added."""
    from onnx import helper, numpy_helper

    producer = {o: n for n in model.graph.node for o in n.output}
    added: dict[str, str] = {}
    new_nodes = []
    for node in model.graph.node:
        x = node.input[0] if node.op_type in POOL_OPS and node.input else ""
        p = producer.get(x)
        if x and (p is None or p.op_type != "DequantizeLinear") and x in ranges:
            amax = max(abs(ranges[x][0]), abs(ranges[x][1]))
            if x not in added and math.isfinite(amax) and amax > 0:
                base = f"{x}_pool"
                model.graph.initializer.extend([
                    numpy_helper.from_array(np.array(amax / 127.0, np.float32), f"{base}_scale"),
                    numpy_helper.from_array(np.array(0, np.int8), f"{base}_zero_point")])
                new_nodes.append(helper.make_node("QuantizeLinear", [x, f"{base}_scale", f"{base}_zero_point"],
                                                  [f"{base}_QuantizeLinear_Output"], name=f"{base}_QuantizeLinear"))
                new_nodes.append(helper.make_node("DequantizeLinear", [f"{base}_QuantizeLinear_Output",
                                                                       f"{base}_scale", f"{base}_zero_point"],
                                                  [f"{base}_DequantizeLinear_Output"], name=f"{base}_DequantizeLinear"))
                added[x] = f"{base}_DequantizeLinear_Output"
            if x in added:
                node.input[0] = added[x]
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return len(added)


def fuse_residual_inputs(model) -> int:
    """Leave float the Add input that comes straight from a Conv/Gemm (one per Add).

    TensorRT fuses Conv + Add(+ReLU) when the Conv's output feeds the Add directly and the
    other (residual) input is quantized; a Q/DQ pair between them would block the fusion.
    In a PyTorch ResNet the first Add input is the main branch (``out += identity``).
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        dq = [producer.get(i) for i in node.input]
        if not all(d is not None and d.op_type == "DequantizeLinear" for d in dq):
            continue
        for idx in (0, 1):
            q = producer.get(dq[idx].input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            src = producer.get(q.input[0])
            if src is not None and src.op_type in ("Conv", "Gemm"):
                node.input[idx] = q.input[0]
                changed += 1
                break
    prune_dead_qdq(model.graph)  # the Q/DQ pairs the fused inputs no longer read
    return changed


# -- TensorRT calibration cache (written with runtime/engines/calibration.py) -------------------------
def _fp32_tensor_names(model) -> list[str]:
    """model.onnx's activation tensors in graph order: the names TensorRT's parser gives them."""
    names = [i.name for i in model.graph.input]
    for node in model.graph.node:
        names += [o for o in node.output if o]
    return list(dict.fromkeys(names))


# -- the export stage ----------------------------------------------------------------------------
def _verify_files(config):
    from runtime.preprocess import list_images

    from exporter.golden import BUILTIN_DIR

    if config.golden_data:
        if Path(config.golden_data).is_file():  # preprocessed arrays: no image files to compare
            return [], f"--golden-data {config.golden_data}"
        return list_images(config.golden_data)[: config.golden_samples], f"--golden-data {config.golden_data}"
    return list_images(BUILTIN_DIR), f"the built-in golden photos ({BUILTIN_DIR})"


def _calibration_set(manifest, built, config):
    """The calibration images (or arrays) as configured, checked not to overlap the golden set."""
    from exporter.int8.calibration import check_overlap, default_calib_dir, load_calibration

    calib_path = Path(config.calib_data) if config.calib_data else default_calib_dir()
    calib = load_calibration(calib_path, built.preprocessing, manifest.input.chw, config.calib_samples,
                             input_name=manifest.input.name, log=console.log)
    if config.calib_samples and len(calib) < config.calib_samples:
        console.warn(f"--calib-samples {config.calib_samples} asked for more samples than {calib_path} provides; "
                     f"calibrating on {len(calib)}")
    if calib.skipped:
        console.warn(f"calibration: {len(calib.skipped)} of {calib.available} files could not be read "
                     f"(first: {calib.skipped[0][0]}: {calib.skipped[0][1]})")
    check_overlap(calib, *_verify_files(config))
    return calib


def _cached_or_calibrated(staged, key: str, method: str, calib, pre_path: Path, input_name: str, tmp: Path):
    """(ranges, observed ranges, calibrated?): the bundle's or the cache's ranges for ``key``,
    else a calibration run."""
    for candidate in (staged.final / CALIBRATION_FILE, cache_dir() / "calibration" / f"{key}.json"):
        cached = _read_cached(candidate, key)
        if cached is not None:
            ranges, observed = cached
            console.log(f"calibration cache hit (key {key[:12]}): reusing the {method} ranges of "
                        f"{len(ranges)} tensors from {candidate}")
            return ranges, observed, False
    console.log(f"calibration cache miss (key {key[:12]}): calibrating with {method} on {calib.describe()}")
    ranges, observed = calibrate_ranges(pre_path, calib, input_name, method, tmp)
    return ranges, observed, True


def _save_calibration_cache(key: str, text: str) -> None:
    cache_file = cache_dir() / "calibration" / f"{key}.json"
    try:
        _write_atomic(cache_file, text)
    except OSError as exc:
        console.warn(f"could not save the calibration cache {cache_file} ({exc}); the next export will calibrate "
                     "again")


def add_int8(staged, manifest, model, built, config) -> tuple:
    """Calibrate, quantize and lint; write model.int8.onnx, calibration.json and calib.cache.

    Returns (the artifact's FileEntry, the manifest's Int8Info section).
    """
    require("onnx", purpose="INT8 quantization", install="pip install 'edgeport[export]'")
    require("onnxruntime.quantization", purpose="INT8 quantization", install="pip install 'edgeport[cpu]'")
    from runtime.graph.qdq_lint import lint_model

    from exporter.bundle_writer import guard_disk

    method = config.calib_method or DEFAULT_METHOD
    if method not in METHODS:
        raise UsageError(f"--calib-method '{method}' is unknown; choose one of {', '.join(METHODS)}.")
    if (manifest.opset or 17) < 13:
        raise UsageError(f"--int8 needs --opset 13 or newer (per-channel QuantizeLinear/DequantizeLinear), "
                         f"got {manifest.opset}.", hint="Drop --opset (default 17) or pass 13..20.")
    input_name = manifest.input.name
    calib = _calibration_set(manifest, built, config)

    graph_bytes = staged.path("model.onnx").read_bytes()
    key = calibration_key(graph_bytes, manifest.preprocessing, calib.digest, method, len(calib))
    with tempfile.TemporaryDirectory(prefix="edgeport-int8-") as tmpdir:
        tmp = Path(tmpdir)
        pre_path = prepare_for_quantization(graph_bytes, tmp)
        t0 = time.perf_counter()
        ranges, observed, calibrated = _cached_or_calibrated(staged, key, method, calib, pre_path, input_name, tmp)
        calib_seconds = round(time.perf_counter() - t0, 3)
        text = json.dumps(calibration_document(key, method, calib, ranges, observed), indent=1) + "\n"
        if calibrated:
            _save_calibration_cache(key, text)
        qmodel, fused = quantize_qdq(pre_path, ranges, tmp / "int8.onnx", tmp)
    regions = apply_fp16_regions(qmodel, ranges)

    report = lint_model(qmodel)
    if not report.clean:
        raise EdgeportError(f"The INT8 graph edgeport produced breaks TensorRT's Q/DQ rules: {report.summary()}",
                            hint="This is a bug in edgeport; please report it with the model.")
    from exporter.onnx_export import save

    with guard_disk(staged.staging):
        save(qmodel, staged.path(INT8_FILE))
        staged.path(CALIBRATION_FILE).write_text(text)
        staged.path(TRT_CACHE_FILE).write_text(write_table(ranges, _fp32_tensor_names(model)))
    counts = report.counts()
    info = Int8Info(
        method=method,
        samples=len(calib),
        calibration_source=CalibrationSource(path=str(calib.path), kind=calib.source, skipped=len(calib.skipped),
                                             digest=calib.digest),
        cache_key=key,
        calibration=staged.entry(CALIBRATION_FILE),
        trt_calibration_cache=TrtCalibrationCache(
            **staged.entry(TRT_CACHE_FILE).to_dict(), header=f"TRT-{TABLE_VERSION}-EntropyCalibration2",
            extra={"tensor_names": "model.onnx",
                   "note": "for implicit INT8 (TensorRT <= 10, DLA); rewrite the first line's version if your "
                           "TensorRT ignores the cache"}),
        int8_ops=counts["int8"],
        float_ops=counts["float"],
        extra={"format": "QDQ", "calibrated": calibrated, "calibration_seconds": calib_seconds,
               "recipe_version": RECIPE_VERSION,
               "rules": {"activations": "int8 per-tensor symmetric", "weights": "int8 per-channel symmetric (axis 0)",
                         "zero_points": 0, "bias": "float", "residual_add_inputs_fused": fused,
                         "concat": "inputs share one scale", "pools": "inputs quantized",
                         "float_regions": "fp16" if regions is not None else "fp32"}},
    )
    if regions is not None:
        console.log(f"INT8: float regions in FP16 ({regions.fp16_nodes} nodes, {regions.casts} Casts; "
                    f"{regions.int8_adjacent_fp32} nodes next to Q/DQ keep FP32 types"
                    + (f", {len(regions.fp32_nodes)} kept FP32 for their range" if regions.fp32_nodes else "") + ")")
    console.log(f"INT8: {sum(counts['int8'].values())} layers in INT8, {sum(counts['float'].values())} left in float; "
                f"{fused} residual Add inputs fused; lint clean")
    return staged.entry(INT8_FILE), info
