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

- the graph outputs (the logits) stay float: the last layer writes them without a
  QuantizeLinear (ORT runs QGemm with a float output). A uint8 grid fitted to the logits of
  the calibration images clips the logits of classes those images never showed (measured:
  trained test model calibrated on 2 crops of one class, centered cosine 0.988 -> 0.992).

No second calibration: the ranges are the *observed* min/max of every tensor, measured by the
same calibration pass as model.int8.onnx (exporter/int8/quantize.py writes them in calibration.json
next to the symmetric ranges); the asymmetric uint8 grid needs the real minimum and maximum,
whatever ``--calib-method`` chose for the symmetric graph. Tensors the calibration did not
see (a graph ONNX Runtime's optimizer renamed) are measured then, on the same samples.

With ``--max-drop``, the layers the budget keeps out of INT8 in model.int8.onnx stay float
here too (``nodes_to_exclude``), and this graph is judged by the same budget; when it still
misses it, the next layers of the same sensitivity ranking leave INT8 as well, up to
``--max-float-layers`` (``fit_budget``). ``--no-int8-cpu`` skips this artifact.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import EdgeportError, require
from runtime.manifest import Int8CpuInfo

from exporter.int8.quantize import quiet_ort

INT8_CPU_FILE = "model.int8-cpu.onnx"
# Float ops that, left in the graph ONNX Runtime runs, mean a layer did not become int8.
FLOAT_COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "FusedConv", "NchwcConv",
                     "FusedGemm")
RECIPE_VERSION = 2  # 2: ranges shared with model.int8.onnx, float graph outputs, budget's float layers


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


