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
from typing import BinaryIO

import numpy as np

from runtime.bundle_check import check_golden, check_golden_values, check_manifest, golden_key
from runtime.errors import BundleError, BundleUsageError
from runtime.fsutil import open_regular, sha256_file, sha256_fileobj
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


MAX_MANIFEST_BYTES = 16 << 20  # a manifest is a few kB; a larger one is not one edgeport wrote
_REEXPORT = "Re-export it with `edgeport export`."


def _check_folder(root: Path) -> None:
    """The path is a bundle folder with a manifest (the message says what was passed instead)."""
    if not root.exists():
        raise BundleUsageError(f"Bundle '{root}' does not exist.",
                          hint="Pass the folder that `edgeport export` wrote (e.g. exports/resnet18).")
    if not root.is_dir():
        raise BundleUsageError(f"Bundle path '{root}' is a file, not a bundle folder.",
                          hint="Pass the folder that contains manifest.json.")
    if not (root / MANIFEST).exists() and not (root / MANIFEST).is_symlink():
        inner = sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}"))
        if inner:
            raise BundleUsageError(f"'{root}' is not a bundle but holds {len(inner)}: {', '.join(inner[:8])}.",
                              hint=f"Pass one of them, e.g. {root / inner[0]}.")
        raise BundleError(f"'{root}' has no {MANIFEST}, so it is not an edgeport bundle (or it is incomplete).",
                          hint=_REEXPORT)


