"""Per-layer INT8 sensitivity of a Q/DQ graph, and layer-level fallback to higher precision.

A *unit* is one quantized layer of a Q/DQ graph: a Conv/Gemm/MatMul (its input and weight
go through QuantizeLinear/DequantizeLinear), a residual Add (its residual input is
quantized) or a Concat (its inputs are quantized with their group's shared scale).

Sensitivity = "quantize only this layer": the FP32 graph with the Q/DQ of one unit put
back, run on held-out images and compared with the FP32 graph's own outputs:

- ``output_cosine``: mean cosine of centered logits (as in runtime/compare.py): **the rank**;
- ``sqnr_db``: signal-to-quantization-noise ratio of the centered logits (each sample's mean
  subtracted: softmax ignores a common shift), 10 log10(sum r^2 / sum (o-r)^2);
- ``top1_agreement`` with the FP32 graph.

Why rank by the cosine: a layer whose clipped range scales the logits down costs SQNR but
changes no prediction (argmax and the cosine ignore a positive scale); measured on the
trained test model, the cosine order reached the budget with fewer layers out of INT8 than
the SQNR order (docs/int8.md). Why this measure and not ONNX Runtime's ``qdq_loss_debug``
(per-tensor SQNR inside the fully quantized graph): that tool measures the error at each
tensor, either locally (before vs after its own Q/DQ, blind to how much the rest of the
network amplifies or forgets it) or accumulated from every layer upstream (so depth
dominates the ranking). Isolating one unit and looking at the logits measures what the
fallback decision changes: how much of the final error that one layer adds. The cost is
one ONNX Runtime run over the sample per unit, so the sample is bounded.

The graphs being measured come from exporter/graph/qdq_graph.py (``MixedGraph``).

Nothing here imports torch; ``onnx`` and ``onnxruntime`` are imported lazily.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from runtime.errors import EdgeportError

from exporter.graph.qdq_graph import MixedGraph, load_onnx

DEFAULT_SAMPLES = 32  # images per sensitivity run: one ORT session per layer, so it is bounded


# -- running variants ----------------------------------------------------------------------------
def run_model(model, inputs: np.ndarray, *, input_name: str, batch: int = 32, threads: int | None = None) -> np.ndarray:
    """First output of ``model`` (a ModelProto) on ``inputs``, with ONNX Runtime's CPU provider."""
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(model, threads=threads, what="a mixed-precision variant")
    if runner.inputs[0].name != input_name:
        raise EdgeportError(f"The mixed-precision variant takes input '{runner.inputs[0].name}', not '{input_name}'.")
    first = runner.outputs[0].name
    out = runner.infer_batched(np.asarray(inputs, dtype=np.float32), batch, outputs=[first])[first]
    return np.asarray(out, dtype=np.float32)


def output_metrics(out: np.ndarray, ref: np.ndarray) -> dict:
    """SQNR (dB) of the centered logits, mean centered cosine and top-1 agreement of ``out`` vs ``ref``.

    Centered (each sample's mean logit subtracted) because softmax and argmax ignore a shift
    common to all logits; on raw logits such a shift dominates the SQNR of nets whose logits
    share a large offset (measured: a random-init DenseNet whose raw-logit SQNR rose while
    its centered cosine fell), ranking layers by an error that changes no prediction.
    """
    from runtime.compare import centered_cosine

    out = np.asarray(out, np.float64).reshape(len(out), -1)
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    finite = np.isfinite(out).all()
    if not finite:
        return {"sqnr_db": -math.inf, "output_cosine": -1.0, "top1_agreement": 0.0}
    oc = out - out.mean(axis=1, keepdims=True)
    rc = ref - ref.mean(axis=1, keepdims=True)
    noise = float(((oc - rc) ** 2).sum())
    signal = float((rc ** 2).sum())
    sqnr = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-30) / noise)
    return {"sqnr_db": sqnr, "output_cosine": float(centered_cosine(out, ref).mean()),
            "top1_agreement": float((out.argmax(1) == ref.argmax(1)).mean())}


def pick_samples(n: int, limit: int | None) -> np.ndarray:
    """Indexes of at most ``limit`` samples spread evenly over ``n`` (class-sorted sets keep every class)."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def measure_sensitivity(graph: MixedGraph, inputs: np.ndarray, *, input_name: str, batch: int = 32,
                        threads: int | None = None, log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Rank every quantized unit by the error it alone adds to the logits ("quantize only
    this layer"), most harmful first. ``inputs``: normalized NCHW float32 samples."""
    from runtime.console import Progress

    if not graph.units:
        return []
    reference = run_model(graph.fp32, inputs, input_name=input_name, batch=batch, threads=threads)
    rows = []
    with Progress(len(graph.units), f"sensitivity ({len(graph.units)} layers x {len(inputs)} samples)") as progress:
        for unit in graph.units:
            out = run_model(graph.only(unit.name), inputs, input_name=input_name, batch=batch, threads=threads)
            m = output_metrics(out, reference)
            rows.append({
                "layer": unit.name, "op_type": unit.op_type,
                # 12 decimals: 1 - cosine, the ranking, is often below 1e-7 for one layer (7 rounded it to 0).
                "sqnr_db": _round(m["sqnr_db"], 3), "output_cosine": _round(m["output_cosine"], 12),
                "top1_agreement": _round(m["top1_agreement"], 4),
                "macs_share": round(graph.macs_share([unit.name]), 5),
                **({"group": unit.group} if unit.group is not None else {}),
            })
            progress.update(1)
    return rank_rows(rows)


