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

The ranges come from the calibration step (exporter/int8/ranges.py) as a ``CalibrationRanges``
(exporter/int8/calibration_file.py, calibration.json's one reader and writer), in memory. The
same ranges give ``calib.cache`` in TensorRT's format for the implicit-INT8 path of TensorRT <=
10 (DLA builds), with model.onnx's tensor names. The graph rewrites (residual fusion, pool
Q/DQ) are exporter/graph/rewrites.py's.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from runtime import console
from runtime.errors import EdgeportError, UsageError, require
from runtime.manifest import CalibrationSource, FileEntry, Int8Info, TrtCalibrationCache
from runtime.graph.index import GraphIndex
from runtime.precision import precision
from runtime.engines.calibration import TABLE_VERSION, write_table

from exporter.graph.rewrites import constant_weights_as_initializers, ensure_node_names, fuse_residual_inputs, \
    quantize_pool_inputs
from exporter.int8.calibration_file import CALIBRATION_FILE, CalibrationRanges
from exporter.int8.ort_quant import prepare_for_quantization, quantize_with_ranges
from exporter.int8.ranges import DEFAULT_METHOD, METHODS, RECIPE_VERSION, cached_or_calibrated, calibration_key, \
    calibration_set

INT8_FILE = precision("int8").artifact
TRT_CACHE_FILE = "calib.cache"
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
QUANTIZED_OPS = WEIGHTED_OPS + ("Add", "Concat")


@dataclasses.dataclass
class Int8Graph:
    """What the INT8 stage hands on to the budget and the CPU INT8 stage, in memory."""

    entry: FileEntry  # model.int8.onnx in the staged bundle
    info: Int8Info  # the manifest's int8 section
    calibration: CalibrationRanges  # the ranges both INT8 graphs are quantized with
    model: object  # the Q/DQ ModelProto written as model.int8.onnx


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


