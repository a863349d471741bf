"""``export --int8 --max-drop X``: INT8 where it is safe, higher precision where it is not.

After the Q/DQ graph is written (exporter/int8/quantize.py), this stage:

1. measures every quantized layer's sensitivity on held-out images: the FP32 graph with only
   that layer quantized, compared with FP32 at the logits (exporter/int8/sensitivity.py says why
   this measure and not ONNX Runtime's per-tensor SQNR);
2. evaluates the full INT8 graph against the budget on held-out data: the golden set
   (top-1 agreement with PyTorch FP32, in points) or ``--labeled-data DIR`` (labeled images:
   top-1 accuracy drop against the FP32 ONNX graph, in points). Never the calibration
   images: they are what the ranges were fitted to;
3. if the budget is missed, takes the most sensitive layers out of INT8 in rank order with
   a bounded search (1, 2, 4, ... layers until the budget holds or ``--max-float-layers``
   is reached, then bisection between the last miss and the first hit), and keeps the
   smallest prefix found that meets the budget;
4. writes that graph as model.int8.onnx (linted again), records the kept layers, why, and the
   share of MACs still in INT8 in the manifest (``int8.mixed_precision``) and the report
   (``mixed_precision``, ``sensitivity``). If even ``--max-float-layers`` layers do not meet
   the budget, the export stops (exit 1) saying the best it reached; no bundle is written.

Kept layers: Conv/Gemm get FP16 weights (``--fallback-precision fp16``, the default), so
TensorRT's strongly typed builds (10.x, 11, TensorRT-RTX) run them in FP16; Adds and
Concats join the FP16 float regions of the graph (exporter/graph/float_regions.py, applied to
every candidate as it is written). ``fp32`` keeps the kept layers in FP32. Layers whose
calibrated ranges come near FP16's limit stay FP32 either way. ONNX Runtime's CPU provider
computes the FP16 layers through float kernels, so the CPU numbers include FP16 rounding of
their inputs, weights and outputs but not FP16 accumulation.

The search selects on the same held-out data it reports. The reported drop is therefore
optimistic by the usual model-selection bias: for an unbiased number, judge the bundle on
other labeled images (``edgeport verify BUNDLE --labeled-data DIR``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime import console
from runtime.errors import EXIT_ERROR, EdgeportError, UsageError
from runtime.report.numbers import percent

DEFAULT_FALLBACK = "fp16"
MAX_BUDGET_SAMPLES = 2000  # --labeled-data images kept in memory (spread over the classes)
_EPS = 1e-9


class BudgetNotMet(EdgeportError):
    """The accuracy budget cannot be met within the allowed number of float layers."""

    exit_code = EXIT_ERROR  # nothing was written: a failure while working, not a check with results


@dataclasses.dataclass(frozen=True)
class BudgetData:
    """Held-out images the budget is judged on."""

    inputs: np.ndarray  # normalized NCHW float32
    mode: str  # "agreement" | "labeled"
    target: np.ndarray  # agreement: the FP32 reference's top-1; labeled: the true labels
    description: str

    @property
    def metric(self) -> str:
        if self.mode == "agreement":
            return "top-1 agreement loss vs PyTorch FP32"
        return "top-1 accuracy drop vs the FP32 ONNX graph (labeled)"


@dataclasses.dataclass
class Budget:
    """The budget of an export, as the other INT8 artifact (model.int8-cpu.onnx) shares it:
    the ranking, the layers model.int8.onnx keeps out of INT8, and the verdict on any graph."""

    points: float
    data: BudgetData
    ranked: list[str]  # quantized layers, most sensitive first
    kept: list[str]  # model.int8.onnx: the ranked prefix out of INT8, then the Adds that follow kept convs
    prefix: int  # how many of ``ranked`` model.int8.onnx keeps out of INT8
    cap: int  # at most this many of ``ranked`` may leave INT8 (--max-float-layers)
    judge: Callable  # judge(model, precision) -> (drop in points, failed golden checks)

    def evaluate(self, model, precision: str) -> tuple[float, list[str]]:
        """The budget metric of ``model`` (a ModelProto), and its failures of ``precision``'s tolerance."""
        return self.judge(model, precision)


