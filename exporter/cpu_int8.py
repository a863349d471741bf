"""The CPU INT8 artifact: ``model.int8-cpu.onnx``, the INT8 graph ONNX Runtime on x86 runs fastest.

The TensorRT-style graph (model.int8.onnx: symmetric INT8 Q/DQ, float biases, float
residual inputs) follows TensorRT's rules, and ONNX Runtime's CPU provider runs it *slower*
than FP32: most of it stays Dequantize -> float op -> Quantize. CPU users get their own
artifact, built the way ONNX Runtime's CPU kernels want it:

- ``quant_pre_process`` first (shape inference + ORT's own graph optimizations: Conv+BN
  folding, constant folding), as ONNX Runtime's quantization guide asks;
- U8S8: activations uint8 with asymmetric MinMax ranges (a ReLU output uses all 256 levels
  and the ReLU disappears into the convolution), weights int8 per output channel;
- Q/DQ format, ONNX Runtime's recommendation for CPU since 1.11: at load time ORT fuses every
  DequantizeLinear -> op -> QuantizeLinear into its int8 kernel (QLinearConv, QLinearConcat,
  QGemm...); the export checks the graph ORT actually runs (``ort_cpu_ops``) and records it;
- ``reduce_range`` (7-bit weights) on CPUs without an int8 dot product (VNNI / AMX): there
  the u8s8 kernels sum pairs of products in int16 and can saturate (a 3.7-point top-1 drop
  was published). The choice and the CPU it was made on are recorded in the manifest;
- DenseNet's pre-activation BatchNorms (Concat -> BN -> ReLU -> Conv) cannot fold into a
  convolution and would stay float islands: Dequantize, NCHW<->NHWC transposes, BN,
  Quantize, around every dense layer. Each such BN is rewritten as the depthwise 1x1
  convolution it is (weight gamma/sqrt(var+eps), bias beta-mean*weight: exact in float),
  which quantizes to a QLinearConv with the ReLU fused; the whole dense block then stays
  uint8 NHWC (docs/benchmarks.md has the measurements).

Calibration uses the same images as model.int8.onnx (``--calib-data``/``--calib-samples``,
read by exporter.calibration), always with MinMax: the asymmetric uint8 grid needs the real
minimum and maximum. One sample per calibration call keeps the export's memory low (see
CALIB_BATCH).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import EdgeportError, require
from runtime.manifest import CalibrationSource, Int8CpuInfo

from .quantize import quiet_ort

INT8_CPU_FILE = "model.int8-cpu.onnx"
# Float ops that, left in the graph ONNX Runtime runs, mean a layer did not become int8.
FLOAT_COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "FusedConv", "NchwcConv",
                     "FusedGemm")
RECIPE_VERSION = 1
# ORT's calibration session (optimizations off) keeps every activation of a call alive:
# measured on densenet121 at 224x224, about 350 MB per sample in the batch (batch 8: 2.8 GB,
# batch 1: 0.45 GB) for the same speed per sample. One sample per call keeps export's peak low.
CALIB_BATCH = 1


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def fold_preactivation_bn(model) -> int:
    """Rewrite BatchNormalizations that no Conv precedes as depthwise 1x1 Convs, in place.

    A BN right after a Conv is left alone (ONNX Runtime folds it into that Conv). Only 4-D
    BNs with constant parameters are rewritten; returns how many were.
    """
    import onnx
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    ranks = _tensor_ranks(model)
    rewritten = 0
    new_nodes = []
    for node in model.graph.node:
        src = producer.get(node.input[0]) if node.input else None
        foldable = (node.op_type == "BatchNormalization" and len(node.input) == 5
                    and all(i in inits for i in node.input[1:5])
                    and len([o for o in node.output if o]) == 1
                    and ranks.get(node.input[0]) == 4
                    and not (src is not None and src.op_type == "Conv" and consumers.get(node.input[0]) == 1))
        if not foldable:
            new_nodes.append(node)
            continue
        eps = float(_attr(node, "epsilon", 1e-5))
        gamma, beta, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in node.input[1:5])
        weight = gamma / np.sqrt(var + eps)
        bias = beta - mean * weight
        channels = int(weight.shape[0])
        base = (node.name or node.output[0]).strip("/").replace("/", "_") + "_as_dwconv"
        w_name, b_name = f"{base}_W", f"{base}_B"
        model.graph.initializer.extend([
            numpy_helper.from_array(weight.reshape(channels, 1, 1, 1).astype(np.float32), w_name),
            numpy_helper.from_array(bias.astype(np.float32), b_name),
        ])
        new_nodes.append(helper.make_node(
            "Conv", [node.input[0], w_name, b_name], [node.output[0]], name=base,
            group=channels, kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1]))
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        used = {i for n in model.graph.node for i in n.input}
        keep = [i for i in model.graph.initializer if i.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
        onnx.checker.check_model(model)
    return rewritten


def _tensor_ranks(model) -> dict[str, int]:
    """Rank of every tensor that ONNX shape inference can tell."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - unusual models: fold nothing rather than fail
        return {}
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    return ranks


