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

from edgeport.wording import speaks_api

Progress = Callable[[str], None] | None


def _bundle(bundle) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)


def _precisions(precisions) -> tuple[str, ...]:
    if precisions is None:
        return ("all",)
    if isinstance(precisions, str):
        return tuple(p.strip() for p in precisions.split(",") if p.strip()) or ("all",)
    return tuple(precisions)


# Each function's exceptions to "--x-y is x_y" (edgeport/wording.py): how its errors name options.
_PRECISIONS = {"--precision": "precisions", "--tol": "tolerances"}


def _export_wording() -> tuple[dict[str, str], dict[str, str]]:
    """export's options as declared once (exporter/options.py): flag -> field, and what a bare flag sets."""
    from exporter.models.registry import ModelRequest
    from exporter.options import ExportConfig, specs

    params, flags = {"--tol": "tolerances"}, {}
    for field, spec in specs(ModelRequest) + specs(ExportConfig):
        for flag in spec.flags:
            if flag.startswith("--"):
                params[flag] = field.name
                if spec.kind is bool:
                    flags[flag] = str(not spec.negate)
    return params, flags


# -- export ------------------------------------------------------------------------------------------
@speaks_api(lambda: _export_wording()[0], lambda: _export_wording()[1])
def export(model, *, progress: Progress = None, **options):
    """Export ``model`` to a verified bundle in ``output/<name>``; returns an ``ExportResult``.

    ``model`` is an ``nn.Module`` instance (exported with its own weights), a registry name
    (``edgeport models``), ``path/to/file.py:factory`` / ``package.module:factory`` (called
    with ``factory_args``), or a path to an ``.onnx`` file (exported without torch; the
    reference is ONNX Runtime FP32 of that graph).
    ``options`` are the options of ``edgeport export`` under their field names, declared once in
    exporter/options.py (``ExportConfig``) and exporter/models/registry.py (``ModelRequest``):
    e.g. ``output``, ``name``, ``weights``, ``input_size`` (N, (height, width) or "HxW"),
    ``mean``/``std`` (one value per channel, or one for all), ``preprocessing``
    (``edgeport.Preprocessing``, replaces input_size/mean/std), ``fp16``, ``int8``,
    ``int8_cpu=False`` (no model.int8-cpu.onnx), ``max_drop``, ``labeled_data``, ``golden_data``,
    ``tolerances`` (``{"fp16": {"cosine_min": 0.995}}`` or ``["fp16.cosine_min=0.995"]``),
    ``engine`` (``auto``, ``yes`` or ``no``), ``force`` (docs/api.md, re-exporting). An unknown
    name is a UsageError that lists the known ones.
    """
    from exporter.pipeline import make_config, run_export

    config = make_config(model, **options)
    with progress_to(progress):
        return run_export(config)


# -- verify ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class VerifyResult:
    """The accuracy diff of every artifact checked, and where the reports were written."""

    bundle: Path
    comparisons: list[Comparison]
    lint: dict[str, ArtifactLint]  # precision -> Q/DQ lint of the TensorRT-style INT8 graph
    accuracy: LabeledAccuracy | None = None  # with data=...
    reports: list[Path] = dataclasses.field(default_factory=list)
    report_error: str | None = None  # why the reports could not be written after the work (a warning)
    # {precision: runtime.int8_diagnosis.Int8Diagnosis}: why a failing INT8 artifact failed
    int8_diagnosis: dict = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle), "passed": self.passed, "results": [c.to_dict() for c in self.comparisons],
                "lint": {p: lint.to_dict() for p, lint in self.lint.items()},
                "accuracy": self.accuracy.to_dict() if self.accuracy else None,
                "reports": [str(p) for p in self.reports], "report_error": self.report_error,
                "int8_diagnosis": {p: d.to_dict() for p, d in self.int8_diagnosis.items()}}


