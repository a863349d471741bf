"""Labeled accuracy: top-1 / top-5 of every artifact on a folder of labeled images.

Two layouts, as people keep their validation sets:

- ImageFolder: ``DIR/<class>/*.jpg``, one sub-folder per class;
- flat: ``DIR/*.jpg`` plus ``--labels FILE`` with ``file,label`` lines (ImageNet-val style;
  ``file label`` separated by whitespace works too; a ``file,label`` header is skipped).

Labels become class indexes by the manifest's class names when it has them (folder or
label == class name), else by integer labels, else by sorted folder / label names (the
torchvision ImageFolder convention, only when they cover every class of the model).

The reference is the bundle's FP32 ONNX graph (model.onnx) on ONNX Runtime CPU: the device
has no torch, and that graph is the one the golden check ties to PyTorch. It is labeled as
such in every report. Images are streamed in chunks, so a 50,000-image set never sits in
memory at once; every artifact sees exactly the same images.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Callable

import numpy as np

from runtime.bundle import Bundle
from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import IMAGE_EXTENSIONS, list_images, load_folder, normalize
from runtime.runners import Target, open_runner, resolve, select_precisions

REFERENCE_BACKEND = ("onnxruntime", "cpu")
CHUNK = 64  # images decoded at a time (memory bound: CHUNK x channels x height x width floats)


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored; duplicates refused)."""
    p = Path(path)
    if not p.is_file():  # a path the user typed: exit 2 (unreadable content stays 3)
        raise UsageError(f"The class-names file '{p}' does not exist." if not p.exists() else
                         f"The class-names path '{p}' is a folder, not a text file.",
                         hint="Pass a UTF-8 text file with one class name per line.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeportError(f"Cannot read the class-names file '{p}' ({exc}).",
                            hint="Pass a UTF-8 text file with one class name per line.") from exc
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise EdgeportError(f"The class-names file '{p}' has no names.", hint="Write one class name per line.")
    seen, dups = set(), []
    for n in names:
        if n in seen:
            dups.append(n)
        seen.add(n)
    if dups:
        raise EdgeportError(f"The class-names file '{p}' repeats {len(dups)} name(s): {', '.join(dups[:5])}.",
                            hint="Each line must name a different class (line N = class index N-1).")
    return names


def _norm(name: str) -> str:
    """Folder names cannot hold every character a class name has: compare loosely."""
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


@dataclasses.dataclass(frozen=True)
class LabeledSet:
    """Image files with their class indexes, and how the labels were mapped."""

    root: Path
    files: list[Path]
    labels: np.ndarray  # int64 class indexes, one per file
    layout: str  # "imagefolder" | "labels file <path>"
    label_source: str  # "manifest class names" | "integer labels" | "sorted names"
    classes_present: int


def _map_labels(raw: list[str], class_names: list[str] | None, num_classes: int, what: str) -> tuple[dict, str]:
    """Map distinct raw label strings to class indexes; returns (mapping, how).

    Each label is a class name of the manifest (exact, then ignoring case, ``_`` and ``-``)
    or an integer class index; only when neither applies to any label are sorted names used.
    """
    distinct = sorted(set(raw))
    mapping, how = {}, set()
    exact = {n: i for i, n in enumerate(class_names or [])}
    loose: dict[str, int] = {}
    for i, n in enumerate(class_names or []):
        loose.setdefault(_norm(n), i)
    for label in distinct:
        if label in exact:
            mapping[label], _ = exact[label], how.add("manifest class names")
        elif _norm(label) in loose:
            mapping[label], _ = loose[_norm(label)], how.add("manifest class names")
        elif label.lstrip("-").isdigit():
            mapping[label], _ = int(label), how.add("integer labels")
    if mapping:
        bad = sorted((d for d, i in mapping.items() if not 0 <= i < num_classes), key=len)
        if bad:
            raise EdgeportError(f"Integer labels {', '.join(bad[:8])} are outside the model's classes 0..{num_classes - 1}.",
                                hint="Labels must be class indexes (or class names) of this model.")
        unknown = [d for d in distinct if d not in mapping]
        if unknown:
            example = f" (e.g. {', '.join(class_names[:5])})" if class_names else ""
            raise EdgeportError(
                f"{len(unknown)} of the {len(distinct)} {what} are neither class names of this model nor class "
                f"indexes: {', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}.",
                hint=f"Use the manifest's class names{example} or integer class indexes.")
        return mapping, " and ".join(sorted(how))
    if len(distinct) != num_classes:
        raise EdgeportError(
            f"Cannot map {len(distinct)} {what} ({', '.join(distinct[:5])}{' ...' if len(distinct) > 5 else ''}) "
            f"to the model's {num_classes} classes: "
            + ("none of them is a class name of this model" if class_names else "the bundle has no class names")
            + ", and mapping sorted names to indexes is only right when every class is present.",
            hint="Name folders/labels by integer class index, or export with --class-names FILE.")
    return {d: i for i, d in enumerate(distinct)}, "sorted names"