def _read_manifest(root: Path) -> Manifest:
    """manifest.json parsed, its digest checked (a missing one is refused), every value checked."""
    mpath = root / MANIFEST
    with open_regular(mpath) as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{mpath} is larger than {MAX_MANIFEST_BYTES >> 20} MiB, so it is not a manifest "
                          "edgeport wrote.", hint=_REEXPORT)
    try:
        manifest = Manifest.parse(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON ({exc}).", hint=_REEXPORT) from exc
    except BundleError as exc:
        raise BundleError(f"Bundle '{root}': {exc}", hint=exc.hint or _REEXPORT) from exc
    if manifest.digest is None:
        raise BundleError(f"Bundle '{root}': manifest.json carries no digest, so nothing shows it is the manifest "
                          "the export wrote (every export records one).", hint=_REEXPORT)
    if manifest.digest != manifest.content_digest():
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
    return manifest


def _refuse_external_data(f: BinaryIO, precision: str) -> None:
    """Refuse an ONNX file whose tensors load from other files (scanned on the checked descriptor)."""
    import mmap

    from runtime.graph.external import MalformedGraph, external_tensors

    try:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            names = external_tensors(data)
    except (MalformedGraph, ValueError, OSError) as exc:
        raise BundleError(f"{f.name} ({precision}) is not a readable ONNX file ({exc}).",
                          hint="Re-export the bundle.") from exc
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise BundleError(f"{f.name} ({precision}) loads {len(names)} tensor(s) from external data files ({shown}), "
                          "which no sha256 in the manifest covers; edgeport reads only self-contained ONNX graphs, "
                          "so it is refused before loading.", hint="Re-export the bundle with `edgeport export`.")


class Bundle:
    """A bundle folder with a validated, typed manifest (runtime/manifest.py)."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = Path(root)
        self.manifest = manifest

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, trusted_keys=None) -> "Bundle":
        """Open and validate the bundle at ``path`` (raises BundleError with what to do).

        ``trusted_keys`` (public PEM paths): the bundle's ``bundle.sig`` must verify with one of
        them, checked before anything in the bundle is parsed or loaded (runtime/signing.py).
        None: the keys of an enclosing ``runtime.signing.trusting()`` block (the CLI's
        ``--trusted-key``), else ``$EDGEPORT_TRUSTED_KEYS``; an empty list: no signature check."""
        from runtime.signing import check_signature

        root = Path(path)
        _check_folder(root)
        check_signature(root, trusted_keys)
        return cls(root, _read_manifest(root))

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
        from runtime.precision import PRECISIONS

        row = PRECISIONS.get(precision)
        section = getattr(self.manifest, row.section) if row is not None and row.section else None
        if precision not in self.precisions or section is None:
            return None
        source = section.calibration_source
        extra = section.extra
        return CalibrationInfo(method=section.method, samples=section.samples,
                               source=source.path if source else None, kind=source.kind if source else None,
                               skipped=int(source.skipped or 0) if source else 0, calibrated=extra.get("calibrated"),
                               seconds=extra.get("calibration_seconds", extra.get("calibrate_quantize_seconds")),
                               shared_with=row.cpu_variant_of if "ranges" in extra else None)

    # -- files -----------------------------------------------------------------------
    def checked_file(self, entry: FileEntry, what: str) -> Path:
        """The path of a file the manifest records, after checking its name, kind and sha256."""
        with self.open_checked(entry, what) as f:
            return Path(f.name)

    def open_checked(self, entry: FileEntry, what: str) -> BinaryIO:
        """A file the manifest records, opened as a regular file inside the bundle (no link:
        runtime/fsutil.open_regular) and positioned at its start after its sha256 was checked on
        the same descriptor, so what a caller reads from it is what was checked. ``f.name`` is its path."""
        rel = entry.file
        if not isinstance(rel, str) or "/" in rel or "\\" in rel or rel.startswith("."):
            raise BundleError(f"The manifest names an invalid file for {what}: {rel!r}.")
        path = self.root / rel
        if not path.exists() and not path.is_symlink():
            raise BundleError(
                f"Bundle '{self.root}' is missing {rel} ({what}).",
                hint="Copy the whole bundle folder, or re-export it with `edgeport export`.",
            )
        if not entry.sha256:  # the reader requires one for every file it lists; never load unchecked bytes
            raise BundleError(f"The manifest records no sha256 for {rel} ({what}), so it is refused before loading.",
                              hint="Re-export the bundle.")
        f = open_regular(path)
        actual = sha256_fileobj(f)
        if actual != entry.sha256:
            f.close()
            raise BundleError(
                f"{path} does not match the sha256 recorded in the manifest "
                f"(expected {entry.sha256[:16]}..., found {actual[:16]}...): the file is truncated, "
                "corrupted or was modified, so it is refused before loading.",
                hint="Copy the bundle again or re-export it.",
            )
        f.seek(0)
        return f

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
        """The checked path of one precision's ONNX artifact: sha256, and no tensor loaded from
        another file (ONNX external data, which no sha256 covers)."""
        with self.open_checked(self.artifact(precision), f"the {precision} artifact") as f:
            _refuse_external_data(f, precision)
            return Path(f.name)

    def golden(self) -> Golden:
        entry = self.manifest.golden
        if entry is None:
            raise BundleError(f"Bundle '{self.root}' has no golden set.", hint="Re-export it with `edgeport export`.")
        with self.open_checked(entry, "the golden set") as f:
            path = Path(f.name)
            keys = check_golden(self.manifest, path, f)  # the array headers, before anything is decompressed
            f.seek(0)
            try:
                with np.load(f, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in keys}
            except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise BundleError(f"{path} is not a readable golden set ({exc}).",
                                  hint="Re-export the bundle.") from exc
        check_golden_values(arrays, path)
        outputs = [arrays[golden_key(i)] for i in range(len(self.outputs))]
        return Golden(images=arrays.get("images"), outputs=outputs[0], names=[str(n) for n in arrays["names"]],
                      arrays=arrays.get("inputs"),
                      other_outputs={o.name: v for o, v in zip(self.outputs[1:], outputs[1:])})

    def runner(self, precision: str = "fp32", *, backend: str = "onnxruntime", provider: str = "cpu",
               threads: int | None = None, qdq: bool = False, trust_engine_host_code: bool = False):
        """A runner (a context manager) for one artifact: ``infer(array)`` -> {output name: array}.

        ``precision``: fp32, fp16, int8 (the INT8 graph that suits the target: model.int8-cpu.onnx
        on ONNX Runtime CPU unless ``qdq``), int8-cpu. ``backend``: onnxruntime or tensorrt.
        ``trust_engine_host_code``: load a version-compatible engine (its host code runs here).
        """
        from runtime.runners import Target, open_runner

        return open_runner(self, precision, Target(backend=backend, provider=provider, threads=threads, qdq=qdq,
                                                   trust_engine_host_code=trust_engine_host_code))

    def report_path(self, suffix: str) -> Path:
        return self.root / f"report.{suffix}"
