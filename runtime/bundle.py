"""Reading and checking a bundle written by ``edgeport export``.

A bundle is a folder::

    manifest.json      what the model is, how to feed it, and every artifact's sha256
    model.onnx         FP32 graph, dynamic batch
    model.fp16.onnx    FP16 graph, FP32 inputs and outputs (optional)
    model.int8.onnx    Q/DQ INT8 graph (optional)
    golden.npz         held-out images (resized, cropped, uint8) + the reference outputs (every output)
    report.json/.md    written by verify

Every file is checked against its recorded sha256 before it is loaded, so a truncated or
tampered artifact is refused instead of being run.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from runtime.bundle_check import check_golden, check_golden_values, check_manifest, golden_key
from runtime.errors import BundleError
from runtime.fsutil import sha256_file
from runtime.manifest import MANIFEST, SCHEMA_VERSION, FileEntry, InputSpec, Manifest, OutputSpec
from runtime.preprocess import Preprocessing

__all__ = ["Bundle", "Golden", "MANIFEST", "GOLDEN", "SCHEMA_VERSION", "golden_key", "sha256_file"]

GOLDEN = "golden.npz"
# Below this many calibration samples export warns and the reports say so (NVIDIA's guidance
# for post-training quantization of CNNs is at least 500 representative images).
FEW_CALIBRATION_SAMPLES = 100


@dataclasses.dataclass(frozen=True)
class Golden:
    """The reference set: uint8 crops (or preprocessed arrays), their names, and the reference
    outputs (PyTorch FP32, or ONNX Runtime FP32 of a given ONNX model: ``Manifest.reference``).

    ``outputs`` is the classifier output; ``other_outputs`` maps the name of every further
    model output to its reference values (manifest order)."""

    images: np.ndarray | None  # N x H x W x C uint8 (after resize and crop); None: arrays given at export
    outputs: np.ndarray  # N x classes float32
    names: list[str]
    other_outputs: dict = dataclasses.field(default_factory=dict)
    arrays: np.ndarray | None = None  # N x C x H x W float32, already preprocessed (--golden-data FILE.npy)

    def inputs(self, pre: Preprocessing) -> np.ndarray:
        if self.arrays is not None:
            return np.ascontiguousarray(self.arrays, dtype=np.float32)
        from runtime.preprocess import normalize

        return normalize(self.images, pre)

    def reference(self, position: int) -> np.ndarray:
        """The reference of the manifest's output at ``position`` (0 = the classifier)."""
        if position == 0:
            return self.outputs
        return list(self.other_outputs.values())[position - 1]


def reference_label(reference: str | None) -> str:
    """How reports name the reference outputs of golden.npz."""
    return "ONNX Runtime FP32 of the given model" if reference == "onnx" else "PyTorch FP32"


@dataclasses.dataclass(frozen=True)
class CalibrationInfo:
    """How an INT8 artifact was calibrated (the manifest's ``int8`` / ``int8_cpu`` section)."""

    method: str | None
    samples: int | None  # images (or tensors) the ranges were measured on
    source: str | None  # the folder or array file, as given at export
    kind: str | None  # "folder" or "array"
    skipped: int = 0  # unreadable files
    calibrated: bool | None = None  # False: ranges reused from the calibration cache
    seconds: float | None = None
    shared_with: str | None = None  # int8-cpu: the ranges are those of this artifact's calibration pass

    @property
    def few(self) -> bool:
        """Fewer samples than FEW_CALIBRATION_SAMPLES: the ranges may miss real inputs."""
        return isinstance(self.samples, int) and self.samples < FEW_CALIBRATION_SAMPLES

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "few": self.few, "recommended_min": FEW_CALIBRATION_SAMPLES}