def quantize_cpu(model, calib, input_name: str, *, reduce_range: bool, tmp: Path,
                 on_batch=None) -> tuple[object, dict]:
    """FP32 ModelProto -> U8S8 Q/DQ ModelProto for ONNX Runtime CPU; returns (model, stats)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .calibration import CalibrationReader

    float_model = onnx.ModelProto()
    float_model.CopyFrom(model)
    folded = fold_preactivation_bn(float_model)
    src, pre, out = tmp / "fp32.cpu.onnx", tmp / "fp32.cpu.pre.onnx", tmp / "int8-cpu.onnx"
    onnx.save(float_model, str(src))
    del float_model
    t0 = time.perf_counter()
    with quiet_ort():
        quant_pre_process(str(src), str(pre))
    t1 = time.perf_counter()
    reader = CalibrationReader(calib, input_name, batch=CALIB_BATCH, on_batch=on_batch)
    with quiet_ort():
        # QDQ format (ORT's recommendation for CPU since 1.11): ORT fuses each
        # DequantizeLinear -> op -> QuantizeLinear into its int8 kernel at load time (ort_cpu_ops
        # checks that it did), and the file stays standard ONNX.
        quantize_static(
            str(pre), str(out), reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    t2 = time.perf_counter()
    qmodel = onnx.load(str(out))
    stats = {"preactivation_bn_as_dwconv": folded, "pre_process_seconds": round(t1 - t0, 3),
             "calibrate_quantize_seconds": round(t2 - t1, 3), "ops": _op_counts(qmodel.graph.node),
             "ort_cpu_ops": ort_cpu_ops(out, tmp)}
    return qmodel, stats


def _op_counts(nodes) -> dict[str, int]:
    ops: dict[str, int] = {}
    for n in nodes:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return dict(sorted(ops.items()))


def ort_cpu_ops(path: Path, tmp: Path) -> dict[str, int]:
    """The operators ONNX Runtime's CPU provider actually runs for a Q/DQ graph, after it fused
    each DequantizeLinear -> op -> QuantizeLinear into an int8 kernel (QLinearConv...).

    A float Conv/BatchNormalization left here would mean a pattern ORT did not fuse: the
    check that the artifact is fast, not only accurate."""
    import onnx

    from runtime.runners.onnxruntime import create_session

    optimized = tmp / "int8-cpu.ort-optimized.onnx"
    create_session(path, optimization="all", optimized_model_path=optimized)
    return _op_counts(onnx.load(str(optimized), load_external_data=False).graph.node)


def add_int8_cpu(staged, manifest, model, built, config) -> tuple:
    """Write model.int8-cpu.onnx (U8S8 Q/DQ for ONNX Runtime CPU).

    Returns (the artifact's FileEntry, the manifest's Int8CpuInfo section).
    """
    require("onnx", purpose="CPU INT8 quantization", install="pip install 'edgeport[export]'")
    require("onnxruntime.quantization", purpose="CPU INT8 quantization", install="pip install 'edgeport[cpu]'")
    from runtime.machine import VNNI_FLAGS, cpu_flags, cpu_model, has_vnni

    from .bundle_writer import guard_disk
    from .calibration import default_calib_dir, load_calibration
    from .onnx_export import save

    pre = built.preprocessing
    input_name = manifest.input.name
    calib_path = Path(config.calib_data) if config.calib_data else default_calib_dir()
    calib = load_calibration(calib_path, pre, manifest.input.chw, config.calib_samples,
                             input_name=input_name)
    if config.calib_method and config.calib_method != "minmax":
        console.log(f"int8-cpu: --calib-method {config.calib_method} applies to model.int8.onnx; the CPU artifact "
                    "uses minmax ranges (its uint8 grid is asymmetric)")
    flags = cpu_flags()
    vnni = has_vnni(flags)
    reduce_range = not vnni
    console.log(f"int8-cpu: U8S8 Q/DQ, {'VNNI' if vnni else 'no VNNI'} on this CPU -> "
                f"reduce_range={reduce_range}")
    with tempfile.TemporaryDirectory(prefix="edgeport-int8cpu-") as tmpdir:
        with console.Progress(len(calib), f"int8-cpu calibration (minmax, {len(calib)} samples)") as progress:
            try:
                qmodel, stats = quantize_cpu(model, calib, input_name, reduce_range=reduce_range,
                                             tmp=Path(tmpdir), on_batch=progress.update)
            except EdgeportError:
                raise
            except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
                raise EdgeportError(
                    f"ONNX Runtime could not quantize the model for CPU INT8: {type(exc).__name__}: {str(exc)[:400]}",
                    hint="Export without --int8, or report the model; rerun with --debug for the traceback.") from exc
        with guard_disk(staged.staging):
            save(qmodel, staged.path(INT8_CPU_FILE))
    runs = stats["ort_cpu_ops"]
    int8_ops = sum(n for op, n in runs.items() if op.startswith("QLinear") or op in ("QGemm", "MatMulInteger"))
    float_ops = {op: n for op, n in runs.items() if op in FLOAT_COMPUTE_OPS}
    info = Int8CpuInfo(
        reduce_range=reduce_range,
        method="minmax",
        samples=len(calib),
        quantized_on={"cpu": cpu_model(), "vnni": vnni},
        calibration_source=CalibrationSource(path=str(calib.path), kind=calib.source, skipped=len(calib.skipped),
                                             digest=calib.digest),
        extra={
            "format": "QDQ",
            "target": "onnxruntime CPUExecutionProvider",
            "recipe_version": RECIPE_VERSION,
            "activations": "uint8 per-tensor asymmetric (MinMax)",
            "weights": "int8 per-channel symmetric" + (" (7-bit: reduce_range)" if reduce_range else ""),
            "reduce_range_reason": (
                f"this CPU has an int8 dot product ({', '.join(sorted(f for f in flags if f in VNNI_FLAGS))})"
                if vnni else "no VNNI/AMX flag on this CPU (or flags unknown): u8s8 kernels could saturate"),
            **stats,
            "float_compute_ops_at_runtime": float_ops,
        },
    )
    console.log(f"int8-cpu: {stats['preactivation_bn_as_dwconv']} pre-activation BatchNorms rewritten as depthwise "
                f"convolutions; ONNX Runtime CPU runs {int8_ops} int8 kernels "
                f"({runs.get('QLinearConv', 0)} QLinearConv) and {sum(float_ops.values())} float compute ops")
    if float_ops:
        console.warn(f"int8-cpu: ONNX Runtime left {', '.join(f'{n} {op}' for op, n in float_ops.items())} in float "
                     "(patterns it could not fuse into int8 kernels); this artifact may gain little over FP32")
    return staged.entry(INT8_CPU_FILE), info
