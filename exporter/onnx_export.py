"""PyTorch -> ONNX (dynamic batch), onnxsim simplification checked numerically, FP16."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from exporter.graph.rewrites import lowercase_einsum
from runtime.errors import DependencyError, EdgeportError, UsageError, require

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17  # parses on TensorRT 8.6 (JetPack 5) through 11


def export_onnx(module, input_chw, opset: int = DEFAULT_OPSET, output_names: list[str] | None = None):
    """Trace ``module`` to an ONNX ModelProto with a symbolic batch dimension.

    ``input_chw``: (channels, height, width) of one input (an int N means 3 x N x N).
    ``output_names``: one name per output the module returns, in its order (exporter/models/outputs.py);
    every output gets the dynamic batch axis."""
    import torch

    onnx = require("onnx", purpose="Exporting to ONNX", install="pip install 'edgeport[export]'")
    if isinstance(input_chw, int):
        input_chw = (3, input_chw, input_chw)
    output_names = list(output_names or [OUTPUT_NAME])
    dummy = torch.zeros(1, *input_chw)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript exporter: fast, and its output for ResNet/DenseNet parses on every
            # TensorRT from 8.6 on. (torch >= 2.9 defaults to dynamo=True.)
            torch.onnx.export(
                module, dummy, buf,
                input_names=[INPUT_NAME], output_names=output_names,
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in output_names}},
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            _raise_export_failure(exc, input_chw)
    model = onnx.load_from_string(buf.getvalue())
    _require_one_input(model)
    lowercase_einsum(model)  # TensorRT parses lowercase subscripts only
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise EdgeportError(f"The exported ONNX graph does not pass onnx.checker: {exc}") from exc
    return model


def _raise_export_failure(exc: Exception, input_chw) -> None:
    """A failed trace as one paragraph. The one common case is the input size the user chose
    (AlexNet and VGG at a small input: their AdaptiveAvgPool2d(6 or 7) gets a 1x1 or 2x2 map,
    which ONNX cannot express): a usage error that leads with that, not torch's wording."""
    text = str(exc)
    if "adaptive_avg_pool2d" in text and "factor" in text:
        raise UsageError(f"The model cannot be exported at --input-size {input_chw[1]}x{input_chw[2]}: an "
                         "AdaptiveAvgPool2d's output size must divide its input for ONNX (torch.onnx.export: "
                         "adaptive_avg_pool2d output size not a factor of the input size), and AlexNet and VGG pool "
                         "to 6x6 / 7x7 after 32x downsampling.", hint="Pass a larger --input-size, e.g. 224.") from exc
    raise EdgeportError(f"torch.onnx.export failed: {type(exc).__name__}: {text[:500]}",
                        hint="Rerun with --debug for the traceback; unusual layers may need a newer --opset.") from exc


def _require_one_input(model) -> None:
    """The tracer turns some defaulted forward arguments (a float ``scale=1.0``) into graph inputs:
    refuse the graph as a usage error rather than fail later on the missing input feed."""
    initializers = {i.name for i in model.graph.initializer}
    extra = [i.name for i in model.graph.input if i.name not in initializers and i.name != INPUT_NAME]
    if extra:
        names = ", ".join(repr(e) for e in extra)
        raise UsageError(f"The traced graph takes {len(extra) + 1} inputs ('{INPUT_NAME}' and {names}: a forward"
                         " argument with a default value the tracer kept as an input); edgeport exports "
                         "single-input models only (one NCHW image tensor).",
                         hint="Drop the argument from forward, or fix it inside the module (e.g. as an attribute set "
                              "in __init__).")


