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
from runtime.errors import UsageError
from runtime.precision import CPU_INT8, OV_INT8, PRECISIONS
from runtime.manifest import Fp16Range, GoldenInfo, InputSpec, Manifest, ModelInfo, OutputSpec, WeightsInfo

from exporter.models.registry import ModelRequest
from exporter.options import ExportConfig, OptionSpec, check_choices
from exporter.options import specs as option_specs


@dataclasses.dataclass
class ExportResult:
    """What ``run_export`` / ``edgeport.export`` returns."""

    bundle: Path
    comparisons: list  # runtime.compare.Comparison per artifact (empty with verify=False)
    timings: dict  # seconds per stage
    engines: list = dataclasses.field(default_factory=list)  # runtime.engines.build.BuiltEngine
    engine_hint: str | None = None  # why no engines were built, and the command to run on the target

    @property
    def passed(self) -> bool:
        """Every artifact met its tolerance (True when verification was skipped)."""
        return all(c.passed for c in self.comparisons)

    def open(self):
        """The written bundle (runtime.bundle.Bundle); this process wrote it, so no signature is checked."""
        return Bundle.open(self.bundle, trusted_keys=())

    def int8_diagnosis(self) -> dict:
        """{precision: Int8Diagnosis} of the INT8 artifacts that failed verification, as report.json
        holds them (empty when every artifact passed or verification was skipped)."""
        if not self.comparisons or self.passed:
            return {}
        from runtime.report.summary import load_report

        section = load_report(self.open()).int8_diagnosis
        return dict(section.entries) if section else {}


def make_config(model, **options) -> ExportConfig:
    """``ExportConfig`` from ``edgeport.export``'s keyword arguments: the ModelRequest fields go to
    the request, the rest to the config; an unknown name is a UsageError naming it (the values
    are checked once, by ``_check_config``)."""
    request_names = {f.name for f in dataclasses.fields(ModelRequest)} - {"model"}
    config_names = {f.name for f in dataclasses.fields(ExportConfig)} - {"request"}
    unknown = sorted(set(options) - request_names - config_names)
    if unknown:
        raise UsageError(f"export() got unknown option(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(request_names | config_names))}.")
    for cls in (ModelRequest, ExportConfig):
        for field, spec in option_specs(cls):
            if field.name in options:
                options[field.name] = _value(field.name, options[field.name], spec)
    request = ModelRequest(model=str(model) if isinstance(model, Path) else model,
                           **{k: v for k, v in options.items() if k in request_names})
    return ExportConfig(request=request, **{k: v for k, v in options.items() if k in config_names})


def _value(name: str, value, spec: OptionSpec):
    """One API value in the config's type (paths as Path, sequences as tuples)."""
    if value is None:
        return None
    if name == "tolerances":
        from runtime.compare import parse_tolerances

        return parse_tolerances(value)
    if name in ("mean", "std"):
        return (float(value),) if isinstance(value, (int, float)) else tuple(value)
    if name == "factory_args":
        from exporter.models.factories import parse_factory_args

        return parse_factory_args(value) or None
    if name == "class_names":
        return tuple(value)
    if name == "int8_exclude":
        return (value,) if isinstance(value, str) else tuple(value)
    return Path(value) if spec.kind is Path else value


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
    if config.opset is not None and not 7 <= config.opset <= 20:
        raise UsageError(f"--opset {config.opset} is outside the supported range 7..20 "
                         "(TensorRT 8.6 parses up to 17; static INT8 quantization needs < 21).")
    check_choices(config)
    if config.name is not None:
        from exporter.bundle_writer import check_name

        check_name(config.name)
    from exporter.int8.options import check_options

    check_options(config)
    from exporter.prechecks import check_paths

    check_paths(config)  # every path and data option, before the model loads (exit 2, or 3 for unusable data)
    if config.max_drop is not None or config.labeled_data is not None or config.fallback_precision is not None \
            or config.max_float_layers is not None:
        from exporter.int8.mixed_precision import check_config

        check_config(config)