def _round(x: float, digits: int):
    return x if not math.isfinite(x) else round(float(x), digits)


def rank_rows(rows: list[dict]) -> list[dict]:
    """Sort most sensitive first (lowest centered cosine, then lowest SQNR) and number them.
    Rows without numbers (a layer already out of INT8 with nothing recorded) go last."""
    def key(r):
        c, s = r.get("output_cosine"), r.get("sqnr_db")
        return (c if isinstance(c, (int, float)) else math.inf, s if isinstance(s, (int, float)) else math.inf)

    ranked = sorted(rows, key=key)
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
        r.setdefault("kept_float", False)
    return ranked


def report_rows(rows: list[dict], kept: dict[str, str] | None = None) -> list[dict]:
    """report.json's ``sensitivity`` list: fixed field order, ``kept_float`` filled in."""
    kept = kept or {}
    fields = ("rank", "layer", "op_type", "sqnr_db", "output_cosine", "top1_agreement", "macs_share", "kept_float")
    out = []
    for r in rows:
        d = {k: r.get(k) for k in fields}
        d["kept_float"] = r["layer"] in kept
        for k in ("sqnr_db",):
            if isinstance(d[k], float) and not math.isfinite(d[k]):
                d[k] = -999.0 if d[k] < 0 else 999.0  # JSON has no inf; the chart needs a number
        if r.get("group") is not None:
            d["group"] = r["group"]
        out.append(d)
    return out


# -- an existing bundle ----------------------------------------------------------------------------
def bundle_sensitivity(bundle, *, samples: int | None = DEFAULT_SAMPLES, threads: int | None = None,
                       log: Callable[[str], None] = lambda s: None):
    """Sensitivity of a bundle's Q/DQ artifact (model.int8.onnx) on its golden set: a
    ``runtime.report.sections.Sensitivity`` (the ranked rows, the images and layers measured).

    Needs model.onnx, model.int8.onnx and golden.npz. Layers the artifact already keeps out
    of INT8 (``export --max-drop``) have no Q/DQ left to measure: they are listed with the
    numbers recorded at export (manifest ``int8.mixed_precision``).
    """
    from runtime.errors import UsageError

    onnx = load_onnx()
    if "int8" not in bundle.precisions:
        raise UsageError(f"Bundle '{bundle.root}' has no int8 artifact (model.int8.onnx) to analyse; it has "
                          f"{', '.join(bundle.precisions) or 'none'}.",
                          hint="Export it with --int8 (and --calib-data DIR).")
    qmodel = onnx.load(str(bundle.artifact_path("int8")))
    fp32 = onnx.load(str(bundle.artifact_path("fp32")))
    graph = MixedGraph(qmodel, fp32)
    golden = bundle.golden()
    inputs = golden.inputs(bundle.preprocessing)
    pick = pick_samples(len(inputs), samples)
    log(f"sensitivity of {bundle.artifact_path('int8').name}: {len(graph.units)} quantized layers, one at a time, "
        f"on {len(pick)} of {len(inputs)} golden images")
    rows = measure_sensitivity(graph, inputs[pick], input_name=bundle.input_name,
                               batch=max(1, min(bundle.max_batch, 32)), threads=threads, log=log)
    kept = graph.already_float
    if kept:
        int8 = bundle.manifest.int8
        recorded = {r.get("layer"): r for r in ((int8.mixed_precision if int8 else None) or {})
                    .get("kept_float", []) if isinstance(r, dict)}
        for name in kept:
            r = recorded.get(name, {})
            rows.append({"layer": name, "op_type": r.get("op_type", "?"), "sqnr_db": r.get("sqnr_db"),
                         "output_cosine": r.get("output_cosine"), "top1_agreement": r.get("top1_agreement"),
                         "macs_share": r.get("macs_share", round(graph.macs_share([name]), 5)), "kept_float": True})
        rows = rank_rows(rows)
    from runtime.report.sections import Sensitivity

    ranking = Sensitivity.from_dict(report_rows(rows, {n: "kept" for n in kept}))
    return dataclasses.replace(ranking, samples=len(pick), units=len(graph.units), kept=list(kept))


def explain_failure(graph: MixedGraph, calibration, golden_inputs: np.ndarray) -> list[str]:
    """Why the full INT8 graph misses the budget (runtime/int8_diagnosis.py), printed as a warning
    before the budget error; returns the printed lines (none when the diagnosis cannot run)."""
    from runtime import console
    from runtime.bundle import FEW_CALIBRATION_SAMPLES
    from runtime.int8_diagnosis import diagnose

    info = {"method": calibration.method, "samples": calibration.samples,
            "few": calibration.samples < FEW_CALIBRATION_SAMPLES, "kind": (calibration.source or {}).get("kind")}
    try:
        lines = diagnose(graph.fp32, graph.qmodel, golden_inputs, calibration=info).lines()
    except Exception as exc:  # noqa: BLE001 - the budget error stands without the explanation
        console.warn(f"INT8 diagnosis could not run ({type(exc).__name__}: {str(exc)[:200]})")
        return []
    console.warn("\n".join(lines))
    return lines