def quantize_qdq(pre_path: Path, ranges: dict, out_path: Path, tmp: Path, exclude=()):
    """ORT's static quantizer with TensorRT's rules; returns (the post-processed ModelProto,
    how many residual Add inputs were fused). ``exclude``: --int8-exclude's values."""
    import onnx
    from onnxruntime.quantization import QuantType

    from exporter.int8.exclude import excluded_nodes

    model = onnx.load(str(pre_path))
    constant_weights_as_initializers(model)  # quantized as weights, per channel, not as activations
    ensure_node_names(model)
    user_float = excluded_nodes(model, exclude)
    named = tmp / "fp32.named.onnx"
    onnx.save(model, str(named))
    ranges = shared_concat_ranges(model, ranges)
    try:
        quantize_with_ranges(
            named, out_path, ranges, tmp,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QInt8,  # ORT's default QUInt8 is asymmetric: TensorRT refuses it
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_nodes_to_exclude(model) + user_float,
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
    except EdgeportError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT raises many types on unusual graphs
        raise EdgeportError(f"ONNX Runtime could not quantize the model: {type(exc).__name__}: {str(exc)[:400]}",
                            hint="Rerun with --debug for the traceback; export without --int8 meanwhile.") from exc
    qmodel = onnx.load(str(out_path))
    fused = fuse_residual_inputs(qmodel)
    quantize_pool_inputs(qmodel, ranges)
    if user_float:
        _mark_kept_float(qmodel, user_float)
    return qmodel, fused


def _mark_kept_float(qmodel, names: list[str]) -> None:
    """Record --int8-exclude's layers as float on purpose (the lint lists them; --max-drop keeps them)."""
    import json

    from runtime.graph.index import KEEP_FLOAT_KEY, KEEP_FLOAT_PRECISION_KEY, kept_float_names

    from exporter.graph.qdq_graph import set_metadata

    set_metadata(qmodel, KEEP_FLOAT_KEY, json.dumps(list(dict.fromkeys(kept_float_names(qmodel) + names))))
    set_metadata(qmodel, KEEP_FLOAT_PRECISION_KEY, "fp32")
    console.log(f"INT8: {len(names)} layer(s) kept in float by --int8-exclude: {', '.join(names[:5])}"
                + (" ..." if len(names) > 5 else ""))


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


# -- TensorRT calibration cache (written with runtime/engines/calibration.py) -------------------------
def _fp32_tensor_names(model) -> list[str]:
    """model.onnx's activation tensors in graph order: the names TensorRT's parser gives them."""
    names = [i.name for i in model.graph.input]
    for node in model.graph.node:
        names += [o for o in node.output if o]
    return list(dict.fromkeys(names))


# -- the export stage ----------------------------------------------------------------------------
def _checked_method(config, manifest) -> str:
    """--calib-method (default minmax), and the opset per-channel Q/DQ needs."""
    method = config.calib_method or DEFAULT_METHOD
    if method not in METHODS:
        raise UsageError(f"--calib-method '{method}' is unknown; choose one of {', '.join(METHODS)}.")
    if (manifest.opset or 17) < 13:
        raise UsageError(f"--int8 needs --opset 13 or newer (per-channel QuantizeLinear/DequantizeLinear), "
                         f"got {manifest.opset}.", hint="Drop --opset (default 17) or pass 13..20.")
    return method


def _calibrate_and_quantize(staged, manifest, model, built, config) -> tuple:
    """(CalibrationRanges, calibrated?, seconds, Q/DQ ModelProto, fused residual inputs)."""
    method = _checked_method(config, manifest)
    calib = calibration_set(manifest, built.preprocessing, config)
    graph_bytes = model.SerializeToString()
    key = calibration_key(graph_bytes, manifest.preprocessing, calib.digest, method, len(calib))
    with tempfile.TemporaryDirectory(prefix="edgeport-int8-") as tmpdir:
        tmp = Path(tmpdir)
        pre_path = prepare_for_quantization(graph_bytes, tmp)
        t0 = time.perf_counter()
        ranges, calibrated = cached_or_calibrated(staged.final, key, method, calib, pre_path, manifest.input.name,
                                                  tmp)
        seconds = round(time.perf_counter() - t0, 3)
        qmodel, fused = quantize_qdq(pre_path, {n: list(v) for n, v in ranges.ranges.items()}, tmp / "int8.onnx",
                                     tmp, exclude=getattr(config, "int8_exclude", ()))
    return ranges, calibrated, seconds, qmodel, fused


def add_int8(staged, manifest, model, built, config) -> Int8Graph:
    """Calibrate, quantize and lint ``model`` (model.onnx's ModelProto); write model.int8.onnx,
    calibration.json and calib.cache. Returns the stage's ``Int8Graph``."""
    require("onnx", purpose="INT8 quantization", install="pip install 'edgeport[export]'")
    require("onnxruntime.quantization", purpose="INT8 quantization", install="pip install 'edgeport[cpu]'")
    from runtime.graph.qdq_lint import lint_model

    from exporter.bundle_writer import guard_disk
    from exporter.onnx_export import save

    ranges, calibrated, seconds, qmodel, fused = _calibrate_and_quantize(staged, manifest, model, built, config)
    symmetric = {n: list(v) for n, v in ranges.ranges.items()}
    regions = apply_fp16_regions(qmodel, symmetric)
    report = lint_model(qmodel)
    if not report.clean:
        raise EdgeportError(f"The INT8 graph edgeport produced breaks TensorRT's Q/DQ rules: {report.summary()}",
                            hint="This is a bug in edgeport; please report it with the model.")
    with guard_disk(staged.staging):
        save(qmodel, staged.path(INT8_FILE))
        staged.path(CALIBRATION_FILE).write_text(ranges.to_json())
        staged.path(TRT_CACHE_FILE).write_text(write_table(symmetric, _fp32_tensor_names(model)))
    counts = report.counts()
    rules = {"activations": "int8 per-tensor symmetric", "weights": "int8 per-channel symmetric (axis 0)",
             "zero_points": 0, "bias": "float", "residual_add_inputs_fused": fused,
             "concat": "inputs share one scale", "pools": "inputs quantized",
             "float_regions": "fp16" if regions is not None else "fp32"}
    if regions is not None and regions.underflow:
        rules["float_regions_fp32_for_underflow"] = regions.underflow  # tensors FP16 would flush
    info = _int8_info(staged, ranges, counts, {"format": "QDQ", "calibrated": calibrated,
                                                "calibration_seconds": seconds, "recipe_version": RECIPE_VERSION,
                                                "rules": rules})
    _log_int8(regions, counts, fused)
    return Int8Graph(entry=staged.entry(INT8_FILE), info=info, calibration=ranges, model=qmodel)


def _int8_info(staged, ranges: CalibrationRanges, counts: dict, extra: dict) -> Int8Info:
    """The manifest's int8 section."""
    source = ranges.source
    return Int8Info(
        method=ranges.method,
        samples=ranges.samples,
        calibration_source=CalibrationSource(path=str(source.get("path")), kind=source.get("kind"),
                                             skipped=source.get("skipped", 0), digest=source.get("digest")),
        cache_key=ranges.key,
        calibration=staged.entry(CALIBRATION_FILE),
        trt_calibration_cache=TrtCalibrationCache(
            **staged.entry(TRT_CACHE_FILE).to_dict(), header=f"TRT-{TABLE_VERSION}-EntropyCalibration2",
            extra={"tensor_names": "model.onnx",
                   "note": "for implicit INT8 (TensorRT <= 10, DLA); rewrite the first line's version if your "
                           "TensorRT ignores the cache"}),
        int8_ops=counts["int8"],
        float_ops=counts["float"],
        extra=extra,
    )


def _log_int8(regions, counts: dict, fused: int) -> None:
    if regions is not None:
        console.log(f"INT8: float regions in FP16 ({regions.fp16_nodes} nodes, {regions.casts} Casts; "
                    f"{regions.int8_adjacent_fp32} nodes next to Q/DQ keep FP32 types"
                    + (f", {len(regions.fp32_nodes)} kept FP32 for their range" if regions.fp32_nodes else "") + ")")
        if regions.underflow:
            console.warn(f"INT8: {len(regions.underflow)} float-region node(s) kept FP32: tensors they read or write "
                         f"lie below FP16's smallest normal (6.1e-5) and FP16 would flush them to zero: "
                         f"{', '.join(regions.underflow[:5])}{' ...' if len(regions.underflow) > 5 else ''}")
    console.log(f"INT8: {sum(counts['int8'].values())} layers in INT8, {sum(counts['float'].values())} left in float; "
                f"{fused} residual Add inputs fused; lint clean")