def _opset(config: ExportConfig, built) -> int:
    """--opset for a PyTorch model (default 17); a given ONNX graph keeps its own."""
    from exporter.onnx_export import DEFAULT_OPSET

    if built.onnx_model is None:
        return config.opset or DEFAULT_OPSET
    if config.opset is not None and config.opset != built.opset:
        raise UsageError(f"--opset {config.opset} does not apply to an ONNX model: edgeport keeps the given graph's "
                         f"opset ({built.opset}).", hint="Drop --opset, or convert the model first "
                                                          "(onnx.version_converter).")
    return built.opset


def _base_manifest(config: ExportConfig, built, name: str, ref, params: int | None, macs: int | None,
                   simplify_stats, input_name: str) -> Manifest:
    """The manifest's model, input, outputs and preprocessing sections (artifacts come later)."""
    pre = built.preprocessing
    return Manifest(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=ModelInfo(name=name, architecture=built.name, source=built.source, spec=built.spec,
                        num_classes=ref.num_classes,
                        class_names=list(config.class_names) if config.class_names else built.class_names,
                        params=params, gmacs=round(macs / 1e9, 4) if macs is not None else None,
                        factory_args=built.factory_args),
        weights=WeightsInfo.from_dict(built.weights),
        input=InputSpec(name=input_name, shape=["batch", *pre.chw], dtype="float32",
                        min_batch=1, max_batch=config.max_batch),
        outputs=[OutputSpec(name=n, shape=["batch", *a.shape[1:]], dtype="float32")
                 for n, a in ref.all_outputs.items()],
        reference=ref.kind,
        preprocessing=pre.to_dict(),
        opset=_opset(config, built),
        simplified=simplify_stats,
        versions=library_versions(),
        artifacts={},
    )


def _onnx_graph(config: ExportConfig, built, ref, timings: dict):
    """The FP32 graph: torch.onnx.export of a PyTorch model (outputs named, the classifier moved
    first), or the given ONNX graph as prepared by exporter/models/onnx_file.py."""
    from exporter.onnx_export import export_onnx
    from exporter.models.outputs import reorder_graph_outputs

    if built.onnx_model is not None:
        return built.onnx_model
    opset = _opset(config, built)
    with _Stage(timings, "export", f"exporting to ONNX (opset {opset}, dynamic batch 1..{config.max_batch})"):
        model = export_onnx(built.module, built.preprocessing.chw, opset, output_names=ref.model_order)
        reorder_graph_outputs(model, list(ref.all_outputs))
    return model


def _add_graphs(staged, config: ExportConfig, built, ref, timings: dict):
    """model.onnx (simplified) and model.fp16.onnx; returns (onnx model, simplify stats, fp16 range)."""
    from exporter.bundle_writer import guard_disk
    from exporter.onnx_export import check_finite, fp16_range_check, save, simplify, to_fp16

    model = _onnx_graph(config, built, ref, timings)
    check_finite(model, ref.all_outputs)  # NaN weights: named here, not blamed on onnxsim's check below
    simplify_stats = None
    if config.simplify:
        with _Stage(timings, "simplify", "simplifying with onnxsim (checked against the unsimplified graph)"):
            model, simplify_stats = simplify(model, ref.inputs[: min(4, len(ref.inputs))])
        console.log(f"onnxsim: {simplify_stats['nodes_before']} -> {simplify_stats['nodes_after']} nodes, "
                    f"max rel diff {simplify_stats['max_rel_diff']:.2e}")
    with guard_disk(staged.staging):
        save(model, staged.path(PRECISIONS["fp32"].artifact))
    fp16_range = None
    if config.fp16:
        with _Stage(timings, "fp16", "converting to FP16 (FP32 inputs and outputs)"):
            with guard_disk(staged.staging):
                save(to_fp16(model), staged.path(PRECISIONS["fp16"].artifact))
            fp16_range = Fp16Range.from_dict(fp16_range_check(model, ref.inputs))
        if fp16_range.overflows:
            console.warn(f"{fp16_range.overflowing_count} tensors exceed the FP16 range (max |x| = "
                         f"{fp16_range.max_abs_activation:.3g} > 65504) on the golden set; the FP16 "
                         "artifact will overflow on TensorRT")
        if fp16_range.underflows:
            console.warn(f"{fp16_range.underflowing_count} tensors lie mostly below FP16's smallest normal (6.1e-5) "
                         f"on the golden set: {fp16_range.underflow_names()}; the FP16 artifact flushes them to zero "
                         "(its verification fails; model.int8.onnx keeps such regions FP32)")
    return model, simplify_stats, fp16_range


