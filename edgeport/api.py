"""The documented Python API (docs/api.md). The CLI calls exactly these functions.

Every function takes plain values, returns dataclasses and reports progress through the
``edgeport`` logger (or ``progress=callback``, called with each message). Errors are
``runtime.errors.EdgeportError`` (``UsageError`` for bad arguments) with a one-paragraph
message. Only ``export`` needs torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterable, Sequence

from runtime.benchmark import BenchmarkResult, Latency  # noqa: F401  (public names: edgeport/__init__.py)
from runtime.bundle import Bundle
from runtime.compare import Comparison
from runtime.console import progress_to
from runtime.errors import UsageError
from runtime.graph.qdq_lint import ArtifactLint
from runtime.labeled import LabeledAccuracy
from runtime.predict import ClassScore, Prediction  # noqa: F401  (public names: edgeport/__init__.py)
from runtime.runners import Target

Progress = Callable[[str], None] | None


def _bundle(bundle) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)


def _precisions(precisions) -> tuple[str, ...]:
    if precisions is None:
        return ("all",)
    if isinstance(precisions, str):
        return tuple(p.strip() for p in precisions.split(",") if p.strip()) or ("all",)
    return tuple(precisions)


# -- export ------------------------------------------------------------------------------------------
def export(model, *, output: str | Path = "exports", name: str | None = None, weights: str | None = None,
           num_classes: int | None = None, input_size: int | tuple[int, int] | str | None = None,
           channels: int | None = None, mean: Sequence[float] | float | None = None,
           std: Sequence[float] | float | None = None, preprocessing=None, class_names: Sequence[str] | None = None,
           factory_args: dict | None = None, output_name: str | None = None, output_index: int | None = None,
           max_batch: int = 32, opset: int | None = None, simplify: bool = True, fp16: bool = False,
           int8: bool = False,
           calib_data: str | Path | None = None, calib_samples: int | None = None, calib_method: str | None = None,
           max_drop: float | None = None, budget_data: str | Path | None = None,
           fallback_precision: str | None = None, max_float_layers: int | None = None,
           sensitivity_samples: int = 32, verify: bool = True, verify_data: str | Path | None = None,
           verify_samples: int = 64, tolerances=None, engine: str = "auto", trust_checkpoint: bool = False,
           int8_cpu: bool = True, int8_openvino: bool = False, force: bool = False, progress: Progress = None):
    """Export ``model`` to a verified bundle in ``output/<name>``; returns an ``ExportResult``.

    ``model`` is an ``nn.Module`` instance (exported with its own weights), a registry name
    (``edgeport models``), ``path/to/file.py:factory`` / ``package.module:factory`` (called
    with ``factory_args``), or a path to an ``.onnx`` file (exported without torch; the
    reference is ONNX Runtime FP32 of that graph).
    ``weights`` (names and checkpoints; not for instances or ONNX files): None = the model's default.
    ``input_size``: N, (height, width) or "HxW". ``channels``: the input's channel count when the
    model's first convolution does not tell it. ``mean``/``std``: one value per channel, or one
    value for all channels. ``preprocessing`` (``edgeport.Preprocessing``) replaces
    ``input_size``/``mean``/``std``. ``output_name`` / ``output_index``: the classifier output
    of a model with several outputs (default: the first). ``opset``: default 17 (a given ONNX
    graph keeps its own).
    ``tolerances``: ``{"fp16": {"cosine_min": 0.995}}`` or ``["fp16.cosine_min=0.995"]``.
    ``engine``: build TensorRT engines after the export: ``auto`` (when TensorRT and a GPU
    are here), ``yes`` or ``no``. ``int8_cpu=False`` (with ``int8``): no model.int8-cpu.onnx;
    ``int8_openvino=True`` (with ``int8``): also model.int8-ov.onnx (NNCF, for OpenVINO).
    ``force``: replace ``output/<name>`` even when it holds another model (docs/api.md, re-exporting).
    """
    from exporter.models.registry import ModelRequest
    from exporter.pipeline import ExportConfig, run_export
    from runtime.compare import parse_tolerances

    request = ModelRequest(model=str(model) if isinstance(model, Path) else model, weights=weights,
                           num_classes=num_classes, input_size=input_size, channels=channels,
                           mean=_values(mean), std=_values(std), trust_checkpoint=trust_checkpoint,
                           preprocessing=preprocessing, factory_args=factory_args, output_name=output_name,
                           output_index=output_index)
    config = ExportConfig(
        request=request, output=Path(output), max_batch=max_batch, opset=opset, simplify=simplify, fp16=fp16,
        int8=int8, calib_data=Path(calib_data) if calib_data else None, calib_samples=calib_samples,
        calib_method=calib_method, verify=verify, verify_data=Path(verify_data) if verify_data else None,
        verify_samples=verify_samples, tolerances=parse_tolerances(tolerances or ()), name=name,
        class_names=tuple(class_names) if class_names is not None else None, engine=engine, max_drop=max_drop,
        budget_data=Path(budget_data) if budget_data else None, fallback_precision=fallback_precision,
        max_float_layers=max_float_layers, sensitivity_samples=sensitivity_samples, int8_cpu=int8_cpu,
        int8_openvino=int8_openvino, force=force)
    with progress_to(progress):
        return run_export(config)


def _values(values) -> tuple[float, ...] | None:
    """mean/std as a tuple (a single number means one value for every channel)."""
    if values is None:
        return None
    if isinstance(values, (int, float)):
        return (float(values),)
    return tuple(values)


# -- verify ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class VerifyResult:
    """The accuracy diff of every artifact checked, and where the reports were written."""

    bundle: Path
    comparisons: list[Comparison]
    lint: dict[str, ArtifactLint]  # precision -> Q/DQ lint of the TensorRT-style INT8 graph
    accuracy: LabeledAccuracy | None = None  # with data=...
    reports: list[Path] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle), "passed": self.passed, "results": [c.to_dict() for c in self.comparisons],
                "lint": {p: lint.to_dict() for p, lint in self.lint.items()},
                "accuracy": self.accuracy.to_dict() if self.accuracy else None,
                "reports": [str(p) for p in self.reports]}


def verify(bundle, precisions=("all",), *, backend: str = "onnxruntime", provider: str = "cpu",
           threads: int | None = None, qdq: bool = False, batch: int | None = None, tolerances=None,
           data: str | Path | None = None, labels: str | Path | None = None, data_samples: int | None = None,
           write_report: bool = True, progress: Progress = None) -> VerifyResult:
    """Check each artifact of ``bundle`` against the reference outputs it carries.

    With ``data`` (an ImageFolder tree, or a flat folder with ``labels``), also measures
    top-1/top-5 of every artifact. Writes report.json/.md/.html unless ``write_report`` is False.
    """
    from runtime import console
    from runtime.compare import parse_tolerances
    from runtime.verify import VerifyConfig, verify_bundle

    b = _bundle(bundle)
    target = Target(backend=backend, provider=provider, threads=threads, qdq=qdq)
    config = VerifyConfig(precisions=_precisions(precisions), target=target, batch=batch,
                          tolerances=parse_tolerances(tolerances or ()))
    with progress_to(progress):
        dataset = _labeled_set(b, data, labels, data_samples)  # before the long part: fail early
        if write_report:
            from runtime.report.summary import load_report

            load_report(b)  # a report.json edgeport cannot read is refused before the long part, too
        verification = verify_bundle(b, config, log=console.log)
        accuracy = None
        if dataset is not None:
            from runtime.labeled import AccuracyConfig, evaluate_accuracy

            accuracy = evaluate_accuracy(b, dataset, AccuracyConfig(precisions=config.precisions, target=target,
                                                                    batch=batch), log=console.log)
        reports = []
        if write_report:
            from runtime.report.summary import write_reports

            write_reports(b, verification, accuracy=accuracy)
            reports = [b.report_path(s) for s in ("json", "md", "html")]
    return VerifyResult(bundle=b.root, comparisons=verification.comparisons, lint=verification.lint,
                        accuracy=accuracy, reports=reports)


def _labeled_set(bundle: Bundle, data, labels, limit):
    """The labeled image set of ``verify(data=...)``, or None; option errors surface first."""
    if data is None:
        if labels is not None or limit is not None:
            raise UsageError("--labels and --labeled-samples need --labeled-data DIR.")
        return None
    from runtime.labeled import load_labeled_set

    return load_labeled_set(data, labels, class_names=bundle.class_names, num_classes=bundle.num_classes,
                            limit=limit)


# -- benchmark ---------------------------------------------------------------------------------------
def benchmark(bundle, precisions=("all",), *, batches: Iterable[int] = (1,), backend: str = "onnxruntime",
              provider: str = "cpu", threads: int | None = None, qdq: bool = False, warmup: int = 10,
              iterations: int | None = None, duration: float | None = None, write_report: bool = True,
              progress: Progress = None) -> BenchmarkResult:
    """Latency (p50/p90/p99, mean) and throughput of each artifact per batch size, through the
    same runners verify uses; merged into report.json unless ``write_report`` is False."""
    from runtime import console
    from runtime.benchmark import BenchConfig, run_benchmarks
    from runtime.report.summary import load_report, write_benchmarks

    b = _bundle(bundle)
    if isinstance(batches, int):
        batches = (batches,)
    config = BenchConfig(precisions=_precisions(precisions), batches=tuple(dict.fromkeys(batches)),
                         target=Target(backend=backend, provider=provider, threads=threads, qdq=qdq),
                         warmup=warmup, iterations=iterations, duration=duration)
    with progress_to(progress):
        if write_report:
            load_report(b)  # a report.json edgeport cannot read is refused before the long part
        run = run_benchmarks(b, config, log=console.log, warn=console.warn)
        if write_report:
            write_benchmarks(b, run, log=console.log)
    return run


# -- predict -----------------------------------------------------------------------------------------
def predict(bundle, images: Sequence[str | Path], precision: str = "fp32", *, backend: str = "onnxruntime",
            provider: str = "cpu", threads: int | None = None, qdq: bool = False, topk: int = 5) -> list[Prediction]:
    """Top-k classes and softmax probabilities for each image (the bundle's preprocessing)."""
    from runtime.predict import PredictConfig
    from runtime.predict import predict as run_predict

    b = _bundle(bundle)
    config = PredictConfig(precision=precision, target=Target(backend=backend, provider=provider, threads=threads,
                                                               qdq=qdq), topk=topk)
    return run_predict(b, list(images), config)


# -- build -------------------------------------------------------------------------------------------
def build(bundle, precisions=("all",), *, progress: Progress = None, **options) -> list:
    """Build TensorRT engines for ``bundle`` on this machine, or TensorRT-RTX engines on any
    x86_64 machine (``runtime="tensorrt-rtx"``, ``compute_capabilities=("8.6",)``); returns
    runtime.engines.build.BuiltEngine per engine. ``options`` are runtime.engines.build.BuildOptions
    fields (``max_batch``, ``workspace_mib``, ``dla_core``, ``hardware_compat``, ``runtime``, ...)."""
    from runtime import console
    from runtime.engines.build import BuildOptions, build_engines

    known = {f.name for f in dataclasses.fields(BuildOptions)} - {"precisions"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"build() got unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}.")
    b = _bundle(bundle)
    with progress_to(progress):
        return build_engines(b, BuildOptions(precisions=_precisions(precisions), **options), log=console.log,
                             warn=console.warn)


# -- sign --------------------------------------------------------------------------------------------
def sign(bundle, private_key) -> Path:
    """Write ``bundle.sig`` (OpenSSF model-signing, elliptic-curve key) covering every file of
    the bundle except what the device writes later; returns the signature's path. Devices read
    signed bundles with ``Bundle.open(path, trusted_keys=[public_pem])`` or ``--trusted-key``."""
    from runtime.signing import sign_bundle

    return sign_bundle(bundle.root if isinstance(bundle, Bundle) else bundle, private_key)
