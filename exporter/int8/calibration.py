"""INT8 calibration data: a folder of images or a .npy/.npz of preprocessed tensors.

The calibration set feeds ONNX Runtime's calibrators through the ``CalibrationDataReader``
interface (an iterator of ``{input_name: batch}`` feeds). Images get the model's own
preprocessing (the manifest's ``Preprocessing``, exactly what verification uses), so
the ranges are measured on the same numbers the deployed model will see.

- Folder: every image below it, recursively (jpg, png, bmp, webp, tif, gif; grayscale,
  RGBA, palette, CMYK and 16-bit images become RGB through ``runtime.preprocess.load_rgb``,
  then grayscale for a 1-channel model; other channel counts need an array file).
  Unreadable files are skipped and counted; no usable image is an error.
- ``.npy``: one float array, N x C x H x W (the model's input), already preprocessed. ``.npz``: one such array
  (or the one named after the model input, ``inputs``, ``images``, ``data`` or ``x``).
- ``--calib-samples N`` (default: all, capped at 512) takes the first N usable samples in
  a fixed pseudo-random order (files sorted by a hash of their relative path), so a folder
  sorted by class still gives every class, and every run picks the same samples.
- The calibration images must never be judged by the golden set: ``check_overlap``
  refuses calibration files whose content also appears in the verification images.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from runtime.bundle import sha256_file
from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import Preprocessing, list_images, load_folder, normalize

# The shipped default set (80 public-domain / CC0 crops). Its one source is <repo>/calib_data;
# a wheel carries a copy inside the package (setup.py's build step), a checkout or an editable
# install reads the source folder.
PACKAGED_CALIB_DIR = Path(__file__).resolve().parents[1] / "assets" / "calib"
CHECKOUT_CALIB_DIR = Path(__file__).resolve().parents[2] / "calib_data"
DEFAULT_CALIB_DIR = PACKAGED_CALIB_DIR if PACKAGED_CALIB_DIR.is_dir() else CHECKOUT_CALIB_DIR
MAX_DEFAULT_SAMPLES = 512
ARRAY_SUFFIXES = (".npy", ".npz")
_NPZ_KEYS = ("inputs", "images", "data", "x")


@dataclasses.dataclass
class CalibrationSet:
    """Calibration samples, ready for the model, plus where they came from."""

    source: str  # "folder" or "array"
    path: Path
    names: list[str]  # file names (folder) or "<file>[i]" (array), in feeding order
    skipped: list[tuple[str, str]]  # (file, reason) of unreadable images
    digest: str  # sha256 over the names and contents of everything used
    available: int  # usable + skipped candidates seen before the sample cap was reached
    images: np.ndarray | None = None  # N x H x W x C uint8 (folder)
    tensors: np.ndarray | None = None  # N x C x H x W float32 (array)
    preprocessing: Preprocessing | None = None

    def __len__(self) -> int:
        return len(self.names)

    def inputs(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Normalized float32 NCHW inputs for samples [start, stop)."""
        if self.tensors is not None:
            return np.ascontiguousarray(self.tensors[start:stop], dtype=np.float32)
        return normalize(self.images[start:stop], self.preprocessing)

    def describe(self) -> str:
        kind = "images" if self.source == "folder" else "preprocessed tensors"
        return f"{len(self)} {kind} from {self.path}"


def default_calib_dir() -> Path:
    """The shipped calibration folder, or a clear error when the installation lacks it."""
    if not DEFAULT_CALIB_DIR.is_dir() or not list_images(DEFAULT_CALIB_DIR):
        raise EdgeportError(
            f"The default INT8 calibration images are missing: no image files in {DEFAULT_CALIB_DIR} "
            f"(a wheel ships them in {PACKAGED_CALIB_DIR.relative_to(PACKAGED_CALIB_DIR.parents[2])}, a checkout in "
            "calib_data/; this installation has neither).",
            hint="Reinstall edgeport from a wheel built from a full checkout, or pass --calib-data DIR with a few "
                 "hundred images typical of your inputs (or a .npy/.npz of preprocessed tensors).")
    return DEFAULT_CALIB_DIR