def _add_int8(staged, manifest: Manifest, model, built, config: ExportConfig, ref,
              timings: dict) -> dict:
    """The INT8 artifacts (TensorRT Q/DQ, budget, CPU U8S8) into ``manifest``; returns report sections."""
    from exporter.int8.options import warn_few_samples
    from exporter.int8.quantize import add_int8
    from exporter.prechecks import check_calibration_channels

    check_calibration_channels(config, manifest.input.chw[0])
    with _Stage(timings, "int8", "calibrating and quantizing to INT8 (Q/DQ)"):
        int8 = add_int8(staged, manifest, model, built, config)
    manifest.artifacts["int8"], manifest.int8 = int8.entry, int8.info
    warn_few_samples(manifest.int8, default_set=config.calib_data is None)
    sections: dict = {}
    budget = None
    if config.max_drop is not None:
        from exporter.int8.mixed_precision import apply_budget, budget_data_for

        with _Stage(timings, "int8_budget", f"fitting INT8 to the accuracy budget (--max-drop {config.max_drop:g})"):
            data = budget_data_for(config, manifest, built.preprocessing, ref.inputs, ref.outputs, ref.gold.source)
            outcome = apply_budget(staged, manifest, config, model, int8, data, ref.inputs, ref.outputs)
        manifest.artifacts["int8"], manifest.int8 = outcome.entry, outcome.info
        sections, budget = outcome.sections, outcome.budget
    if config.int8_openvino:
        from exporter.int8.openvino_int8 import add_int8_openvino

        with _Stage(timings, "int8_ov", "quantizing for OpenVINO (NNCF, model.int8-ov.onnx)"):
            manifest.artifacts[OV_INT8] = add_int8_openvino(staged, manifest, model, built, config)
    if not config.int8_cpu:
        console.log("--no-int8-cpu: no model.int8-cpu.onnx (ONNX Runtime CPU then runs model.int8.onnx, slower "
                    "than FP32 there)")
        return sections

    from exporter.int8.cpu_int8 import CpuInt8Unsupported, add_int8_cpu  # the INT8 graph ORT CPU runs fast

    try:
        with _Stage(timings, "int8_cpu", "quantizing for ONNX Runtime CPU (U8S8 Q/DQ, model.int8-cpu.onnx)"):
            manifest.artifacts[CPU_INT8], manifest.int8_cpu = add_int8_cpu(
                staged, manifest, model, built, config, int8.calibration.observed, budget)
    except CpuInt8Unsupported as exc:  # optional: the rest of the bundle is still written
        console.warn(f"no model.int8-cpu.onnx: {str(exc).rstrip('.')}. ONNX Runtime CPU runs model.int8.onnx instead "
                     "(slower than FP32 there); pass --no-int8-cpu to skip this step.")
    return sections


def _verify_staged(staged, config: ExportConfig, sections: dict, timings: dict, reference: str) -> list:
    """Verify the staged bundle on ONNX Runtime CPU and write its reports; returns the comparisons."""
    from runtime.report.summary import write_reports
    from runtime.verify import VerifyConfig, verify_bundle

    from exporter.bundle_writer import guard_disk

    with _Stage(timings, "verify", f"verifying every artifact against {reference} on ONNX Runtime CPU"):
        b = Bundle.open(staged.staging, trusted_keys=())  # written just now: nobody signed it yet
        vconf = VerifyConfig(tolerances=config.tolerances) if config.tolerances else VerifyConfig()
        verification = verify_bundle(b, vconf, log=console.log)
        with guard_disk(staged.staging):
            write_reports(b, verification, sections=sections or None)
    return verification.comparisons