@dataclasses.dataclass
class SearchResult:
    float_layers: int  # how many of the ranked layers fall back (a prefix of the ranking)
    drop: float  # the budget metric at that point, in points
    met: bool
    steps: list[dict]  # every evaluation: {float_layers, drop_points, met}
    full_int8_drop: float

    @property
    def best_step(self) -> dict:
        """The evaluation of the prefix the search ended on (its failures explain a miss)."""
        return next(st for st in self.steps if st["float_layers"] == self.float_layers)


def search(ranked: list[str], evaluate: Callable[[list[str]], tuple[float, list[str]]], budget: float,
           max_float: int, log: Callable[[str], None] = lambda s: None, already: int = 0) -> SearchResult:
    """The smallest prefix of ``ranked`` (most sensitive first) whose fallback meets ``budget``.

    ``evaluate(float_layers)`` returns (drop in points, other failed checks): a prefix is
    accepted when the drop is within the budget and nothing else failed (export passes the
    int8 verification tolerance here, so the bundle it writes also passes ``verify``).
    Bounded: the full INT8 graph, then 1, 2, 4, ... float layers up to ``max_float`` until
    one is accepted, then bisection between the last miss and that hit; at most about
    2 log2(max_float) + 2 evaluations. The drop is not monotonic in the prefix length, so
    bisection finds *a* boundary, not always the smallest prefix that would do. ``already``:
    layers out of INT8 before any of ``ranked`` (only for the log).
    """
    cache: dict[int, tuple[float, bool]] = {}
    steps: list[dict] = []

    def ok_at(k: int) -> bool:
        if k not in cache:
            t0 = time.perf_counter()
            drop, failures = evaluate(ranked[:k])
            ok = drop <= budget + _EPS and not failures
            cache[k] = (float(drop), ok)
            steps.append({"float_layers": k, "drop_points": round(float(drop), 4), "met": ok,
                          "failures": "; ".join(failures), "seconds": round(time.perf_counter() - t0, 2)})
            why = "" if not failures else f"; {'; '.join(failures)}"
            log(f"budget search: {k + already} layer(s) out of INT8 -> {drop:.2f} points "
                f"({'within' if drop <= budget + _EPS else 'over'} the {budget:g}-point budget{why})")
        return cache[k][1]

    full_ok = ok_at(0)
    full = cache[0][0]
    if full_ok:
        return SearchResult(0, full, True, steps, full)
    max_float = min(max_float, len(ranked))
    lo, hi, k = 0, None, 1
    while max_float >= 1:
        k = min(k, max_float)
        if ok_at(k):
            hi = k
            break
        lo = k
        if k >= max_float:
            break
        k *= 2
    if hi is None:
        best = min(cache, key=lambda n: (cache[n][0], n))
        return SearchResult(best, cache[best][0], False, steps, full)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok_at(mid):
            hi = mid
        else:
            lo = mid
    return SearchResult(hi, cache[hi][0], True, steps, full)


# -- data ------------------------------------------------------------------------------------
def golden_budget_data(inputs: np.ndarray, reference: np.ndarray, source: str) -> BudgetData:
    """The golden set: budget on top-1 agreement with PyTorch's FP32 outputs."""
    return BudgetData(inputs=inputs, mode="agreement", target=np.asarray(reference).argmax(1),
                      description=f"{len(inputs)} held-out golden images ({source})")


def labeled_budget_data(folder: Path, pre, class_names, num_classes: int, calib_source: dict | None) -> BudgetData:
    """``--labeled-data DIR``: an ImageFolder tree (DIR/<class>/*.jpg), labels as in ``verify --labeled-data``."""
    from runtime.labeled import load_labeled_set
    from runtime.preprocess import load_folder, normalize

    dataset = load_labeled_set(folder, None, class_names=class_names, num_classes=num_classes,
                               limit=MAX_BUDGET_SAMPLES)
    if calib_source and calib_source.get("kind") == "folder":
        _check_calibration_overlap(Path(calib_source["path"]), dataset.files)
    loaded = load_folder(dataset.files, pre, root=dataset.root)
    if not len(loaded.names):
        raise EdgeportError(f"None of the {len(dataset.files)} images in --labeled-data '{folder}' could be read.")
    ok = set(loaded.names)
    labels = np.array([lab for f, lab in zip(dataset.files, dataset.labels)
                       if f.relative_to(dataset.root).as_posix() in ok], dtype=np.int64)
    if loaded.skipped:
        console.warn(f"--labeled-data: skipped {len(loaded.skipped)} unreadable image(s) "
                     f"(first: {loaded.skipped[0][0]}: {loaded.skipped[0][1]})")
    return BudgetData(inputs=normalize(loaded.images, pre), mode="labeled", target=labels,
                      description=f"{len(labels)} labeled images from {folder} ({dataset.classes_present} classes, "
                                  f"labels by {dataset.label_source})")