def load_labeled_set(data: str | Path, labels_file: str | Path | None, *, class_names: list[str] | None,
                     num_classes: int, limit: int | None = None) -> LabeledSet:
    """Find the images and their class indexes (no pixels are decoded here)."""
    root = Path(data)
    if not root.is_dir():
        raise UsageError(f"--labeled-data '{root}' is not a folder.",
                         hint="Pass an ImageFolder tree (one sub-folder per class) or a flat folder with --labels FILE.")
    if labels_file is not None:
        files, raw = _read_labels_file(root, Path(labels_file))
        layout = f"labels file {labels_file}"
        what = "labels"
    else:
        files, raw = [], []
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        for d in subdirs:
            imgs = list_images(d)
            files += imgs
            raw += [d.name] * len(imgs)
        if not files:
            loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if loose:
                raise UsageError(f"--labeled-data '{root}' holds {len(loose)} images but no class sub-folders.",
                                 hint="Add --labels FILE with `file,label` lines, or sort the images into one "
                                      "sub-folder per class.")
            raise EdgeportError(f"--labeled-data '{root}' contains no images in class sub-folders.",
                                hint="Expected DIR/<class>/<image>.jpg.")
        layout = "imagefolder"
        what = "class folders"
    mapping, how = _map_labels(raw, class_names, num_classes, what)
    labels = np.array([mapping[r] for r in raw], dtype=np.int64)
    if limit is not None and limit < len(files):
        # Spread the subset over the whole (class-sorted) list, so every class keeps its share.
        pick = np.unique(np.linspace(0, len(files) - 1, limit).round().astype(int))
        files = [files[i] for i in pick]
        labels = labels[pick]
    return LabeledSet(root=root, files=files, labels=labels, layout=layout, label_source=how,
                      classes_present=int(len(np.unique(labels))))


def _read_labels_file(root: Path, path: Path) -> tuple[list[Path], list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeportError(f"Cannot read the labels file '{path}' ({exc}).",
                            hint="Pass a text file with `file,label` lines.") from exc
    files, raw, missing = [], [], []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:
            row = next(csv.reader([line]))
            parts = [row[0].strip(), ",".join(row[1:]).strip()] if len(row) >= 2 else row
        else:
            parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise EdgeportError(f"{path}:{n} is not a `file,label` line: {line!r}.",
                                hint="Write one `file,label` pair per line (label: class name or index).")
        name, label = parts
        if n == 1 and name.lower() in ("file", "filename", "image", "path") and not (root / name).exists():
            continue  # a header line
        f = root / name
        if not f.is_file():
            missing.append(name)
            continue
        files.append(f)
        raw.append(label)
    if missing:
        raise EdgeportError(f"{len(missing)} image(s) named in {path} are not in '{root}': "
                            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}.",
                            hint="File names in the labels file are relative to the --labeled-data folder.")
    if not files:
        raise EdgeportError(f"The labels file '{path}' lists no images.", hint="Write `file,label` lines.")
    return files, raw


@dataclasses.dataclass(frozen=True)
class AccuracyRow:
    """Top-1/top-5 of one artifact, and its drop from the reference in percentage points."""

    backend: str
    provider: str
    precision: str
    samples: int
    top1: float
    top5: float
    top1_drop_points: float
    top5_drop_points: float
    agreement_with_reference: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.backend, self.provider, self.precision)