def run_export(config: ExportConfig) -> ExportResult:
    """Export ``config.request`` to a verified bundle under ``config.output`` (see the module docstring)."""
    from runtime.errors import require

    from exporter.bundle_writer import created_output
    from exporter.models.registry import check_request, is_onnx_model

    _check_config(config)
    check_request(config.request)  # a typo is a usage error, before seconds of importing torch
    if not is_onnx_model(config.request.model):  # an ONNX model is exported without torch
        require("torch", purpose="edgeport export", install="pip install 'edgeport[export]'")
    if config.engine == "yes":
        from runtime.engines.build import require_engine_support

        require_engine_support()  # fail before a minutes-long export, not after it
    config = _absolute_paths(config)  # before user code runs: a factory's chdir moves nothing
    # Fail fast, before loading the model; a failed export then removes the folders it created.
    with created_output(config.output):
        return _export_into(config)


def _export_into(config: ExportConfig) -> ExportResult:
    from exporter.bundle_writer import StagedBundle
    from exporter.models.registry import build_model, default_name

    _precheck_replace(config)
    timings: dict[str, float] = {}
    # The lock first: a second export into the same bundle fails at once, not after the load.
    with StagedBundle(config.output, config.name or default_name(config.request)) as staged, \
            _user_code(config.request):
        with _Stage(timings, "load", f"loading model {config.request.label}"):
            built = build_model(config.request, log=console.log)
        try:
            comparisons = _export_built(config, built, staged, timings)
        finally:
            if built.restore is not None:
                built.restore()
    final = staged.final
    console.log(f"bundle written to {final} in {sum(timings.values()):.1f} s")
    engines, engine_hint = _engines_after_export(final, config, comparisons)
    return ExportResult(bundle=final, comparisons=comparisons, timings=timings, engines=engines,
                        engine_hint=engine_hint)


def _user_code(request):
    """A user factory's import, call and forward passes run isolated (exporter/models/factories.py)."""
    import contextlib

    from exporter.models.factories import user_code
    from exporter.models.registry import is_user_model

    return user_code(request.model) if is_user_model(request.model) else contextlib.nullcontext()


def _absolute_paths(config: ExportConfig) -> ExportConfig:
    """Every path option made absolute (a --weights that names an existing file too)."""
    changes = {f.name: Path(v).absolute() for f in dataclasses.fields(config)
               if "Path" in str(f.type) and (v := getattr(config, f.name)) is not None}
    weights = config.request.weights
    if isinstance(weights, (str, Path)) and Path(weights).exists():
        changes["request"] = dataclasses.replace(config.request, weights=str(Path(weights).absolute()))
    return dataclasses.replace(config, **changes)


def _precheck_replace(config: ExportConfig) -> None:
    """A re-export's refusals that need no loaded model (exporter/reexport.py), before loading it."""
    from exporter.models.registry import REGISTRY
    from exporter.reexport import Identity, precheck

    entry = REGISTRY.get(config.request.model) if isinstance(config.request.model, str) else None
    identity = Identity(entry.family, entry.name, None) if entry else None
    precheck(config.output, config.name or (entry.name if entry else None), identity, config.force)