def prepare_cpu(model, tmp: Path) -> tuple[Path, dict]:
    """Fold pre-activation BNs, then ORT's quant_pre_process: the float graph the CPU recipe
    quantizes (written once per export, quantized once per candidate set of float layers)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_model = onnx.ModelProto()
    float_model.CopyFrom(model)
    folded = fold_preactivation_bn(float_model)
    src, pre = tmp / "fp32.cpu.onnx", tmp / "fp32.cpu.pre.onnx"
    onnx.save(float_model, str(src))
    del float_model
    t0 = time.perf_counter()
    with quiet_ort():
        quant_pre_process(str(src), str(pre))
    return pre, {"preactivation_bn_as_dwconv": folded, "pre_process_seconds": round(time.perf_counter() - t0, 3)}


def missing_ranges(pre_path: Path, ranges: dict) -> list[str]:
    """Float activation tensors of the prepared graph that ``ranges`` does not cover."""
    import onnx

    model = onnx.load(str(pre_path))
    consts = {i.name for i in model.graph.initializer}
    consts.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names = {t for n in model.graph.node for t in list(n.input) + list(n.output) if t and t not in consts}
    return sorted(t for t in names if types.get(t) in floats and t not in ranges)


def quantize_prepared(pre_path: Path, ranges: dict, *, reduce_range: bool, tmp: Path,
                      keep_float=()) -> tuple[object, dict]:
    """The prepared float graph -> U8S8 Q/DQ ModelProto, quantized with ``ranges`` (observed
    ``{tensor: [min, max]}``, no calibration); ``keep_float`` node names stay float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    cache = tmp / "cpu-ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()}), cache)
    out = tmp / "int8-cpu.onnx"
    t0 = time.perf_counter()
    with quiet_ort():
        # QDQ format (ORT's recommendation for CPU since 1.11): ORT fuses each
        # DequantizeLinear -> op -> QuantizeLinear into its int8 kernel at load time (ort_cpu_ops
        # checks that it did), and the file stays standard ONNX.
        quantize_static(
            str(pre_path), str(out), None,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            nodes_to_exclude=list(keep_float),
            calibrate_method=CalibrationMethod.MinMax,  # the ranges are ours; only the cache is read
            calibration_cache_path=str(cache),
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    qmodel = onnx.load(str(out))
    unquantized = float_graph_outputs(qmodel)
    onnx.save(qmodel, str(out))
    stats = {"quantize_seconds": round(time.perf_counter() - t0, 3), "float_graph_outputs": unquantized,
             "ops": _op_counts(qmodel.graph.node), "ort_cpu_ops": ort_cpu_ops(out, tmp)}
    return qmodel, stats


def float_graph_outputs(model) -> int:
    """Remove the QuantizeLinear -> DequantizeLinear pair in front of each graph output, in place:
    the producing layer writes the output in float. Returns how many outputs were changed."""
    producer = {o: n for n in model.graph.node for o in n.output if o}
    readers: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    dead, changed = [], 0
    for out in model.graph.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or readers.get(q.input[0]) != 1 or readers.get(dq.input[0]) != 1:
            continue
        src.output[list(src.output).index(q.input[0])] = out.name
        dead += [q, dq]
        changed += 1
    for n in dead:
        model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.initializer if i.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return changed


def quantize_cpu(model, ranges: dict, input_name: str, *, reduce_range: bool, tmp: Path, keep_float=(),
                 calib=None) -> tuple[object, dict]:
    """FP32 ModelProto -> U8S8 Q/DQ ModelProto for ONNX Runtime CPU; returns (model, stats).

    ``ranges``: observed ``{tensor: [min, max]}`` (calibration.json's ``observed``). Tensors it
    lacks are measured on ``calib`` (a CalibrationSet); without one they are an error.
    """
    pre, stats = prepare_cpu(model, tmp)
    ranges = complete_ranges(pre, ranges, (lambda: calib) if calib is not None else None, input_name, tmp)
    qmodel, qstats = quantize_prepared(pre, ranges, reduce_range=reduce_range, tmp=tmp, keep_float=keep_float)
    return qmodel, {**stats, **qstats}


def complete_ranges(pre_path: Path, ranges: dict, load_calib, input_name: str, tmp: Path) -> dict:
    """``ranges`` plus the observed min/max of prepared-graph tensors it lacks, measured on the
    calibration set ``load_calib()`` returns (None: they are an error)."""
    missing = missing_ranges(pre_path, ranges)
    if not missing:
        return ranges
    if load_calib is None:
        raise EdgeportError(f"{len(missing)} tensors of the CPU INT8 graph have no calibrated range "
                            f"(first: {missing[0]}).", hint="This is a bug in edgeport; please report it.")
    from exporter.int8.quantize import calibrate_ranges

    console.log(f"int8-cpu: {len(missing)} tensors of the CPU graph are not in calibration.json (ONNX Runtime's "
                f"optimizer renamed them, first: {missing[0]}); measuring their min/max on the same samples")
    measured = calibrate_ranges(pre_path, load_calib(), input_name, "minmax", tmp)[1]
    return {**measured, **ranges}


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


def add_int8_cpu(staged, manifest, model, built, config, budget=None) -> tuple:
    """Write model.int8-cpu.onnx (U8S8 Q/DQ for ONNX Runtime CPU) from model.int8.onnx's
    calibration (calibration.json's observed ranges) and, with ``budget`` (mixed_precision.Budget),
    its layers kept out of INT8, fitted to the same budget (``fit_budget``).

    Returns (the artifact's FileEntry, the manifest's Int8CpuInfo section).
    """
    require("onnx", purpose="CPU INT8 quantization", install="pip install 'edgeport[export]'")
    require("onnxruntime.quantization", purpose="CPU INT8 quantization", install="pip install 'edgeport[cpu]'")
    from runtime.machine import cpu_flags, has_vnni

    from exporter.bundle_writer import guard_disk
    from exporter.onnx_export import save
    from exporter.int8.quantize import CALIBRATION_FILE, observed_ranges

    ranges = observed_ranges(json.loads(staged.path(CALIBRATION_FILE).read_text()))
    flags = cpu_flags()
    reduce_range = not has_vnni(flags)
    console.log(f"int8-cpu: U8S8 Q/DQ on the observed min/max of model.int8.onnx's calibration ({len(ranges)} "
                f"tensors, no second calibration); {'VNNI' if not reduce_range else 'no VNNI'} on this CPU -> "
                f"reduce_range={reduce_range}")
    with tempfile.TemporaryDirectory(prefix="edgeport-int8cpu-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            pre, stats = prepare_cpu(model, tmp)
            ranges = complete_ranges(pre, ranges, calibration_loader(built, manifest, config),
                                     manifest.input.name, tmp)

            def build(keep_float):
                return quantize_prepared(pre, ranges, reduce_range=reduce_range, tmp=tmp, keep_float=keep_float)

            if budget is None:
                kept, fitted = [], None
                qmodel, qstats = build([])
            else:
                kept, fitted, qmodel, qstats = fit_budget(budget, build)
        except EdgeportError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
            raise EdgeportError(
                f"ONNX Runtime could not quantize the model for CPU INT8: {type(exc).__name__}: {str(exc)[:400]}",
                hint="Export with --no-int8-cpu (only the TensorRT INT8 graph), or report the model; rerun with "
                     "--debug for the traceback.") from exc
        with guard_disk(staged.staging):
            save(qmodel, staged.path(INT8_CPU_FILE))
    info = _cpu_info(manifest, flags, reduce_range, {**stats, **qstats}, kept, fitted)
    return staged.entry(INT8_CPU_FILE), info


def calibration_loader(built, manifest, config):
    """The calibration set, loaded only if some tensor of the CPU graph needs measuring."""
    def load():
        from exporter.int8.calibration import default_calib_dir, load_calibration

        path = Path(config.calib_data) if config.calib_data else default_calib_dir()
        return load_calibration(path, built.preprocessing, tuple(manifest.input.chw), config.calib_samples,
                                input_name=manifest.input.name)

    return load


def fit_budget(budget, build) -> tuple:
    """model.int8.onnx's float layers out of INT8 here too; then, while the CPU graph misses the
    budget (or the int8-cpu tolerance on the golden set), the next layers of the same ranking,
    searched as in mixed_precision.search up to ``--max-float-layers``.

    Returns (kept layer names, the budget summary, the ModelProto, its stats); raises BudgetNotMet.
    """
    from exporter.int8.mixed_precision import BudgetNotMet, search

    base = list(budget.kept)
    rest = [u for u in budget.ranked if u not in base]
    built: dict[int, tuple] = {}

    def evaluate(extra: list[str]) -> tuple[float, list[str]]:
        built[len(extra)] = build(base + extra)
        return budget.evaluate(built[len(extra)][0], "int8-cpu")

    result = search(rest, evaluate, budget.points, max(0, budget.cap - budget.prefix),
                    log=lambda m: console.log("int8-cpu " + m), already=len(base))
    # Search steps count the layers out of INT8 beyond model.int8.onnx's.
    summary = {"budget_points": budget.points, "met": result.met, "drop_points": round(result.drop, 4),
               "layers_out_of_int8": len(base) + result.float_layers, "beyond_int8_artifact": result.float_layers,
               "search": result.steps}
    if not result.met:
        best = next(st for st in result.steps if st["float_layers"] == result.float_layers)
        raise BudgetNotMet(
            f"model.int8-cpu.onnx (ONNX Runtime CPU's U8S8 graph) misses the INT8 accuracy budget although "
            f"model.int8.onnx meets it with {len(base)} layer(s) out of INT8: with those and up to "
            f"{max(0, budget.cap - budget.prefix)} more of the ranking (--max-float-layers {budget.cap}) the best "
            f"reached loses {result.drop:.2f} points (budget {budget.points:g}, on {budget.data.description})"
            + (f" and fails its tolerance on the golden set ({best['failures']})" if best["failures"] else "")
            + ". No bundle was written.",
            hint="Pass --no-int8-cpu to export only the TensorRT INT8 graph, calibrate on more representative "
                 "images (--calib-data DIR, a few hundred typical inputs), or allow more float layers "
                 "(--max-float-layers N).")
    extra = rest[:result.float_layers]
    qmodel, stats = built.get(result.float_layers) or build(base + extra)
    if extra:
        console.log(f"int8-cpu: budget met with {len(extra)} more layer(s) out of INT8 than model.int8.onnx: "
                    f"{', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
    return base + extra, summary, qmodel, stats


def _cpu_info(manifest, flags, reduce_range: bool, stats: dict, kept: list[str], fitted: dict | None):
    """The manifest's int8_cpu section (calibration facts shared with the int8 section)."""
    from runtime.machine import VNNI_FLAGS, cpu_model

    int8 = manifest.int8
    runs = stats["ort_cpu_ops"]
    int8_ops = sum(n for op, n in runs.items() if op.startswith("QLinear") or op in ("QGemm", "MatMulInteger"))
    float_ops = {op: n for op, n in runs.items() if op in FLOAT_COMPUTE_OPS}
    info = Int8CpuInfo(
        reduce_range=reduce_range,
        method="minmax",
        samples=int8.samples,
        quantized_on={"cpu": cpu_model(), "vnni": not reduce_range},
        calibration_source=int8.calibration_source,
        extra={
            "format": "QDQ",
            "target": "onnxruntime CPUExecutionProvider",
            "recipe_version": RECIPE_VERSION,
            "ranges": "the observed min/max of model.int8.onnx's calibration pass (calibration.json), shared: "
                      "not calibrated again",
            "calibrated": int8.extra.get("calibrated"),
            "activations": "uint8 per-tensor asymmetric (observed min/max); graph outputs float",
            "weights": "int8 per-channel symmetric" + (" (7-bit: reduce_range)" if reduce_range else ""),
            "reduce_range_reason": (
                f"this CPU has an int8 dot product ({', '.join(sorted(f for f in flags if f in VNNI_FLAGS))})"
                if not reduce_range else "no VNNI/AMX flag on this CPU (or flags unknown): u8s8 kernels could saturate"),
            **stats,
            "float_compute_ops_at_runtime": float_ops,
            "kept_float": kept,
            **({"budget": fitted} if fitted else {}),
        },
    )
    console.log(f"int8-cpu: {stats['preactivation_bn_as_dwconv']} pre-activation BatchNorms rewritten as depthwise "
                f"convolutions; ONNX Runtime CPU runs {int8_ops} int8 kernels "
                f"({runs.get('QLinearConv', 0)} QLinearConv) and {sum(float_ops.values())} float compute ops"
                + (f" ({len(kept)} layer(s) kept out of INT8 by the budget)" if kept else ""))
    if sum(float_ops.values()) > len(kept):
        console.warn(f"int8-cpu: ONNX Runtime left {', '.join(f'{n} {op}' for op, n in float_ops.items())} in float "
                     "(patterns it could not fuse into int8 kernels); this artifact may gain little over FP32")
    return info
