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
from runtime.bundle import GOLDEN, Bundle
from runtime.errors import EdgeportError, UsageError
from runtime.manifest import Fp16Range, GoldenInfo, InputSpec, Manifest, ModelInfo, OutputSpec, WeightsInfo

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
    engine: str = "auto"  # auto|yes|no: TensorRT engines right after the export (same default as the CLI)
    # --max-drop: INT8 accuracy budget in points; the most sensitive layers leave INT8 until it holds
    # (exporter/mixed_precision.py). --budget-data: labeled held-out images to judge it on.
    max_drop: float | None = None
    budget_data: Path | None = None
    fallback_precision: str | None = None  # fp16 (default) | fp32: precision of the layers kept out of INT8
    max_float_layers: int | None = None  # default: half the quantized layers
    sensitivity_samples: int = 32  # held-out images per per-layer sensitivity run


@dataclasses.dataclass
class ExportResult:
    """What ``run_export`` / ``edgeport.export`` returns."""

    bundle: Path
    comparisons: list  # runtime.compare.Comparison per artifact (empty with verify=False)
    timings: dict  # seconds per stage
    engines: list = dataclasses.field(default_factory=list)  # runtime.trt.build.BuiltEngine
    engine_hint: str | None = None  # why no engines were built, and the command to run on the target

    @property
    def passed(self) -> bool:
        """Every artifact met its tolerance (True when verification was skipped)."""
        return all(c.passed for c in self.comparisons)

    def open(self):
        """The written bundle (runtime.bundle.Bundle)."""
        return Bundle.open(self.bundle)


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
        from runtime import interrupts

        self.timings[self.name] = round(time.perf_counter() - self.t0, 3)
        if exc[0] is None:
            interrupts.check()  # stop at the next stage when a native call swallowed Ctrl-C


def _check_config(config: ExportConfig) -> None:
    """Option values and combinations, checked before anything slow happens."""
    if config.max_batch < 1:
        raise UsageError(f"--max-batch must be at least 1, got {config.max_batch}.")
    if not 7 <= config.opset <= 20:
        raise UsageError(f"--opset {config.opset} is outside the supported range 7..20 "
                         "(TensorRT 8.6 parses up to 17; static INT8 quantization needs < 21).")
    if config.engine not in ("auto", "yes", "no"):
        raise UsageError(f"engine must be auto, yes or no, got {config.engine!r}.")
    if config.max_drop is not None or config.budget_data is not None or config.fallback_precision is not None \
            or config.max_float_layers is not None:
        from .mixed_precision import check_config

        check_config(config)


@dataclasses.dataclass
class _Reference:
    """The golden images, their normalized inputs and PyTorch's outputs on them."""

    gold: object  # golden.GoldenImages
    inputs: np.ndarray
    outputs: np.ndarray
    num_classes: int


