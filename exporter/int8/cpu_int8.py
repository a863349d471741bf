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
same calibration pass as model.int8.onnx (exporter/int8/ranges.py, handed over in memory as
``CalibrationRanges.observed`` and kept in calibration.json next to the symmetric ranges); the asymmetric uint8 grid needs the real minimum and maximum,
whatever ``--calib-method`` chose for the symmetric graph. Tensors the calibration did not
see (a graph ONNX Runtime's optimizer renamed) are measured then, on the same samples.

With ``--max-drop``, the layers the budget keeps out of INT8 in model.int8.onnx stay float
here too (``nodes_to_exclude``), and this graph is judged by the same budget; when it still
misses it, the next layers of the same sensitivity ranking leave INT8 as well, up to
``--max-float-layers`` (``fit_budget``). ``--no-int8-cpu`` skips this artifact.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from runtime import console
from runtime.errors import EdgeportError, require
from runtime.graph.index import GraphIndex
from runtime.manifest import Int8CpuInfo
from runtime.precision import CPU_INT8, precision

from exporter.graph.rewrites import float_graph_outputs, fold_preactivation_bn
from exporter.int8.ort_quant import prepare_for_quantization, quantize_with_ranges

INT8_CPU_FILE = precision(CPU_INT8).artifact
# Float ops that, left in the graph ONNX Runtime runs, mean a layer did not become int8.
FLOAT_COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization", "FusedConv", "NchwcConv",
                     "FusedGemm")
RECIPE_VERSION = 2  # 2: ranges shared with model.int8.onnx, float graph outputs, budget's float layers


def prepare_cpu(model, tmp: Path) -> tuple[Path, dict]:
    """Fold pre-activation BNs, then ORT's quant_pre_process: the float graph the CPU recipe
    quantizes (written once per export, quantized once per candidate set of float layers)."""
    import onnx

    float_model = onnx.ModelProto()
    float_model.CopyFrom(model)
    folded = fold_preactivation_bn(float_model)
    t0 = time.perf_counter()
    pre = prepare_for_quantization(float_model.SerializeToString(), tmp, optimize=True)
    return pre, {"preactivation_bn_as_dwconv": folded, "pre_process_seconds": round(time.perf_counter() - t0, 3)}