@dataclasses.dataclass(frozen=True)
class AccuracyReference:
    """What the drops are measured from: model.onnx FP32 on ONNX Runtime CPU."""

    label: str
    precision: str
    backend: str
    provider: str
    description: str
    top1: float
    top5: float


@dataclasses.dataclass
class LabeledAccuracy:
    """``evaluate_accuracy``'s result, and report.json's ``accuracy`` section."""

    data: str
    layout: str
    label_source: str
    samples: int
    classes_present: int
    skipped: int
    skipped_examples: list[str]
    reference: AccuracyReference
    results: list[AccuracyRow]
    evaluated_at: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LabeledAccuracy":
        """The section as report.json holds it, every field checked (runtime/report/typed.py)."""
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))

    def carry_over(self, changes, notes) -> "LabeledAccuracy | None":
        """Kept by a re-export while its reference (model.onnx) is byte-identical: the rows whose
        artifact (or engine) is too."""
        if not changes.same("fp32"):
            notes.dropped.append("labeled accuracy (its FP32 reference, model.onnx, changed)")
            return None
        rows = notes.filter(self.results, lambda r: changes.row_valid(r.precision, r.backend, None, golden=False),
                            "labeled-accuracy result")
        return dataclasses.replace(self, results=rows)


@dataclasses.dataclass(frozen=True)
class AccuracyConfig:
    precisions: tuple[str, ...] = ("all",)
    target: Target = Target()
    batch: int | None = None


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    part = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(logits, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


class _Tally:
    def __init__(self):
        self.top1 = self.top5 = self.n = 0
        self.agree = 0

    def add(self, top: np.ndarray, labels: np.ndarray, ref_top1: np.ndarray | None = None):
        self.n += len(labels)
        self.top1 += int((top[:, 0] == labels).sum())
        self.top5 += int((top == labels[:, None]).any(axis=1).sum())
        if ref_top1 is not None:
            self.agree += int((top[:, 0] == ref_top1).sum())


def evaluate_accuracy(bundle: Bundle, dataset: LabeledSet, config: AccuracyConfig,
                      log: Callable[[str], None] = lambda s: None) -> LabeledAccuracy:
    """Top-1/top-5 of the reference (FP32 ONNX on ONNX Runtime CPU) and of every selected
    artifact on ``config.backend``/``provider``."""
    from runtime.verify import default_batch

    target = config.target
    precisions = select_precisions(bundle, config.precisions, target)
    batch = default_batch(bundle, config.batch)
    ref_key = (*REFERENCE_BACKEND, "fp32")
    runners, keys = {}, []
    try:
        runners, keys = _open_runners(bundle, precisions, target, ref_key, log)
        log(f"labeled accuracy: {len(dataset.files)} images from {dataset.root}, reference model.onnx (FP32) "
            f"on onnxruntime/cpu, artifacts {', '.join(precisions)} on {target.label}")
        tallies, skipped = _tally(bundle, dataset, runners, ref_key, batch)
    finally:
        for r in runners.values():
            r.close()
    ref = tallies[ref_key]
    if ref.n == 0:
        raise EdgeportError(f"None of the {len(dataset.files)} images in '{dataset.root}' could be read.",
                            hint=f"First problem: {skipped[0][0]}: {skipped[0][1]}" if skipped else None)
    return _accuracy(dataset, tallies, keys, ref_key, skipped)


def _accuracy(dataset: LabeledSet, tallies: dict, keys: list, ref_key: tuple, skipped: list) -> LabeledAccuracy:
    ref = tallies[ref_key]
    ref_top1, ref_top5 = ref.top1 / ref.n, ref.top5 / ref.n
    results = []
    for key in keys:
        t = tallies[key]
        top1, top5 = t.top1 / t.n, t.top5 / t.n
        results.append(AccuracyRow(
            backend=key[0], provider=key[1], precision=key[2], samples=t.n, top1=top1, top5=top5,
            top1_drop_points=round(100 * (ref_top1 - top1), 4), top5_drop_points=round(100 * (ref_top5 - top5), 4),
            # The FP32 artifact on the reference backend *is* the reference: it agrees by construction.
            agreement_with_reference=(t.agree / t.n) if key != ref_key else 1.0))
    reference = AccuracyReference(
        label="model.onnx FP32", precision="fp32", backend=REFERENCE_BACKEND[0], provider=REFERENCE_BACKEND[1],
        description="the bundle's FP32 ONNX graph (model.onnx) on ONNX Runtime CPU, itself checked "
                    "against PyTorch on the golden set; PyTorch is not run here",
        top1=ref_top1, top5=ref_top5)
    return LabeledAccuracy(
        data=str(dataset.root), layout=dataset.layout, label_source=dataset.label_source, samples=ref.n,
        classes_present=dataset.classes_present, skipped=len(skipped),
        skipped_examples=[f"{n}: {why}" for n, why in skipped[:10]], reference=reference, results=results,
        evaluated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def _open_runners(bundle: Bundle, precisions: list[str], target: Target, ref_key: tuple, log) -> tuple[dict, list]:
    """The reference runner (FP32 ONNX on ONNX Runtime CPU) and one per artifact (shared when the
    same file runs twice); returns ({key: runner}, the artifacts' keys in order)."""
    reference = Target(backend=REFERENCE_BACKEND[0], provider=REFERENCE_BACKEND[1], threads=target.threads)
    runners = {ref_key: open_runner(bundle, "fp32", reference, artifact=True)}
    keys = []
    try:
        for p in precisions:
            # Same artifact choice as verify: TensorRT runs the bundle's engine for this device.
            resolved = resolve(bundle, p, target, warn=log, artifact=True)
            key = (target.backend, resolved.provider, p)
            keys.append(key)
            if key not in runners:
                runners[key] = open_runner(bundle, p, target, warn=log, artifact=True)
    except BaseException:
        for r in runners.values():
            r.close()
        raise
    return runners, keys


def _tally(bundle: Bundle, dataset: LabeledSet, runners: dict, ref_key: tuple, batch: int) -> tuple[dict, list]:
    """Stream the images in chunks through every runner; returns ({key: _Tally}, skipped files)."""
    from runtime import console
    from runtime.verify import run_batched

    pre = bundle.preprocessing
    tallies = {k: _Tally() for k in runners}
    skipped: list[tuple[str, str]] = []
    with console.Progress(len(dataset.files), "labeled accuracy") as progress:
        for start in range(0, len(dataset.files), CHUNK):
            files = dataset.files[start:start + CHUNK]
            labels = dataset.labels[start:start + CHUNK]
            loaded = load_folder(files, pre, root=dataset.root)
            skipped += loaded.skipped
            if loaded.skipped:
                ok = set(loaded.names)
                labels = np.array([lab for f, lab in zip(files, labels)
                                   if f.relative_to(dataset.root).as_posix() in ok], dtype=np.int64)
            if len(loaded.names):
                x = normalize(loaded.images, pre)
                ref_top = _topk(run_batched(runners[ref_key], bundle, x, batch), 5)
                tallies[ref_key].add(ref_top, labels)
                for key, runner in runners.items():
                    if key != ref_key:
                        tallies[key].add(_topk(run_batched(runner, bundle, x, batch), 5), labels, ref_top[:, 0])
            progress.update(len(files))
    return tallies, skipped


def merge_accuracy(old: LabeledAccuracy | None, new: LabeledAccuracy) -> LabeledAccuracy:
    """Keep other backends' results when the same data set was evaluated before."""
    if old is None or old.data != new.data or old.samples != new.samples:
        return new
    keys = {r.key for r in new.results}
    return dataclasses.replace(new, results=[r for r in old.results if r.key not in keys] + new.results)


def accuracy_rows(acc: LabeledAccuracy) -> list[list[str]]:
    """Rows for ACCURACY_HEADER (the terminal table of ``verify --labeled-data``, and report.md)."""
    ref = acc.reference
    rows = [[f"reference ({ref.label})", f"{ref.backend}/{ref.provider}", f"{ref.top1:.2%}", f"{ref.top5:.2%}",
             "-", "-"]]
    for r in acc.results:
        rows.append([r.precision, f"{r.backend}/{r.provider}", f"{r.top1:.2%}", f"{r.top5:.2%}",
                     f"{r.top1_drop_points:+.2f}", f"{r.top5_drop_points:+.2f}"])
    return rows


ACCURACY_HEADER = ["model", "backend", "top-1", "top-5", "top-1 drop (points)", "top-5 drop (points)"]