def _reference(config: ExportConfig, built) -> _Reference:
    """PyTorch FP32 outputs on the golden set; this forward pass also proves the input size works."""
    from runtime.preprocess import normalize

    from . import golden as G

    pre = built.preprocessing
    if config.verify_data:
        gold = G.folder_images(config.verify_data, pre, config.verify_samples)
    else:
        gold = G.builtin_images(pre)
    inputs = normalize(gold.images, pre)
    try:
        reference = G.reference_outputs(built.module, inputs)
    except Exception as exc:  # noqa: BLE001 - shape errors from arbitrary models
        raise EdgeportError(
            f"{built.name} cannot take {pre.crop}x{pre.crop} inputs: {type(exc).__name__}: {str(exc)[:300]}.",
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
    return _Reference(gold, inputs, reference, num_classes)


def _base_manifest(config: ExportConfig, built, name: str, ref: _Reference, params: int, macs: int,
                   simplify_stats) -> Manifest:
    """The manifest's model, input, outputs and preprocessing sections (artifacts come later)."""
    from .onnx_export import INPUT_NAME, OUTPUT_NAME

    pre = built.preprocessing
    return Manifest(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=ModelInfo(name=name, architecture=built.name, source=built.source, spec=built.spec,
                        num_classes=ref.num_classes,
                        class_names=list(config.class_names) if config.class_names else built.class_names,
                        params=params, gmacs=round(macs / 1e9, 4)),
        weights=WeightsInfo.from_dict(built.weights),
        input=InputSpec(name=INPUT_NAME, shape=["batch", 3, pre.crop, pre.crop], dtype="float32",
                        min_batch=1, max_batch=config.max_batch),
        outputs=[OutputSpec(name=OUTPUT_NAME, shape=["batch", ref.num_classes], dtype="float32")],
        preprocessing=pre.to_dict(),
        opset=config.opset,
        simplified=simplify_stats,
        versions=library_versions(),
        artifacts={},
    )


def _add_graphs(staged, config: ExportConfig, built, ref: _Reference, timings: dict):
    """model.onnx (simplified) and model.fp16.onnx; returns (onnx model, simplify stats, fp16 range)."""
    from .bundle_writer import guard_disk
    from .onnx_export import export_onnx, fp16_range_check, save, simplify, to_fp16

    crop = built.preprocessing.crop
    with _Stage(timings, "export", f"exporting to ONNX (opset {config.opset}, dynamic batch 1..{config.max_batch})"):
        model = export_onnx(built.module, crop, config.opset)
    simplify_stats = None
    if config.simplify:
        with _Stage(timings, "simplify", "simplifying with onnxsim (checked against the unsimplified graph)"):
            model, simplify_stats = simplify(model, ref.inputs[: min(4, len(ref.inputs))])
        console.log(f"onnxsim: {simplify_stats['nodes_before']} -> {simplify_stats['nodes_after']} nodes, "
                    f"max rel diff {simplify_stats['max_rel_diff']:.2e}")
    with guard_disk(staged.staging):
        save(model, staged.path("model.onnx"))
    fp16_range = None
    if config.fp16:
        with _Stage(timings, "fp16", "converting to FP16 (FP32 inputs and outputs)"):
            with guard_disk(staged.staging):
                save(to_fp16(model), staged.path("model.fp16.onnx"))
            fp16_range = Fp16Range.from_dict(fp16_range_check(model, ref.inputs))
        if fp16_range.overflows:
            console.warn(f"{fp16_range.overflowing_count} tensors exceed the FP16 range (max |x| = "
                         f"{fp16_range.max_abs_activation:.3g} > 65504) on the golden set; the FP16 "
                         "artifact will overflow on TensorRT")
    return model, simplify_stats, fp16_range


def _add_int8(staged, manifest: Manifest, model, built, config: ExportConfig, ref: _Reference,
              timings: dict) -> dict:
    """The INT8 artifacts (TensorRT Q/DQ, budget, CPU U8S8) into ``manifest``; returns report sections."""
    from .quantize import add_int8

    with _Stage(timings, "int8", "calibrating and quantizing to INT8 (Q/DQ)"):
        manifest.artifacts["int8"], manifest.int8 = add_int8(staged, manifest, model, built, config)
    sections: dict = {}
    if config.max_drop is not None:
        from .mixed_precision import apply_budget, budget_data_for

        with _Stage(timings, "int8_budget", f"fitting INT8 to the accuracy budget (--max-drop {config.max_drop:g})"):
            data = budget_data_for(config, manifest, built.preprocessing, ref.inputs, ref.outputs, ref.gold.source)
            manifest.artifacts["int8"], manifest.int8, sections = apply_budget(
                staged, manifest, config, built.preprocessing, data, ref.inputs, ref.outputs)

    from .cpu_int8 import add_int8_cpu  # model.int8-cpu.onnx: the INT8 graph ORT CPU runs fast

    with _Stage(timings, "int8_cpu", "quantizing for ONNX Runtime CPU (U8S8 Q/DQ, model.int8-cpu.onnx)"):
        manifest.artifacts["int8-cpu"], manifest.int8_cpu = add_int8_cpu(staged, manifest, model, built, config)
    return sections


def _verify_staged(staged, config: ExportConfig, sections: dict, timings: dict) -> list:
    """Verify the staged bundle on ONNX Runtime CPU and write its reports; returns the comparisons."""
    from runtime.report import write_reports
    from runtime.verify import VerifyConfig, verify_bundle

    from .bundle_writer import guard_disk

    with _Stage(timings, "verify", "verifying every artifact against PyTorch on ONNX Runtime CPU"):
        b = Bundle.open(staged.staging)
        vconf = VerifyConfig(tolerances=config.tolerances) if config.tolerances else VerifyConfig()
        comparisons = verify_bundle(b, vconf, log=console.log)
        with guard_disk(staged.staging):
            write_reports(b, comparisons, sections=sections or None)
    return comparisons


def run_export(config: ExportConfig) -> ExportResult:
    """Export ``config.request`` to a verified bundle under ``config.output`` (see the module docstring)."""
    from runtime.errors import require

    from .bundle_writer import prepare_output
    from .models import build_model, check_model_name

    _check_config(config)
    check_model_name(config.request.model)  # a typo is a usage error, before seconds of importing torch
    require("torch", purpose="edgeport export", install="pip install 'edgeport[export]'")
    if config.engine == "yes":
        from runtime.trt.build import require_engine_support

        require_engine_support()  # fail before a minutes-long export, not after it
    prepare_output(config.output)  # fail fast, before loading the model
    timings: dict[str, float] = {}
    with _Stage(timings, "load", f"loading model {config.request.label}"):
        built = build_model(config.request, log=console.log)
    try:
        return _export_built(config, built, timings)
    finally:
        if built.restore is not None:
            built.restore()


def _export_built(config: ExportConfig, built, timings: dict) -> ExportResult:
    """Everything after the model is loaded: reference outputs, the staged bundle, verification."""
    from .bundle_writer import StagedBundle, guard_disk
    from .models import count_macs

    pre = built.preprocessing
    name = config.name or built.name
    with _Stage(timings, "reference", "computing PyTorch FP32 reference outputs on the golden set"):
        ref = _reference(config, built)
        params, macs = count_macs(built.module, pre.crop)
    console.log(f"{built.name}: {params / 1e6:.2f} M parameters, {macs / 1e9:.3f} GMACs at {pre.crop}x{pre.crop}, "
                f"{ref.num_classes} classes; {len(ref.gold.names)} golden samples ({ref.gold.source})")
    if ref.gold.skipped:
        console.warn(f"skipped {len(ref.gold.skipped)} unreadable verification images (first: "
                     f"{ref.gold.skipped[0][0]}: {ref.gold.skipped[0][1]})")
    if built.weights.get("random_init"):
        console.warn("random-init weights: the report checks fidelity to PyTorch only, not task accuracy")

    with StagedBundle(config.output, name) as staged:
        model, simplify_stats, fp16_range = _add_graphs(staged, config, built, ref, timings)
        manifest = _base_manifest(config, built, name, ref, params, macs, simplify_stats)
        manifest.artifacts["fp32"] = staged.entry("model.onnx")
        if config.fp16:
            manifest.artifacts["fp16"] = staged.entry("model.fp16.onnx")
            manifest.fp16_range = fp16_range
        sections = _add_int8(staged, manifest, model, built, config, ref, timings) if config.int8 else {}
        with guard_disk(staged.staging):
            np.savez_compressed(staged.path(GOLDEN), images=ref.gold.images, outputs=ref.outputs.astype(np.float32),
                                names=np.array(ref.gold.names))
        manifest.golden = GoldenInfo(**staged.entry(GOLDEN).to_dict(), samples=len(ref.gold.names),
                                     source=ref.gold.source, skipped=len(ref.gold.skipped))
        manifest.timings_s = timings
        staged.write_manifest(manifest)
        comparisons = _verify_staged(staged, config, sections, timings) if config.verify else []
        final = staged.commit()
    console.log(f"bundle written to {final} in {sum(timings.values()):.1f} s")
    engines, engine_hint = _engines_after_export(final, config, comparisons)
    return ExportResult(bundle=final, comparisons=comparisons, timings=timings, engines=engines,
                        engine_hint=engine_hint)


def _engines_after_export(final: Path, config: ExportConfig, comparisons: list) -> tuple[list, str | None]:
    """``--engine auto|yes``: TensorRT engines right after a verified export."""
    if config.engine == "no":
        return [], None
    if not all(c.passed for c in comparisons):
        return [], "TensorRT engines were not built because the verification failed."
    from runtime.trt.build import export_engines

    return export_engines(final, config.engine, log=console.log, warn=console.warn)