def _order_key(rel: str) -> str:
    # A fixed pseudo-random order that depends only on each file's own relative path.
    return hashlib.sha256(rel.encode("utf-8")).hexdigest()


def load_calibration(path: str | Path, pre: Preprocessing, input_shape: tuple[int, int, int],
                     samples: int | None = None, input_name: str = "input",
                     log: Callable[[str], None] = lambda s: None) -> CalibrationSet:
    """Read a calibration folder or array file for a model taking ``input_shape`` (C, H, W)."""
    path = Path(path)
    if samples is not None and samples < 1:
        raise UsageError(f"--calib-samples must be at least 1, got {samples}.")
    cap = samples or MAX_DEFAULT_SAMPLES
    if not path.exists():
        raise EdgeportError(f"Calibration data '{path}' does not exist.",
                            hint="Pass --calib-data with a folder of images or a .npy/.npz file.")
    if path.is_file():
        if path.suffix.lower() not in ARRAY_SUFFIXES:
            raise UsageError(f"--calib-data '{path}' is a file but not a .npy or .npz array.",
                             hint="Pass a folder of images, or a .npy/.npz of preprocessed NCHW float tensors.")
        return _load_array(path, input_shape, cap, input_name)
    return _load_folder(path, pre, cap, log)


def none_readable(what: str, root: Path, problems: list) -> EdgeportError:
    """The error for a calibration folder none of whose images decodes (at load, and in prechecks)."""
    first = problems[0] if problems else ("?", "?")
    return EdgeportError(f"None of the {what} calibration folder '{root}' could be read "
                         f"(first problem: {first[0]}: {first[1]}).",
                         hint="Check the files (are they real images?), or pass another --calib-data.")


def _load_folder(root: Path, pre: Preprocessing, cap: int, log) -> CalibrationSet:
    files = list_images(root)
    if not files:
        raise EdgeportError(f"Calibration folder '{root}' contains no image files (searched recursively).",
                            hint="Put jpg/png/bmp/webp images in it, or pass --calib-data pointing elsewhere.")
    rels = {f: f.relative_to(root).as_posix() for f in files}
    ordered = sorted(files, key=lambda f: _order_key(rels[f]))
    images, names, skipped = [], [], []
    pos = 0
    # Load in small chunks until the cap is reached: unreadable files do not count.
    while len(names) < cap and pos < len(ordered):
        part = ordered[pos:pos + min(32, cap - len(names))]
        pos += len(part)
        loaded = load_folder(part, pre, root=root)
        skipped += loaded.skipped
        images += list(loaded.images)
        names += loaded.names
    if not names:
        raise none_readable(f"{len(files)} image files in", root, skipped)
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode("utf-8") + b"\0" + sha256_file(root / name).encode() + b"\n")
    # Skipped files are reported once, by the caller that checks the set (exporter/int8/ranges.py).
    return CalibrationSet(source="folder", path=root, names=names, skipped=skipped, digest=digest.hexdigest(),
                          available=len(files), images=np.stack(images), preprocessing=pre)


def _load_array(path: Path, input_shape: tuple[int, int, int], cap: int, input_name: str) -> CalibrationSet:
    arr = load_array(path, input_shape, cap, input_name)
    digest = hashlib.sha256(f"{path.name}\0{sha256_file(path)}\0{len(arr)}".encode()).hexdigest()
    names = [f"{path.name}[{i}]" for i in range(len(arr))]
    return CalibrationSet(source="array", path=path, names=names, skipped=[], digest=digest,
                          available=len(arr), tensors=arr)