def _check_calibration_overlap(calib_root: Path, files: list[Path]) -> None:
    """The budget is judged on images the calibration has not seen (same rule as --golden-data)."""
    from runtime.preprocess import list_images

    from exporter.int8.calibration import check_overlap

    if not calib_root.is_dir():
        return
    names = [f.relative_to(calib_root).as_posix() for f in list_images(calib_root)]
    check_overlap(types.SimpleNamespace(source="folder", path=calib_root, names=names), files, "--labeled-data")


def budget_drop(outputs: np.ndarray, data: BudgetData, fp32_accuracy: float | None) -> float:
    """The budget metric, in points."""
    top1 = np.asarray(outputs).argmax(1)
    if not np.isfinite(outputs).all():
        return 100.0
    hits = float((top1 == data.target).mean())
    if data.mode == "agreement":
        return 100.0 * (1.0 - hits)
    return 100.0 * (fp32_accuracy - hits)


# -- the export stage --------------------------------------------------------------------------
def _fp16_unsafe(graph, ranges: dict) -> set[str]:
    """Weighted layers whose calibrated input/output (``ranges``: {tensor: (lo, hi)}) or weights come
    near FP16's limit: they stay FP32."""
    from onnx import numpy_helper

    from exporter.graph.float_regions import FP16_MAX, FP16_SAFE
    from exporter.graph.qdq_graph import WEIGHTED

    unsafe = set()
    for unit in graph.units:
        if unit.op_type not in WEIGHTED:
            continue
        ref = graph.fp32_node(graph.node_named(unit.name))
        if ref is None:
            continue
        amax = max((max(abs(v) for v in ranges.get(t, (0.0, 0.0))) for t in (ref.input[0], unit.output)),
                   default=0.0)
        wmax = max((float(np.abs(numpy_helper.to_array(graph.fp32_inits[t])).max())
                    for t in ref.input[1:] if t in graph.fp32_inits), default=0.0)
        if amax > FP16_SAFE or wmax > FP16_MAX:
            unsafe.add(unit.name)
    return unsafe


def _kept_precision(name: str, op_type: str, fallback: str, unsafe: set, regions) -> str:
    """The precision a kept layer has in the written graph: FP16 with the FP16 float regions, unless
    its range is unsafe; without those regions (the pass could not run) only Conv/Gemm are FP16."""
    if fallback != "fp16" or name in unsafe:
        return "fp32"
    if regions is not None:
        return "fp32" if name in regions.fp32_nodes else "fp16"
    return "fp16" if op_type in ("Conv", "Gemm", "MatMul") else "fp32"


def default_max_float(units: int) -> int:
    """Half the quantized layers: beyond that, most of INT8's point is gone."""
    return max(1, math.ceil(units / 2))


@dataclasses.dataclass
class BudgetOutcome:
    """What the budget stage hands on: the rewritten model.int8.onnx and what the rest of the export needs."""

    entry: object  # model.int8.onnx's new FileEntry
    info: object  # the updated Int8Info
    sections: dict  # report sections ``sensitivity`` and ``mixed_precision``
    budget: Budget  # what the CPU INT8 artifact is then fitted to