def _export_built(config: ExportConfig, built, staged, timings: dict) -> list:
    """Everything after the model is loaded: reference outputs, the staged bundle, verification,
    the commit; returns the comparisons."""
    from runtime.preprocess import format_hw

    from exporter.bundle_writer import guard_disk
    from exporter.models.registry import count_macs
    from exporter.onnx_export import INPUT_NAME
    from exporter.reference import compute_reference
    from exporter.reexport import Identity, carry_over, check_replace

    pre = built.preprocessing
    name = staged.name
    what = "ONNX Runtime FP32 outputs of the given model" if built.onnx_model is not None else "PyTorch FP32 outputs"
    with _Stage(timings, "reference", f"computing {what} (the reference) on the golden set"):
        ref = compute_reference(config, built)
        if built.onnx_model is None:
            params, macs = count_macs(built.module, pre.chw)
            input_name = INPUT_NAME
        else:  # MACs are counted on PyTorch modules only
            params, macs = built.params, None
            input_name = built.onnx_model.graph.input[0].name
    outputs = f", outputs {', '.join(ref.all_outputs)} (classifier: {next(iter(ref.all_outputs))})" \
        if len(ref.all_outputs) > 1 else ""
    from runtime.report.numbers import macs as macs_text  # the report's words: "14.9 GMACs", "3.1 MMACs"

    gmacs = macs_text(macs) if macs is not None else "MACs not counted"
    console.log(f"{built.name}: {params / 1e6:.2f} M parameters, {gmacs} at {pre.channels}x{format_hw(pre.size)}, "
                f"{ref.num_classes} classes{outputs}; {len(ref.gold.names)} golden samples ({ref.gold.source})")
    if ref.gold.skipped:
        console.warn(f"skipped {len(ref.gold.skipped)} unreadable verification images (first: "
                     f"{ref.gold.skipped[0][0]}: {ref.gold.skipped[0][1]})")
    if built.weights.get("random_init"):
        console.warn("random-init weights: the report checks fidelity to PyTorch only, not task accuracy")

    previous = check_replace(staged.final, Identity(built.source, built.name, ref.num_classes), config.force)
    model, simplify_stats, fp16_range = _add_graphs(staged, config, built, ref, timings)
    manifest = _base_manifest(config, built, name, ref, params, macs, simplify_stats, input_name)
    manifest.artifacts["fp32"] = staged.entry(PRECISIONS["fp32"].artifact)
    if config.fp16:
        manifest.artifacts["fp16"] = staged.entry(PRECISIONS["fp16"].artifact)
        manifest.fp16_range = fp16_range
    sections = _add_int8(staged, manifest, model, built, config, ref, timings) if config.int8 else {}
    with guard_disk(staged.staging):
        _write_golden(staged.path(GOLDEN), ref)
    manifest.golden = GoldenInfo(**staged.entry(GOLDEN).to_dict(), samples=len(ref.gold.names),
                                 source=ref.gold.source, skipped=len(ref.gold.skipped))
    manifest.timings_s = timings
    staged.write_manifest(manifest)
    carry_over(previous, staged, manifest, verify=config.verify, fresh=set(sections))
    comparisons = _verify_staged(staged, config, sections, timings, ref.label) if config.verify else []
    staged.commit()
    return comparisons


def _write_golden(path: Path, ref) -> None:
    """golden.npz: the crops (or the given preprocessed arrays), their names and every output's
    reference (``outputs`` = the classifier, ``outputs_<i>`` = the manifest's output i)."""
    from runtime.bundle import golden_key

    samples = {"images": ref.gold.images} if ref.gold.images is not None else {"inputs": ref.gold.arrays}
    outputs = {golden_key(i): a.astype(np.float32) for i, a in enumerate(ref.all_outputs.values())}
    np.savez_compressed(path, **samples, **outputs, names=np.array(ref.gold.names))


def _engines_after_export(final: Path, config: ExportConfig, comparisons: list) -> tuple[list, str | None]:
    """``--engine auto|yes``: TensorRT engines right after a verified export."""
    if config.engine == "no":
        return [], None
    if not all(c.passed for c in comparisons):
        return [], "TensorRT engines were not built because the verification failed."
    from runtime.engines.build import export_engines
    from runtime.signing import own_bundle

    with own_bundle():  # the bundle this export has just committed: nobody signed it yet
        return export_engines(final, config.engine, log=console.log, warn=console.warn)