def load_array(path: Path, input_shape: tuple[int, int, int], cap: int, input_name: str,
               option: str = "--calib-data") -> np.ndarray:
    """The first ``cap`` samples of a .npy/.npz of preprocessed N x C x H x W float tensors for a
    model taking ``input_shape`` (C, H, W); ``option`` names the flag in messages."""
    what = "Calibration array" if option == "--calib-data" else f"{option} array"
    try:
        data = np.load(path, allow_pickle=False)  # .npy: an array; .npz: a lazy archive to close
        if isinstance(data, np.ndarray):
            arr = data
        else:
            with data:
                keys = list(data.keys())
                if len(keys) == 1:
                    key = keys[0]
                else:
                    key = next((k for k in (input_name, *_NPZ_KEYS) if k in keys), None)
                    if key is None:
                        raise UsageError(
                            f"{option} '{path}' holds {len(keys)} arrays ({', '.join(keys[:8])}); "
                            f"edgeport cannot tell which one is the input.",
                            hint=f"Name it '{input_name}' or 'inputs', or save a single array.")
                arr = data[key]
    except (OSError, ValueError, EOFError) as exc:
        raise EdgeportError(f"Cannot read {what.lower()} '{path}': {exc}.",
                            hint="Save it with numpy.save / numpy.savez (no pickled objects).") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise UsageError(f"{what} '{path}' has dtype {getattr(arr, 'dtype', type(arr))}; "
                         "edgeport expects preprocessed float tensors (normalized, NCHW).",
                         hint="Pass the images as a folder instead to let edgeport preprocess them.")
    if arr.ndim == 3:
        arr = arr[None]
    expected = tuple(int(d) for d in input_shape)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != expected:
        raise UsageError(
            f"{what} '{path}' has shape {list(arr.shape)}, but the model takes "
            f"[N, {', '.join(map(str, expected))}] (NCHW, preprocessed).",
            hint="Export with a matching --input-size / --channels, or regenerate the array.")
    if len(arr) == 0:
        raise EdgeportError(f"{what} '{path}' holds no samples.")
    if not np.isfinite(arr).all():
        raise EdgeportError(f"{what} '{path}' contains NaN or Inf values.")
    return np.ascontiguousarray(arr[:cap], dtype=np.float32)


def check_overlap(calib: CalibrationSet, verify_files: Iterable[Path], verify_source: str) -> None:
    """Refuse calibration images whose content also appears in the verification (golden) images.

    INT8 accuracy judged on the images it was calibrated on would look better than it is.
    """
    if calib.source != "folder":
        return
    verify_hashes = {}
    for f in verify_files:
        try:
            verify_hashes.setdefault(sha256_file(f), f)
        except OSError:
            continue
    clashes = []
    for name in calib.names:
        h = sha256_file(calib.path / name)
        if h in verify_hashes:
            clashes.append((name, verify_hashes[h]))
    if clashes:
        shown = ", ".join(f"{a} = {b.name}" for a, b in clashes[:3])
        raise UsageError(
            f"{len(clashes)} calibration image(s) in '{calib.path}' are identical to verification images of "
            f"{verify_source} ({shown}{', ...' if len(clashes) > 3 else ''}): INT8 accuracy must be judged on "
            "images the calibration has not seen.",
            hint="Remove them from one of the two folders, or pass different --calib-data / --golden-data.")


class CalibrationReader:
    """ONNX Runtime's ``CalibrationDataReader`` over a ``CalibrationSet``, in batches.

    ``get_next()`` returns ``{input_name: batch}`` until the set (or the range given to
    ``set_range``) is exhausted, then None; ``rewind()`` starts again. ``on_batch(n)`` is
    called after each batch with the number of samples (progress reporting).
    """

    def __init__(self, calib: CalibrationSet, input_name: str, batch: int = 8,
                 on_batch: Callable[[int], None] | None = None):
        if batch < 1:
            raise UsageError(f"Calibration batch must be at least 1, got {batch}.")
        self.calib, self.input_name, self.batch = calib, input_name, batch
        self.on_batch = on_batch
        self._start, self._end = 0, len(calib)
        self._pos = 0

    def get_next(self) -> dict | None:
        if self._pos >= self._end:
            return None
        stop = min(self._pos + self.batch, self._end)
        feed = {self.input_name: self.calib.inputs(self._pos, stop)}
        if self.on_batch:
            self.on_batch(stop - self._pos)
        self._pos = stop
        return feed

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        feed = self.get_next()
        if feed is None:
            raise StopIteration
        return feed

    def __len__(self) -> int:
        return self._end - self._start

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start = max(0, start_index)
        self._end = min(len(self.calib), end_index)
        self._pos = self._start

    def rewind(self) -> None:
        self._pos = self._start