def missing_ranges(pre_path: Path, ranges: dict) -> list[str]:
    """Float activation tensors of the prepared graph that ``ranges`` does not cover."""
    import onnx

    model = onnx.load(str(pre_path))
    index = GraphIndex(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names = {t for n in index.nodes for t in list(n.input) + list(n.output) if t and not index.is_const(t)}
    return sorted(t for t in names if types.get(t) in floats and t not in ranges)


def quantize_prepared(pre_path: Path, ranges: dict, *, reduce_range: bool, tmp: Path,
                      keep_float=()) -> tuple[object, dict]:
    """The prepared float graph -> U8S8 Q/DQ ModelProto, quantized with ``ranges`` (observed
    ``{tensor: [min, max]}``, no calibration); ``keep_float`` node names stay float."""
    import onnx
    from onnxruntime.quantization import QuantType

    out = tmp / "int8-cpu.onnx"
    t0 = time.perf_counter()
    # QDQ format (ORT's recommendation for CPU since 1.11): ORT fuses each
    # DequantizeLinear -> op -> QuantizeLinear into its int8 kernel at load time (ort_cpu_ops
    # checks that it did), and the file stays standard ONNX.
    quantize_with_ranges(pre_path, out, ranges, tmp,
                         activation_type=QuantType.QUInt8,
                         weight_type=QuantType.QInt8,
                         per_channel=True,
                         reduce_range=reduce_range,
                         nodes_to_exclude=list(keep_float),
                         extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    qmodel = onnx.load(str(out))
    unquantized = float_graph_outputs(qmodel)
    onnx.save(qmodel, str(out))
    stats = {"quantize_seconds": round(time.perf_counter() - t0, 3), "float_graph_outputs": unquantized,
             "ops": _op_counts(qmodel.graph.node), "ort_cpu_ops": ort_cpu_ops(out, tmp)}
    return qmodel, stats


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
    from exporter.int8.ranges import calibrate_ranges

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


class CpuInt8Unsupported(EdgeportError):
    """ONNX Runtime's quantizer failed on this model: the export goes on without model.int8-cpu.onnx
    (an optional artifact; ONNX Runtime CPU then runs model.int8.onnx), with a warning."""


def add_int8_cpu(staged, manifest, model, built, config, observed: dict, budget=None) -> tuple:
    """Write model.int8-cpu.onnx (U8S8 Q/DQ for ONNX Runtime CPU) from ``model`` (model.onnx's
    ModelProto) with ``observed`` (the calibration pass's observed ``{tensor: (min, max)}``,
    ``CalibrationRanges.observed``) and, with ``budget`` (mixed_precision.Budget), its layers
    kept out of INT8, fitted to the same budget (``fit_budget``).

    Returns (the artifact's FileEntry, the manifest's Int8CpuInfo section).
    """
    require("onnx", purpose="CPU INT8 quantization", install="pip install 'edgeport[export]'")
    require("onnxruntime.quantization", purpose="CPU INT8 quantization", install="pip install 'edgeport[cpu]'")
    from runtime.machine import cpu_flags, has_vnni

    from exporter.bundle_writer import guard_disk
    from exporter.onnx_export import save

    flags = cpu_flags()
    reduce_range = not has_vnni(flags)
    console.log(f"int8-cpu: U8S8 Q/DQ on the observed min/max of model.int8.onnx's calibration ({len(observed)} "
                f"tensors, no second calibration); {'VNNI' if not reduce_range else 'no VNNI'} on this CPU -> "
                f"reduce_range={reduce_range}")
    with tempfile.TemporaryDirectory(prefix="edgeport-int8cpu-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            kept, fitted, qmodel, stats = _quantize_fitted(model, observed, reduce_range, budget, tmp,
                                                           calibration_loader(built, manifest, config),
                                                           manifest.input.name, _user_float(model, config))
        except EdgeportError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT's quantizer raises many types
            raise CpuInt8Unsupported(
                f"ONNX Runtime could not quantize the model for CPU INT8: {type(exc).__name__}: {str(exc)[:400]}",
                hint="Export with --no-int8-cpu (only the TensorRT INT8 graph), or report the model; rerun with "
                     "--debug for the traceback.") from exc
        with guard_disk(staged.staging):
            save(qmodel, staged.path(INT8_CPU_FILE))
    info = _cpu_info(manifest, flags, reduce_range, stats, kept, fitted)
    return staged.entry(INT8_CPU_FILE), info


def _user_float(model, config) -> list[str]:
    """--int8-exclude's layers (exporter/int8/exclude.py): float in this graph too."""
    from exporter.int8.exclude import excluded_nodes

    return excluded_nodes(model, getattr(config, "int8_exclude", ()))


def _quantize_fitted(model, observed: dict, reduce_range: bool, budget, tmp: Path, load_calib, input_name: str,
                     user_float=()):
    """(kept float layers, budget summary or None, the ModelProto, its stats)."""
    pre, stats = prepare_cpu(model, tmp)
    ranges = complete_ranges(pre, observed, load_calib, input_name, tmp)

    def build(keep_float):
        keep = list(dict.fromkeys([*user_float, *keep_float]))
        return quantize_prepared(pre, ranges, reduce_range=reduce_range, tmp=tmp, keep_float=keep)

    if budget is None:
        qmodel, qstats = build([])
        return [], None, qmodel, {**stats, **qstats}
    kept, fitted, qmodel, qstats = fit_budget(budget, build)
    return kept, fitted, qmodel, {**stats, **qstats}


def calibration_loader(built, manifest, config):
    """The calibration set, loaded only if some tensor of the CPU graph needs measuring."""
    def load():
        from exporter.int8.ranges import calibration_set

        return calibration_set(manifest, built.preprocessing, config, check=False, log=lambda s: None)

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
        return budget.evaluate(built[len(extra)][0], CPU_INT8)

    result = search(rest, evaluate, budget.points, max(0, budget.cap - budget.prefix),
                    log=lambda m: console.log("int8-cpu " + m), already=len(base))
    # Search steps count the layers out of INT8 beyond model.int8.onnx's.
    summary = {"budget_points": budget.points, "met": result.met, "drop_points": round(result.drop, 4),
               "layers_out_of_int8": len(base) + result.float_layers, "beyond_int8_artifact": result.float_layers,
               "search": result.steps}
    if not result.met:
        best = result.best_step
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