def apply_budget(staged, manifest, config, fp32, int8, data: BudgetData, golden_inputs: np.ndarray,
                 golden_reference: np.ndarray) -> BudgetOutcome:
    """Rank, search, rewrite model.int8.onnx. ``fp32``: model.onnx's ModelProto; ``int8``: the INT8
    stage's ``Int8Graph`` (its Q/DQ graph and calibration ranges, in memory). Raises ``BudgetNotMet``
    (exit 1) when the budget cannot be met.

    A candidate must also pass the int8 verification tolerance on the golden set (default:
    centered cosine >= 0.99 against PyTorch, ``--tol int8.*``), so the bundle passes ``verify``.
    """
    from exporter.graph.qdq_graph import MixedGraph
    from exporter.int8.quantize import INT8_FILE
    from exporter.int8.sensitivity import explain_failure, report_rows

    budget = float(config.max_drop)
    fallback = config.fallback_precision or DEFAULT_FALLBACK
    graph = MixedGraph(int8.model, fp32)
    if not graph.units:
        raise EdgeportError("--max-drop: the INT8 graph has no quantized layers to rank.")
    cap = config.max_float_layers or default_max_float(len(graph.units))
    if data.mode == "agreement" and manifest.weights.random_init:
        console.warn("--max-drop on random-init weights: top-1 agreement of a random-init net is decided by near "
                     "ties, so the budget says little about a trained model's accuracy")
    rows, timing = _rank_layers(graph, data, config, manifest.input.name)
    ranked = [r["layer"] for r in rows]
    sensitivity_of = {r["layer"]: r for r in rows}
    judge = _judge(fp32, data, config, manifest.input.name, golden_inputs, golden_reference)
    variants = _Variants(graph, fallback, int8.calibration.ranges)
    console.log(f"budget: {data.metric} <= {budget:g} points on {data.description}; at most {cap} of "
                f"{len(graph.units)} layers may leave INT8 ({fallback} fallback)")
    result = search(ranked, lambda units: judge(variants.build(units)), budget, cap, log=console.log)
    kept = ranked[:result.float_layers]
    if not result.met:
        explain_failure(graph, int8.calibration, golden_inputs)  # where full INT8 breaks, and what to try
        raise _budget_not_met(result, graph, ranked, sensitivity_of, kept, cap, budget, data)

    counts = _write_final(staged, variants.build(kept))
    extra = graph.dependent_adds(kept) if fallback == "fp16" else {}
    kept_rows = _kept_rows(graph, kept, extra, sensitivity_of, len(rows), fallback, variants.unsafe,
                           variants.regions)
    summary = _budget_summary(result, graph, kept, kept_rows, cap, budget, data, fallback, timing)
    info = dataclasses.replace(manifest.int8, int8_ops=counts["int8"], float_ops=counts["float"],
                               mixed_precision=summary)
    _log_met(result, graph, kept, extra, budget)
    sections = {"sensitivity": report_rows(rows, {r["layer"]: r["reason"] for r in kept_rows}),
                "mixed_precision": summary}
    shared = Budget(points=budget, data=data, ranked=ranked, kept=[r["layer"] for r in kept_rows],
                    prefix=len(kept), cap=cap, judge=judge)
    return BudgetOutcome(entry=staged.entry(INT8_FILE), info=info, sections=sections, budget=shared)


class _Variants:
    """Candidate graphs as they are written: FP16 float regions, kept layers FP32 where they must be."""

    def __init__(self, graph, fallback: str, ranges: dict):
        self.graph, self.fallback = graph, fallback
        self.ranges = {t: list(v) for t, v in ranges.items()}
        self.unsafe = _fp16_unsafe(graph, ranges) if fallback == "fp16" else set()
        self.regions = None  # the FP16-region pass's stats of the last variant built

    def build(self, float_units: list[str]):
        from exporter.int8.quantize import apply_fp16_regions

        model = self.graph.variant(float_units, self.fallback, self.unsafe)
        keep = set(float_units) if self.fallback == "fp32" else self.unsafe
        self.regions = apply_fp16_regions(model, self.ranges, keep_fp32=keep)
        return model


def _write_final(staged, final) -> dict:
    """Lint and write the chosen mix as model.int8.onnx; returns the lint's layer counts."""
    from runtime.graph.qdq_lint import lint_model

    from exporter.bundle_writer import guard_disk
    from exporter.onnx_export import save
    from exporter.int8.quantize import INT8_FILE

    lint = lint_model(final)
    if not lint.clean:
        raise EdgeportError(f"The mixed-precision INT8 graph breaks TensorRT's Q/DQ rules: {lint.summary()}",
                            hint="This is a bug in edgeport; please report it with the model. Export without "
                                 "--max-drop meanwhile.")
    with guard_disk(staged.staging):
        save(final, staged.path(INT8_FILE))
    return lint.counts()