class Bundle:
    """A bundle folder with a validated, typed manifest (runtime/manifest.py)."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = Path(root)
        self.manifest = manifest

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "Bundle":
        """Open and validate the bundle at ``path`` (raises BundleError with what to do)."""
        root = Path(path)
        rebuild = "Re-export it with `edgeport export`."
        if not root.exists():
            raise BundleError(f"Bundle '{root}' does not exist.",
                              hint="Pass the folder that `edgeport export` wrote (e.g. exports/resnet18).")
        if not root.is_dir():
            raise BundleError(f"Bundle path '{root}' is a file, not a bundle folder.",
                              hint="Pass the folder that contains manifest.json.")
        mpath = root / MANIFEST
        if not mpath.is_file():
            inner = sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}"))
            if inner:
                raise BundleError(f"'{root}' is not a bundle but holds {len(inner)}: {', '.join(inner[:8])}.",
                                  hint=f"Pass one of them, e.g. {root / inner[0]}.")
            raise BundleError(f"'{root}' has no {MANIFEST}, so it is not an edgeport bundle (or it is incomplete).",
                              hint=rebuild)
        try:
            data = json.loads(mpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{mpath} is not valid JSON ({exc}).", hint=rebuild) from exc
        try:
            manifest = Manifest.parse(data)
        except BundleError as exc:
            raise BundleError(f"Bundle '{root}': {exc}", hint=exc.hint or rebuild) from exc
        if manifest.digest is not None and manifest.digest != manifest.content_digest():
            raise BundleError(
                f"Bundle '{root}': manifest.json was edited after export (its content no longer matches the "
                "digest the export recorded), so its preprocessing, names, batch range and sha256 values cannot "
                "be trusted; the artifacts themselves were not examined.",
                hint="Restore the original manifest.json or re-export the bundle; to change class names, "
                     "re-export with --class-names FILE.")
        try:
            check_manifest(manifest)
        except BundleError as exc:
            raise BundleError(f"Bundle '{root}': {exc}", hint=exc.hint) from exc
        return cls(root, manifest)

    # -- properties ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest.model.name

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest.preprocessing)

    @property
    def input(self) -> InputSpec:
        return self.manifest.input

    @property
    def input_name(self) -> str:
        return self.manifest.input.name

    @property
    def outputs(self) -> list[OutputSpec]:
        return self.manifest.outputs

    @property
    def reference_label(self) -> str:
        """The reference as reports name it."""
        return reference_label(self.manifest.reference)

    @property
    def output_name(self) -> str:
        """The classifier output (the first output)."""
        return self.manifest.output.name

    @property
    def min_batch(self) -> int:
        return int(self.manifest.input.min_batch)

    @property
    def max_batch(self) -> int:
        return int(self.manifest.input.max_batch)

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest.model.class_names

    @property
    def random_init(self) -> bool:
        return bool(self.manifest.weights.random_init)

    @property
    def precisions(self) -> list[str]:
        return list(self.manifest.artifacts)

    @property
    def artifact_files(self) -> dict[str, str]:
        """{precision: file name} of every artifact the manifest lists (not checked: see artifact_path)."""
        return {p: entry.file for p, entry in self.manifest.artifacts.items()}

    def calibration(self, precision: str = "int8") -> CalibrationInfo | None:
        """How the ``int8`` (TensorRT Q/DQ) or ``int8-cpu`` artifact was calibrated; None without it."""
        section = {"int8": self.manifest.int8, "int8-cpu": self.manifest.int8_cpu}.get(precision)
        if precision not in self.precisions or section is None:
            return None
        source = section.calibration_source
        extra = section.extra
        return CalibrationInfo(method=section.method, samples=section.samples,
                               source=source.path if source else None, kind=source.kind if source else None,
                               skipped=int(source.skipped or 0) if source else 0, calibrated=extra.get("calibrated"),
                               seconds=extra.get("calibration_seconds", extra.get("calibrate_quantize_seconds")),
                               shared_with="int8" if precision == "int8-cpu" and "ranges" in extra else None)

    # -- files -----------------------------------------------------------------------
    def checked_file(self, entry: FileEntry, what: str) -> Path:
        """The path of a file the manifest records, after checking its name and sha256."""
        rel = entry.file
        if not isinstance(rel, str) or "/" in rel or "\\" in rel or rel.startswith("."):
            raise BundleError(f"The manifest names an invalid file for {what}: {rel!r}.")
        path = self.root / rel
        if not path.is_file():
            raise BundleError(
                f"Bundle '{self.root}' is missing {rel} ({what}).",
                hint="Copy the whole bundle folder, or re-export it with `edgeport export`.",
            )
        if entry.sha256:
            actual = sha256_file(path)
            if actual != entry.sha256:
                raise BundleError(
                    f"{path} does not match the sha256 recorded in the manifest "
                    f"(expected {entry.sha256[:16]}..., found {actual[:16]}...): the file is truncated, "
                    "corrupted or was modified, so it is refused before loading.",
                    hint="Copy the bundle again or re-export it.",
                )
        return path

    def artifact(self, precision: str) -> FileEntry:
        """The manifest entry of one precision's artifact (BundleError when absent)."""
        entry = self.manifest.artifacts.get(precision)
        if entry is None:
            raise BundleError(
                f"Bundle '{self.root}' has no {precision} artifact; it has: {', '.join(self.precisions) or 'none'}.",
                hint="Re-export with the same options plus the one that adds it (--fp16, or --int8 for both INT8 "
                     "graphs): the artifacts that do not change come out byte-identical and keep their engines and "
                     "benchmark results.",
            )
        return entry

    def artifact_path(self, precision: str) -> Path:
        """The checked path of one precision's ONNX artifact."""
        return self.checked_file(self.artifact(precision), f"the {precision} artifact")

    def golden(self) -> Golden:
        entry = self.manifest.golden
        if entry is None:
            raise BundleError(f"Bundle '{self.root}' has no golden set.", hint="Re-export it with `edgeport export`.")
        path = self.checked_file(entry, "the golden set")
        keys = check_golden(self.manifest, path)  # the array headers, before anything is decompressed
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in keys}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{path} is not a readable golden set ({exc}).", hint="Re-export the bundle.") from exc
        check_golden_values(arrays, path)
        outputs = [arrays[golden_key(i)] for i in range(len(self.outputs))]
        return Golden(images=arrays.get("images"), outputs=outputs[0], names=[str(n) for n in arrays["names"]],
                      arrays=arrays.get("inputs"),
                      other_outputs={o.name: v for o, v in zip(self.outputs[1:], outputs[1:])})

    def runner(self, precision: str = "fp32", *, backend: str = "onnxruntime", provider: str = "cpu",
               threads: int | None = None, qdq: bool = False):
        """A runner (a context manager) for one artifact: ``infer(array)`` -> {output name: array}.

        ``precision``: fp32, fp16, int8 (the INT8 graph that suits the target: model.int8-cpu.onnx
        on ONNX Runtime CPU unless ``qdq``), int8-cpu. ``backend``: onnxruntime or tensorrt.
        """
        from runtime.runners import Target, open_runner

        return open_runner(self, precision, Target(backend=backend, provider=provider, threads=threads, qdq=qdq))

    def report_path(self, suffix: str) -> Path:
        return self.root / f"report.{suffix}"
