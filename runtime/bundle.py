"""Reading and checking a bundle written by ``edgeport export``.

A bundle is a folder::

    manifest.json      what the model is, how to feed it, and every artifact's sha256
    model.onnx         FP32 graph, dynamic batch
    model.fp16.onnx    FP16 graph, FP32 inputs and outputs (optional)
    model.int8.onnx    Q/DQ INT8 graph (optional)
    golden.npz         held-out images (resized, cropped, uint8) + PyTorch FP32 outputs
    report.json/.md    written by verify

Every file is checked against its recorded sha256 before it is loaded, so a truncated or
tampered artifact is refused instead of being run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from .errors import BundleError
from .preprocess import Preprocessing

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
GOLDEN = "golden.npz"
PRECISIONS = ("fp32", "fp16", "int8")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Golden:
    """The reference set: uint8 crops, their names, and PyTorch FP32 outputs."""

    images: np.ndarray  # N x H x W x 3 uint8 (after resize and crop)
    outputs: np.ndarray  # N x C float32
    names: list[str]

    def inputs(self, pre: Preprocessing) -> np.ndarray:
        from .preprocess import normalize

        return normalize(self.images, pre)


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


class Bundle:
    """A bundle folder with a validated manifest."""

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "Bundle":
        root = Path(path)
        rebuild = "Re-export it with `edgeport export`."
        if not root.exists():
            raise BundleError(f"Bundle '{root}' does not exist.", hint="Pass the folder that `edgeport export` wrote (e.g. exports/resnet18).")
        if not root.is_dir():
            raise BundleError(
                f"Bundle path '{root}' is a file, not a bundle folder.",
                hint="Pass the folder that contains manifest.json.",
            )
        mpath = root / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"'{root}' has no {MANIFEST}, so it is not an edgeport bundle (or it is incomplete).", hint=rebuild)
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{mpath} is not valid JSON ({exc}).", hint=rebuild) from exc
        if not isinstance(manifest, dict):
            raise BundleError(f"{mpath} does not hold a JSON object.", hint=rebuild)
        version = manifest.get("schema_version")
        if not isinstance(version, int):
            raise BundleError(f"{mpath} has no integer schema_version.", hint=rebuild)
        if version > SCHEMA_VERSION:
            raise BundleError(
                f"Bundle '{root}' uses manifest schema version {version}, but this edgeport reads "
                f"versions up to {SCHEMA_VERSION}.",
                hint="Upgrade edgeport on this machine (pip install -U edgeport), or export with the same version.",
            )
        for key in ("model", "input", "output", "preprocessing", "artifacts"):
            if key not in manifest:
                raise BundleError(f"{mpath} lacks the '{key}' section.", hint=rebuild)
        return cls(root, manifest)

    # -- properties ----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def input_name(self) -> str:
        return self.manifest["input"]["name"]

    @property
    def output_name(self) -> str:
        return self.manifest["output"]["name"]

    @property
    def max_batch(self) -> int:
        return int(self.manifest["input"].get("max_batch", 1))

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest["model"].get("class_names")

    @property
    def precisions(self) -> list[str]:
        arts = self.manifest["artifacts"]
        return [p for p in arts if isinstance(arts[p], dict) and "file" in arts[p]]

    @property
    def artifact_files(self) -> dict[str, str]:
        """{precision: file name} of every artifact the manifest lists (not checked: see artifact_path)."""
        arts = self.manifest["artifacts"]
        return {p: str(arts[p]["file"]) for p in self.precisions}

    @property
    def opset(self) -> int | None:
        """The ONNX opset of the exported graphs."""
        value = self.manifest.get("opset")
        return value if isinstance(value, int) else None

    @property
    def batch_range(self) -> tuple[int, int]:
        """(smallest, largest) batch of the dynamic-batch graphs."""
        return int(self.manifest["input"].get("min_batch", 1)), self.max_batch

    @property
    def export_versions(self) -> dict[str, str]:
        """Library versions at export time (python, torch, onnx, onnxruntime, ...)."""
        versions = self.manifest.get("versions")
        return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}

    def calibration(self, precision: str = "int8") -> CalibrationInfo | None:
        """How the ``int8`` (TensorRT Q/DQ) or ``int8-cpu`` artifact was calibrated; None without it."""
        section = self.manifest.get({"int8": "int8", "int8-cpu": "int8_cpu"}.get(precision, ""))
        if precision not in self.precisions or not isinstance(section, dict):
            return None
        source = section.get("calibration_source") if isinstance(section.get("calibration_source"), dict) else {}
        return CalibrationInfo(method=section.get("method"), samples=section.get("samples"),
                               source=source.get("path"), kind=source.get("kind"),
                               skipped=int(source.get("skipped") or 0), calibrated=section.get("calibrated"),
                               seconds=section.get("calibration_seconds", section.get("calibrate_quantize_seconds")))

    # -- files -----------------------------------------------------------------------
    def _checked(self, entry: dict, what: str) -> Path:
        rel = entry.get("file")
        if not isinstance(rel, str) or "/" in rel or "\\" in rel or rel.startswith("."):
            raise BundleError(f"The manifest names an invalid file for {what}: {rel!r}.")
        path = self.root / rel
        if not path.is_file():
            raise BundleError(
                f"Bundle '{self.root}' is missing {rel} ({what}).",
                hint="Copy the whole bundle folder, or re-export it with `edgeport export`.",
            )
        expected = entry.get("sha256")
        if expected:
            actual = sha256_file(path)
            if actual != expected:
                raise BundleError(
                    f"{path} does not match the sha256 recorded in the manifest "
                    f"(expected {expected[:16]}..., found {actual[:16]}...): the file is truncated, "
                    "corrupted or was modified, so it is refused before loading.",
                    hint="Copy the bundle again or re-export it.",
                )
        return path

    def artifact_path(self, precision: str) -> Path:
        """The checked path of one precision's ONNX artifact."""
        arts = self.manifest["artifacts"]
        if precision not in arts:
            raise BundleError(
                f"Bundle '{self.root}' has no {precision} artifact; it has: {', '.join(self.precisions) or 'none'}.",
                hint=f"Export with the matching option (e.g. --{precision}) to add it.",
            )
        return self._checked(arts[precision], f"the {precision} artifact")

    def golden(self) -> Golden:
        entry = self.manifest.get("golden")
        if not entry:
            raise BundleError(f"Bundle '{self.root}' has no golden set.", hint="Re-export it with `edgeport export`.")
        path = self._checked(entry, "the golden set")
        try:
            with np.load(path, allow_pickle=False) as z:
                images = z["images"]
                outputs = z["outputs"]
                names = [str(n) for n in z["names"]]
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{path} is not a readable golden set ({exc}).", hint="Re-export the bundle.") from exc
        return Golden(images=images, outputs=outputs.astype(np.float32), names=names)

    def report_path(self, suffix: str) -> Path:
        return self.root / f"report.{suffix}"