def _log_met(result, graph, kept, extra, budget) -> None:
    if kept:
        follows = f" (+{len(extra)} Add(s) fed by them)" if extra else ""
        console.log(f"INT8 budget met: {result.drop:.2f} points <= {budget:g} with the {len(kept)} most sensitive "
                    f"layer(s) out of INT8{follows}: {', '.join(kept[:4])}{' ...' if len(kept) > 4 else ''}; "
                    f"{percent(graph.int8_macs_share(kept))} of MACs in INT8; lint clean")
    else:
        console.log(f"INT8 budget met by the full INT8 graph: {result.drop:.2f} points <= {budget:g}")


def _rank_layers(graph, data: BudgetData, config, input_name: str) -> tuple[list[dict], dict]:
    """Per-layer sensitivity on the budget's data (most harmful first), and how long it took."""
    from exporter.int8.sensitivity import measure_sensitivity, pick_samples

    t0 = time.perf_counter()
    pick = pick_samples(len(data.inputs), config.sensitivity_samples)
    console.log(f"sensitivity: quantizing one layer at a time ({len(graph.units)} layers) on {len(pick)} of "
                f"{data.description}")
    rows = measure_sensitivity(graph, data.inputs[pick], input_name=input_name, log=console.log)
    return rows, {"samples": len(pick), "seconds": round(time.perf_counter() - t0, 2)}


def _judge(fp32, data: BudgetData, config, input_name: str, golden_inputs, golden_reference):
    """``judge(model, precision="int8") -> (points lost, golden-check failures)`` for candidate graphs.

    The loss is measured on the budget's data; the candidate must also pass ``precision``'s
    verification tolerance on the golden set, so the bundle passes ``verify``.
    """
    from runtime.compare import DEFAULT_TOLERANCES, Tolerance, compare

    from exporter.int8.sensitivity import run_model

    fp32_accuracy = None
    if data.mode == "labeled":
        ref = run_model(fp32, data.inputs, input_name=input_name)
        fp32_accuracy = float((ref.argmax(1) == data.target).mean())
    tolerances = config.tolerances or DEFAULT_TOLERANCES
    same_data = data.mode == "agreement"

    def judge(model, precision: str = "int8") -> tuple[float, list[str]]:
        out = run_model(model, data.inputs, input_name=input_name)
        golden = out if same_data else run_model(model, golden_inputs, input_name=input_name)
        check = compare(golden, golden_reference, backend="onnxruntime", provider="cpu", precision=precision,
                        tolerance=tolerances.get(precision) or Tolerance())
        return budget_drop(out, data, fp32_accuracy), [f"golden check: {f}" for f in check.failures]

    return judge


def _budget_not_met(result, graph, ranked, sensitivity_of, kept, cap, budget, data) -> "BudgetNotMet":
    """The exit-1 error when no mix within --max-float-layers meets the budget: the best reached."""
    worst = ", ".join(f"{n} (cosine {sensitivity_of[n]['output_cosine']:.4f})" for n in ranked[:3])
    best = result.best_step
    return BudgetNotMet(
        f"INT8 accuracy budget not met with at most {cap} of {len(graph.units)} layers out of INT8 "
        f"(--max-float-layers): the best mix found ({result.float_layers} layers out of INT8, "
        f"{percent(graph.int8_macs_share(kept), 0)} of MACs still INT8) loses {result.drop:.2f} points ({data.metric}, "
        f"on {data.description}; budget {budget:g}, --max-drop)"
        + (f" and fails the int8 verification tolerance on the golden set ({best['failures']})"
           if best["failures"] else "")
        + f". Full INT8 loses {result.full_int8_drop:.2f} points. Most sensitive layers: {worst}. "
          "No bundle was written.",
        hint="Allow more float layers (--max-float-layers N), relax --max-drop"
             + (" or the tolerance (--tol int8.cosine_min=...)" if best["failures"] else "")
             + ", or calibrate on more representative images (--calib-data DIR, a few hundred typical inputs).")