def ort_all_outputs(model_or_path, inputs: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    """Every output of an ONNX model (proto or path) on ONNX Runtime CPU, in batches, in graph order."""
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    outputs = OnnxRuntimeRunner(model_or_path).infer_batched(inputs, batch)
    return [v.astype(np.float32) for v in outputs.values()]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a-b| over each sample's value range of ``b`` (worst sample; outputs flattened per sample)."""
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    span = b.max(axis=1) - b.min(axis=1)
    return float((np.abs(a - b).max(axis=1) / np.where(span > 0, span, 1.0)).max())


def check_finite(model, outputs: dict) -> None:
    """Refuse a model whose weights or reference outputs hold NaN or Inf, naming that cause: run
    before onnxsim, whose numeric check would otherwise be what fails (and get the blame)."""
    from onnx import numpy_helper

    bad = []
    for init in model.graph.initializer:
        if init.data_type in (1, 10, 11, 16):  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
            values = numpy_helper.to_array(init)
            count = int(values.size - np.count_nonzero(np.isfinite(values.astype(np.float32))))
            if count:
                bad.append(f"{init.name} ({count} of {values.size})")
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise EdgeportError(f"The model's weights hold NaN or Inf values: {shown}; its outputs would be meaningless, "
                            "so nothing was exported.",
                            hint="Check --weights: a checkpoint saved after training diverged, or a corrupt file.")
    for name, values in outputs.items():
        count = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if count:
            raise EdgeportError(f"The model's output '{name}' is NaN or Inf for {count} of {np.size(values)} values "
                                "on the golden images (its weights are finite: an overflow or a 0/0 in the model's "
                                "forward pass), so nothing was exported.",
                                hint="Check the model in PyTorch on these inputs; edgeport exports models whose "
                                     "outputs are finite.")


def simplify(model, check_inputs: np.ndarray, tolerance: float = 1e-5):
    """onnxsim, then a numeric check of the simplified graph against the original (every output)."""
    try:
        import onnxsim
    except ImportError as exc:
        raise DependencyError("Simplifying needs onnxsim, which is not installed.",
                              hint="pip install onnxsim, or pass --no-simplify.") from exc
    try:
        simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as exc:  # noqa: BLE001
        raise EdgeportError(f"onnxsim failed: {type(exc).__name__}: {str(exc)[:300]}",
                            hint="Pass --no-simplify to keep the unsimplified graph.") from exc
    if not ok:
        raise EdgeportError("onnxsim could not validate the simplified graph.", hint="Pass --no-simplify.")
    names = [o.name for o in model.graph.output]
    if [o.name for o in simplified.graph.output] != names:
        raise EdgeportError(f"onnxsim changed the graph's outputs ({names} -> "
                            f"{[o.name for o in simplified.graph.output]}); refusing to use it.",
                            hint="Pass --no-simplify, and please report the model.")
    before = ort_all_outputs(model, check_inputs)
    after = ort_all_outputs(simplified, check_inputs)
    err = max(relative_error(a, b) for a, b in zip(after, before))
    if not np.isfinite(err) or err > tolerance:
        raise EdgeportError(
            f"The simplified graph differs from the original by {err:.3g} of the output range "
            f"(tolerance {tolerance:g}); refusing to use it.",
            hint="Pass --no-simplify, and please report the model.")
    stats = {"nodes_before": len(model.graph.node), "nodes_after": len(simplified.graph.node),
             "max_rel_diff": err}
    return simplified, stats


def to_fp16(model):
    """An FP16 graph with FP32 inputs and outputs (casts at the boundaries)."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise DependencyError("The FP16 conversion uses onnxruntime.transformers, which is missing.",
                              hint="pip install onnxruntime (or onnxruntime-gpu).") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_float_to_float16(model, keep_io_types=True)


def save(model, path: Path) -> None:
    import onnx

    onnx.save(model, str(path))


FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05  # 2**-14: below it FP16 values are subnormal, then flushed to zero
UNDERFLOW_FRACTION = 0.5  # a tensor underflows when at least this share of its nonzero values is below that


def fp16_range_check(model, inputs: np.ndarray, limit: int = 8) -> dict:
    """Find FP32 tensors whose values leave FP16's range on the golden inputs.

    ONNX Runtime's CPU provider runs most FP16 nodes through float kernels, so it does not
    reproduce an FP16 overflow between layers; TensorRT would. This check runs the FP32
    graph with every intermediate tensor exposed (one image at a time, to bound memory) and
    lists the tensors and initializers whose magnitude exceeds 65504, and the tensors that
    underflow: at least half of their nonzero values below FP16's smallest normal (6.1e-5),
    which FP16 keeps as subnormals or flushes to zero (TensorRT's FP16 kernels flush).
    """
    import onnx
    from onnx import numpy_helper

    from runtime.runners.onnxruntime import create_session

    # Untyped extra outputs: ONNX Runtime infers each type (an attention block's int64 Slice of a
    # shape once made a probe that declared every output float fail to load); non-float ones are skipped below.
    names = [out for node in model.graph.node if node.op_type not in ("Constant", "Shape")
             for out in node.output if out]
    sess = create_session(model, optimization="none", what="the FP16 range probe", extra_outputs=names)
    out_names = [o.name for o in sess.get_outputs()]
    peaks: dict[str, float] = {}
    tiny: dict[str, list[int]] = {}  # tensor -> [nonzero values, of them below FP16's smallest normal]
    for i in range(min(limit, len(inputs))):
        values = sess.run(out_names, {sess.get_inputs()[0].name: inputs[i:i + 1]})
        for name, v in zip(out_names, values):
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
                mag = np.abs(v)
                peaks[name] = max(peaks.get(name, 0.0), float(mag.max()))
                counts = tiny.setdefault(name, [0, 0])
                counts[0] += int(np.count_nonzero(mag))
                counts[1] += int(np.count_nonzero((mag > 0) & (mag < FP16_MIN_NORMAL)))
    over = sorted(((n, p) for n, p in peaks.items() if p > FP16_MAX), key=lambda t: -t[1])
    under = sorted(((n, c[1] / c[0]) for n, c in tiny.items() if c[0] and c[1] >= UNDERFLOW_FRACTION * c[0]),
                   key=lambda t: -t[1])
    big_weights = []
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            peak = float(np.abs(numpy_helper.to_array(init)).max()) if init.dims else 0.0
            if peak > FP16_MAX:
                big_weights.append((init.name, peak))
    return {
        "samples": min(limit, len(inputs)),
        "max_abs_activation": max(peaks.values()) if peaks else 0.0,
        "overflowing_tensors": [{"name": n, "max_abs": p} for n, p in over[:20]],
        "overflowing_count": len(over),
        "overflowing_initializers": [{"name": n, "max_abs": p} for n, p in big_weights[:20]],
        "underflowing_tensors": [{"name": n, "below_normal": round(f, 4), "max_abs": peaks[n]} for n, f in under[:20]],
        "underflowing_count": len(under),
    }
