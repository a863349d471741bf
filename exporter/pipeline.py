"""`edgeport export`: model -> ONNX -> onnxsim -> precision variants -> golden set -> verify.

Each stage logs what it does and how long it took; the bundle is staged and swapped in
atomically (bundle_writer.py), so an interrupted export leaves no half bundle.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import time
from pathlib import Path

import numpy as np

from runtime import console
from runtime.bundle import GOLDEN, SCHEMA_VERSION, Bundle
from runtime.errors import EdgeportError, UsageError

from .models import ModelRequest


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    request: ModelRequest
    output: Path = Path("exports")
    max_batch: int = 32
    opset: int = 17
    simplify: bool = True
    fp16: bool = False
    int8: bool = False
    calib_data: Path | None = None
    calib_samples: int | None = None
    calib_method: str | None = None
    verify: bool = True
    verify_data: Path | None = None
    verify_samples: int = 64
    tolerances: dict | None = None
    name: str | None = None  # bundle folder name (default: the model's name)
    class_names: tuple[str, ...] | None = None  # --class-names FILE; overrides the weights' categories
    engine: str = "no"  # --engine auto|yes|no: TensorRT engines right after the export (the CLI defaults to auto)
    # --max-drop: INT8 accuracy budget in points; the most sensitive layers leave INT8 until it holds
    # (exporter/mixed_precision.py). --budget-data: labeled held-out images to judge it on.
    max_drop: float | None = None
    budget_data: Path | None = None
    fallback_precision: str | None = None  # fp16 (default) | fp32: precision of the layers kept out of INT8
    max_float_layers: int | None = None  # default: half the quantized layers
    sensitivity_samples: int = 32  # held-out images per per-layer sensitivity run


@dataclasses.dataclass
class ExportResult:
    bundle: Path
    comparisons: list
    timings: dict
    engines: list = dataclasses.field(default_factory=list)  # runtime.trt.build.BuiltEngine
    engine_hint: str | None = None  # why no engines were built, and the command to run on the target


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("edgeport", "torch", "torchvision", "onnx", "onnxsim", "onnxruntime", "onnxruntime-gpu", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


class _Stage:
    def __init__(self, timings: dict, name: str, message: str):
        self.timings, self.name, self.message = timings, name, message

    def __enter__(self):
        console.log(self.message)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.name] = round(time.perf_counter() - self.t0, 3)


def run_export(config: ExportConfig) -> ExportResult:
    from runtime.errors import require

    require("torch", purpose="edgeport export", install="pip install 'edgeport[export]'")
    if config.engine == "yes":
        from runtime.trt.build import require_engine_support

        require_engine_support()  # fail before a minutes-long export, not after it
    from . import golden as G
    from .bundle_writer import StagedBundle, guard_disk, prepare_output
    from .models import build_model, count_macs
    from .onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, fp16_range_check, save, simplify, to_fp16

    if config.max_batch < 1:
        raise UsageError(f"--max-batch must be at least 1, got {config.max_batch}.")
    if not 7 <= config.opset <= 20:
        raise UsageError(f"--opset {config.opset} is outside the supported range 7..20 "
                         "(TensorRT 8.6 parses up to 17; static INT8 quantization needs < 21).")
    if config.max_drop is not None or config.budget_data is not None or config.fallback_precision is not None \
            or config.max_float_layers is not None:
        from .mixed_precision import check_config

        check_config(config)
    prepare_output(config.output)  # fail fast, before loading the model
    timings: dict[str, float] = {}
    with _Stage(timings, "load", f"loading model {config.request.model} (weights: {config.request.weights})"):
        built = build_model(config.request, log=console.log)
    pre = built.preprocessing
    name = config.name or built.name

    # The golden images and PyTorch's outputs on them; this forward pass also proves the
    # model accepts the input size.
    with _Stage(timings, "reference", "computing PyTorch FP32 reference outputs on the golden set"):
        if config.verify_data:
            gold = G.folder_images(config.verify_data, pre, config.verify_samples)
        else:
            gold = G.builtin_images(pre)
        from runtime.preprocess import normalize

        inputs = normalize(gold.images, pre)
        try:
            reference = G.reference_outputs(built.module, inputs)
        except Exception as exc:  # noqa: BLE001 - shape errors from arbitrary models
            raise EdgeportError(
                f"{built.name} cannot take {pre.crop}x{pre.crop} inputs: {type(exc).__name__}: {str(exc)[:300]}",
                hint="Choose another --input-size (e.g. the model's default).") from exc
        if reference.ndim != 2:
            raise EdgeportError(f"{built.name} returns outputs of shape {list(reference.shape)}; edgeport "
                                "exports classifiers whose output is (batch, classes).")
        num_classes = reference.shape[1]
        if built.num_classes and num_classes != built.num_classes:
            raise EdgeportError(f"{built.name} returns {num_classes} classes, but {built.num_classes} were requested.",
                                hint="Check --num-classes and the factory.")
        if config.class_names is not None and len(config.class_names) != num_classes:
            raise UsageError(f"--class-names lists {len(config.class_names)} names, but {built.name} returns "
                             f"{num_classes} classes.", hint="Write exactly one name per class, in index order.")
        params, macs = count_macs(built.module, pre.crop)
    console.log(f"{built.name}: {params / 1e6:.2f} M parameters, {macs / 1e9:.3f} GMACs at {pre.crop}x{pre.crop}, "
                f"{num_classes} classes; {len(gold.names)} golden samples ({gold.source})")
    if gold.skipped:
        console.warn(f"skipped {len(gold.skipped)} unreadable verification images (first: {gold.skipped[0][0]}: "
                     f"{gold.skipped[0][1]})")
    if built.weights.get("random_init"):
        console.warn("random-init weights: the report checks fidelity to PyTorch only, not task accuracy")

    with StagedBundle(config.output, name) as staged:
        with _Stage(timings, "export", f"exporting to ONNX (opset {config.opset}, dynamic batch 1..{config.max_batch})"):
            model = export_onnx(built.module, pre.crop, config.opset)
        check = inputs[: min(4, len(inputs))]
        simplify_stats = None
        if config.simplify:
            with _Stage(timings, "simplify", "simplifying with onnxsim (checked against the unsimplified graph)"):
                model, simplify_stats = simplify(model, check)
            console.log(f"onnxsim: {simplify_stats['nodes_before']} -> {simplify_stats['nodes_after']} nodes, "
                        f"max rel diff {simplify_stats['max_rel_diff']:.2e}")
        with guard_disk(staged.staging):
            save(model, staged.path("model.onnx"))
        artifacts = {"fp32": staged.entry("model.onnx")}
        if config.fp16:
            with _Stage(timings, "fp16", "converting to FP16 (FP32 inputs and outputs)"):
                with guard_disk(staged.staging):
                    save(to_fp16(model), staged.path("model.fp16.onnx"))
                fp16_range = fp16_range_check(model, inputs)
            artifacts["fp16"] = staged.entry("model.fp16.onnx")
            if fp16_range["overflowing_count"] or fp16_range["overflowing_initializers"]:
                console.warn(f"{fp16_range['overflowing_count']} tensors exceed the FP16 range (max |x| = "
                             f"{fp16_range['max_abs_activation']:.3g} > 65504) on the golden set; the FP16 "
                             "artifact will overflow on TensorRT")

        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "model": {
                "name": name, "architecture": built.name, "source": built.source, "spec": built.spec,
                "num_classes": num_classes,
                "class_names": list(config.class_names) if config.class_names else built.class_names,
                "params": params, "gmacs": round(macs / 1e9, 4),
            },
            "weights": built.weights,
            "input": {"name": INPUT_NAME, "shape": ["batch", 3, pre.crop, pre.crop], "dtype": "float32",
                      "min_batch": 1, "max_batch": config.max_batch},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", num_classes], "dtype": "float32"},
            "preprocessing": pre.to_dict(),
            "opset": config.opset,
            "simplified": simplify_stats,
            "versions": library_versions(),
            "artifacts": artifacts,
        }
        if config.fp16:
            manifest["fp16_range"] = fp16_range
        int8_sections = {}  # report.json sections from the INT8 accuracy budget (sensitivity, mixed_precision)

        if config.int8:
            from .quantize import add_int8  # the INT8 issue

            with _Stage(timings, "int8", "calibrating and quantizing to INT8 (Q/DQ)"):
                add_int8(staged, manifest, model, built, config)
            if config.max_drop is not None:
                from .mixed_precision import apply_budget, budget_data_for

                with _Stage(timings, "int8_budget", f"fitting INT8 to the accuracy budget (--max-drop {config.max_drop:g})"):
                    data = budget_data_for(config, manifest, pre, inputs, reference, gold.source)
                    int8_sections = apply_budget(staged, manifest, config, pre, data, inputs, reference)

            from .cpu_int8 import add_int8_cpu  # model.int8-cpu.onnx: the INT8 graph ORT CPU runs fast

            with _Stage(timings, "int8_cpu", "quantizing for ONNX Runtime CPU (U8S8 Q/DQ, model.int8-cpu.onnx)"):
                add_int8_cpu(staged, manifest, model, built, config)

        with guard_disk(staged.staging):
            np.savez_compressed(staged.path(GOLDEN), images=gold.images, outputs=reference.astype(np.float32),
                                names=np.array(gold.names))
        manifest["golden"] = {**staged.entry(GOLDEN), "samples": len(gold.names), "source": gold.source,
                              "skipped": len(gold.skipped)}
        manifest["timings_s"] = timings
        staged.write_manifest(manifest)

        comparisons = []
        if config.verify:
            from runtime.report import write_reports
            from runtime.verify import VerifyConfig, verify_bundle

            with _Stage(timings, "verify", "verifying every artifact against PyTorch on ONNX Runtime CPU"):
                b = Bundle.open(staged.staging)
                vconf = VerifyConfig(tolerances=config.tolerances) if config.tolerances else VerifyConfig()
                comparisons = verify_bundle(b, vconf, log=console.log)
                with guard_disk(staged.staging):
                    write_reports(b, comparisons, sections=int8_sections or None)
        final = staged.commit()
    console.log(f"bundle written to {final} in {sum(timings.values()):.1f} s")
    engines, engine_hint = [], None
    if config.engine != "no":
        if all(c.passed for c in comparisons):
            from runtime.trt.build import export_engines

            engines, engine_hint = export_engines(final, config.engine, log=console.log, warn=console.warn)
        else:
            engine_hint = "TensorRT engines were not built because the verification failed."
    return ExportResult(bundle=final, comparisons=comparisons, timings=timings, engines=engines,
                        engine_hint=engine_hint)