@speaks_api(_PRECISIONS, {"--qdq": "True", "--trust-engine-host-code": "True"})
def verify(bundle, precisions=("all",), *, backend: str = "onnxruntime", provider: str = "cpu",
           threads: int | None = None, qdq: bool = False, batch: int | None = None, tolerances=None,
           labeled_data: str | Path | None = None, labels: str | Path | None = None,
           labeled_samples: int | None = None, write_report: bool = True, trust_engine_host_code: bool = False,
           progress: Progress = None) -> VerifyResult:
    """Check each artifact of ``bundle`` against the reference outputs it carries.

    With ``labeled_data`` (an ImageFolder tree, or a flat folder with ``labels``), also measures
    top-1/top-5 of every artifact. Writes report.json/.md/.html unless ``write_report`` is False.
    ``trust_engine_host_code``: load version-compatible engines, whose embedded host code runs in
    this process (docs/security.md); without it they are refused.
    """
    from runtime import console
    from runtime.compare import parse_tolerances
    from runtime.verify import VerifyConfig, verify_bundle

    b = _bundle(bundle)
    target = Target(backend=backend, provider=provider, threads=threads, qdq=qdq,
                    trust_engine_host_code=trust_engine_host_code)
    config = VerifyConfig(precisions=_precisions(precisions), target=target, batch=batch,
                          tolerances=parse_tolerances(tolerances or ()))
    with progress_to(progress):
        dataset = _labeled_set(b, labeled_data, labels, labeled_samples)  # before the long part: fail early
        if write_report:
            from runtime.report.summary import check_writable, load_report

            load_report(b)  # a report.json edgeport cannot read is refused before the long part, too
            check_writable(b, "verify")  # so is a folder the reports cannot be written into
        verification = verify_bundle(b, config, log=console.log)
        accuracy = None
        if dataset is not None:
            from runtime.labeled import AccuracyConfig, evaluate_accuracy

            accuracy = evaluate_accuracy(b, dataset, AccuracyConfig(precisions=config.precisions, target=target,
                                                                    batch=batch), log=console.log)
        reports, error = [], None
        if write_report:
            from runtime.report.summary import save_after_work, write_reports

            error = save_after_work(b, lambda: write_reports(b, verification, accuracy=accuracy), console.warn)
            reports = [] if error else [b.report_path(s) for s in ("json", "md", "html")]
    return VerifyResult(bundle=b.root, comparisons=verification.comparisons, lint=verification.lint,
                        accuracy=accuracy, reports=reports, report_error=error,
                        int8_diagnosis=dict(verification.diagnoses))


def _labeled_set(bundle: Bundle, data, labels, limit):
    """The labeled image set of ``verify(labeled_data=...)``, or None; option errors surface first."""
    if data is None:
        if labels is not None or limit is not None:
            raise UsageError("--labels and --labeled-samples need --labeled-data DIR.")
        return None
    from runtime.labeled import load_labeled_set

    return load_labeled_set(data, labels, class_names=bundle.class_names, num_classes=bundle.num_classes,
                            limit=limit)


# -- benchmark ---------------------------------------------------------------------------------------
@speaks_api({**_PRECISIONS, "--batch": "batches"}, {"--qdq": "True", "--trust-engine-host-code": "True"})
def benchmark(bundle, precisions=("all",), *, batches: Iterable[int] = (1,), backend: str = "onnxruntime",
              provider: str = "cpu", threads: int | None = None, qdq: bool = False, warmup: int = 10,
              iterations: int | None = None, duration: float | None = None, write_report: bool = True,
              trust_engine_host_code: bool = False, progress: Progress = None) -> BenchmarkResult:
    """Latency (p50/p90/p99, mean) and throughput of each artifact per batch size, through the
    same runners verify uses; merged into report.json unless ``write_report`` is False."""
    from runtime import console
    from runtime.benchmark import BenchConfig, run_benchmarks
    from runtime.report.summary import check_writable, load_report, save_after_work, write_benchmarks

    b = _bundle(bundle)
    if isinstance(batches, int):
        batches = (batches,)
    config = BenchConfig(precisions=_precisions(precisions), batches=tuple(dict.fromkeys(batches)),
                         target=Target(backend=backend, provider=provider, threads=threads, qdq=qdq,
                                       trust_engine_host_code=trust_engine_host_code),
                         warmup=warmup, iterations=iterations, duration=duration)
    with progress_to(progress):
        if write_report:
            load_report(b)  # a report.json edgeport cannot read is refused before the long part
            check_writable(b, "bench")  # so is a folder the report cannot be written into
        run = run_benchmarks(b, config, log=console.log, warn=console.warn)
        if write_report:
            run.report_error = save_after_work(b, lambda: write_benchmarks(b, run, log=console.log), console.warn)
    return run


# -- predict -----------------------------------------------------------------------------------------
@speaks_api(None, {"--qdq": "True", "--trust-engine-host-code": "True"})
def predict(bundle, images: Sequence[str | Path], precision: str = "fp32", *, backend: str = "onnxruntime",
            provider: str = "cpu", threads: int | None = None, qdq: bool = False, topk: int = 5,
            trust_engine_host_code: bool = False) -> list[Prediction]:
    """Top-k classes and softmax probabilities for each image (the bundle's preprocessing)."""
    from runtime.predict import PredictConfig
    from runtime.predict import predict as run_predict

    b = _bundle(bundle)
    target = Target(backend=backend, provider=provider, threads=threads, qdq=qdq,
                    trust_engine_host_code=trust_engine_host_code)
    config = PredictConfig(precision=precision, target=target, topk=topk)
    return run_predict(b, list(images), config)


# -- build -------------------------------------------------------------------------------------------
@speaks_api({**_PRECISIONS, "--workspace": "workspace_mib", "--compute-capability": "compute_capabilities"})
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
@speaks_api()
def sign(bundle, private_key) -> Path:
    """Write ``bundle.sig`` (OpenSSF model-signing, elliptic-curve key) covering every file of
    the bundle except what the device writes later; returns the signature's path. Devices read
    signed bundles with ``Bundle.open(path, trusted_keys=[public_pem])`` or ``--trusted-key``."""
    from runtime.signing import sign_bundle

    return sign_bundle(bundle.root if isinstance(bundle, Bundle) else bundle, private_key)