def _kept_rows(graph, kept, extra, sensitivity_of, ranked_count, fallback, unsafe, regions) -> list[dict]:
    """One row per layer kept out of INT8 (the ranked ones, then the Adds they feed): why, in what precision."""
    rows = []
    for name in kept + list(extra):
        unit = graph.by_name[name]
        s = sensitivity_of[name]
        precision = _kept_precision(name, unit.op_type, fallback, unsafe, regions)
        reason = (f"rank {s['rank']} of {ranked_count}: alone in INT8 it brings the logits to centered cosine "
                  f"{s['output_cosine']:.5f} ({s['sqnr_db']:.1f} dB SQNR)"
                  if name in kept else f"its input comes straight from {extra[name]}, kept in FP16: it cannot fuse "
                                       "into an INT8 convolution, so it runs in float")
        weighted = unit.op_type in ("Conv", "Gemm", "MatMul")
        if precision == "fp32" and fallback == "fp16" and (regions is not None or weighted):
            reason += "; FP32, not FP16: its calibrated range comes near FP16's limit"
        rows.append({"layer": name, "op_type": unit.op_type, "precision": precision, "rank": s["rank"],
                     "sqnr_db": s["sqnr_db"], "output_cosine": s["output_cosine"],
                     "top1_agreement": s["top1_agreement"], "macs_share": s["macs_share"], "reason": reason})
    return rows


def _budget_summary(result, graph, kept, kept_rows, cap, budget, data, fallback, timing) -> dict:
    """The manifest's ``int8.mixed_precision`` section (and report.json's ``mixed_precision``)."""
    return {
        "budget_points": budget,
        "metric": data.metric,
        "data": data.description,
        "met": True,
        "drop_points": round(result.drop, 4),
        "full_int8_drop_points": round(result.full_int8_drop, 4),
        "fallback_precision": fallback,
        "layers_out_of_int8": len(kept_rows),
        "quantized_layers": len(graph.units),
        "int8_macs_share": round(graph.int8_macs_share(kept), 5),
        "max_float_layers": cap,
        "sensitivity_samples": timing["samples"],
        "sensitivity_seconds": timing["seconds"],
        "sensitivity_method": "quantize only this layer (every other layer FP32); ranked by the mean cosine "
                              "of the centered logits against the FP32 graph (SQNR reported too)",
        "tensorrt": "kept layers are FP16 in the graph (Conv/Gemm with FP16 weights, in the graph's FP16 float "
                    "regions): strongly typed TensorRT builds (10.x, 11, TensorRT-RTX) run them in FP16"
                    if fallback == "fp16" else
                    "kept layers are FP32 in the graph: strongly typed TensorRT builds (10.x, 11) run them in "
                    "FP32 (TF32 where enabled)",
        "kept_float": kept_rows,
        "search": result.steps,
    }


def check_config(config) -> None:
    """Option combinations, checked before the minutes-long part of the export."""
    if config.max_drop is None:
        extra = [flag for flag, value in (("--labeled-data", config.labeled_data),
                                          ("--fallback-precision", config.fallback_precision),
                                          ("--max-float-layers", config.max_float_layers)) if value is not None]
        if extra:
            raise UsageError(f"{', '.join(extra)} only mean something with --max-drop POINTS.",
                             hint="Add --int8 --max-drop 0.5 (for example), or drop those options.")
        return
    if not config.int8:
        raise UsageError("--max-drop is a budget for the INT8 artifact; add --int8.")
    if not (math.isfinite(config.max_drop) and 0 <= config.max_drop <= 100):
        raise UsageError(f"--max-drop is in percentage points, 0..100; got {config.max_drop:g}.")
    if config.labeled_data is not None and not Path(config.labeled_data).is_dir():
        raise UsageError(f"--labeled-data '{config.labeled_data}' is not a folder.",
                         hint="Pass an ImageFolder tree: DIR/<class>/<image>.jpg, with class names or indexes "
                              "as folder names.")


def budget_data_for(config, manifest, pre, inputs: np.ndarray, reference: np.ndarray, source: str) -> BudgetData:
    """``--labeled-data`` when given (labeled), else the golden set the bundle is verified on."""
    if config.labeled_data is None:
        return golden_budget_data(inputs, reference, source)
    source = manifest.int8.calibration_source if manifest.int8 else None
    return labeled_budget_data(Path(config.labeled_data), pre, manifest.model.class_names, manifest.num_classes,
                               source.to_dict() if source else None)
