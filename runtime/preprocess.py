"""Image loading and preprocessing with PIL and numpy only (no torch).

Matches torchvision's ``ImageClassification`` transform on PIL images: resize the shorter
side (bilinear, antialiased as PIL always is), center crop, scale to [0, 1], normalize.
The exporter computes the PyTorch reference outputs from exactly these arrays, so the
runtime on a device without torch feeds every artifact the same numbers.

Any input layout: ``channels`` 3 reads images as RGB, 1 as grayscale (PIL's ``L``); other
counts cannot come from images (preprocessed arrays only, ``Preprocessing.check_images``).
The crop is square (an int) or (height, width).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from runtime.errors import EdgeportError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# A bound on decoded pixels: PIL's own decompression-bomb limit, made explicit so a huge
# image is refused (counted as unreadable) instead of exhausting memory.
MAX_PIXELS = 89_478_485


def input_hw(value, what: str = "--input-size") -> tuple[int, int]:
    """``224``, ``"224"``, ``"224x160"`` (height x width) or ``(224, 160)`` -> (height, width)."""
    if isinstance(value, str):
        parts = value.lower().replace("\u00d7", "x").split("x")
        try:
            nums = [int(p.strip()) for p in parts]
        except ValueError:
            raise UsageError(f"{what} takes N or HxW (e.g. 224 or 224x160), got '{value}'.") from None
        value = nums[0] if len(nums) == 1 else tuple(nums)
    if isinstance(value, bool):
        raise UsageError(f"{what} takes N or HxW (e.g. 224 or 224x160), got {value!r}.")
    if isinstance(value, int):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} takes N or HxW (e.g. 224 or 224x160), got {value!r}.") from None
    if h < 1 or w < 1:
        raise UsageError(f"{what} must be positive, got {h}x{w}.")
    return h, w


def format_hw(hw) -> str:
    h, w = hw
    return f"{h}x{w}"


# How images become the channels a model takes: PIL's mode per channel count.
IMAGE_MODES = {1: "L", 3: "RGB"}


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input tensor.

    ``crop`` is an int (square) or ``(height, width)``; a square tuple is stored as an int.
    ``channels``: 3 reads images as RGB, 1 as grayscale (PIL's ``L``: ITU-R 601-2 luma);
    other counts cannot be read from images (preprocessed arrays only). ``mean``/``std``
    take one value per channel; a single value is used for every channel (as torchvision's
    ``Normalize`` broadcasts it).
    """

    resize: int
    crop: int | tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    channels: int = 3

    def __post_init__(self):
        h, w = input_hw(self.crop, "crop")
        object.__setattr__(self, "crop", h if h == w else (h, w))
        if not isinstance(self.channels, int) or isinstance(self.channels, bool) or self.channels < 1:
            raise UsageError(f"channels must be a whole number of at least 1, got {self.channels!r}.")
        if self.resize < 1:
            raise UsageError(f"Resize ({self.resize}) and crop ({format_hw((h, w))}) sizes must be positive.")
        if max(h, w) > self.resize:
            raise UsageError(f"Crop size {format_hw((h, w))} is larger than resize size {self.resize} "
                             "(the shorter image side is resized to it, then the crop is cut from the center).")
        for label in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, label))
            if len(values) == 1:
                values = values * self.channels
            if len(values) != self.channels:
                raise UsageError(f"--{label} takes one value per channel (or one for all): the input has "
                                 f"{self.channels} channel(s), got {len(values)} values {list(values)}.")
            object.__setattr__(self, label, values)
        if any(s <= 0 for s in self.std):
            raise UsageError(f"--std values must be positive, got {list(self.std)}.")
        if self.interpolation not in _PIL_FILTERS:
            raise UsageError(
                f"Unknown interpolation '{self.interpolation}'; choose one of {sorted(_PIL_FILTERS)}."
            )

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return input_hw(self.crop, "crop")

    @property
    def chw(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    @property
    def image_mode(self) -> str | None:
        """PIL mode images are converted to (``L``, ``RGB``), None when images cannot be read."""
        return IMAGE_MODES.get(self.channels)

    def check_images(self, what: str = "images") -> None:
        """Refuse reading ``what`` for a model whose channel count no image mode gives."""
        if self.image_mode is None:
            raise UsageError(
                f"This model takes {self.channels}-channel inputs; edgeport reads images only as 1 channel "
                f"(grayscale) or 3 (RGB), so it cannot use {what}.",
                hint="Pass preprocessed NCHW float arrays (.npy/.npz) instead: --golden-data FILE.npy and "
                     "--calib-data FILE.npy at export; from Python, bundle.runner().infer(array).")

    def load(self, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> np.ndarray:
        """Image file(s) -> the model's float32 NCHW input, exactly as edgeport preprocesses them
        (e.g. for a client of a served model). An unreadable file raises its decoder's error."""
        files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        return normalize(np.stack([resize_crop(load_image(f, self), self) for f in files]), self)

    def to_dict(self) -> dict:
        return {
            "resize": self.resize,
            "crop": self.crop if isinstance(self.crop, int) else list(self.crop),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "scale": "1/255",
            "layout": "NCHW",
            "channels": self.channels,
            "color": self.image_mode or "none (preprocessed arrays)",
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """Also reads manifests written before channels and non-square crops (3 channels, int crop)."""
        crop = d["crop"]
        mean = tuple(float(x) for x in d["mean"])
        return cls(
            resize=int(d["resize"]),
            crop=int(crop) if isinstance(crop, (int, float)) else tuple(int(x) for x in crop),
            mean=mean,
            std=tuple(float(x) for x in d["std"]),
            interpolation=d.get("interpolation", "bilinear"),
            channels=int(d.get("channels", len(mean))),
        )


def _pil():
    from PIL import Image

    return Image


_PIL_FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST"}


def load_rgb(path: str | os.PathLike, min_side: int | None = None):
    """Open an image as 8-bit RGB, whatever its mode (L, LA, P, RGBA, CMYK, 16-bit).

    ``min_side`` lets JPEG decoding downscale on the fly (``draft``) so that huge photos
    do not need their full-size bitmap in memory. Raises ``OSError``/``ValueError`` for
    files that are not readable images.
    """
    Image = _pil()
    img = Image.open(path)
    w, h = img.size
    if w * h > MAX_PIXELS and not (img.format == "JPEG" and min_side):
        raise ValueError(f"image of {w}x{h} pixels exceeds the {MAX_PIXELS}-pixel limit")
    if min_side and img.format == "JPEG":
        # Decode at the smallest 1/2^k scale that keeps the short side >= min_side.
        scale = min(w, h) / float(min_side)
        if scale >= 2:
            img.draft("RGB", (max(1, int(w / scale)), max(1, int(h / scale))))
    img.load()
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.max() > 1.0 else 1.0
        img = Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite transparent pixels on white rather than on whatever was stored there.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(path: str | os.PathLike, pre: Preprocessing, draft: bool = True):
    """Open an image in the mode ``pre`` asks for: RGB (3 channels) or grayscale ``L`` (1 channel,
    converted from RGB with PIL's ITU-R 601-2 luma; a grayscale file stays exactly as stored).
    ``draft``: let JPEG decoding downscale towards ``pre.resize`` (see ``load_rgb``)."""
    pre.check_images(f"the image '{path}'")
    img = load_rgb(path, min_side=pre.resize if draft else None)
    return img if pre.image_mode == "RGB" else img.convert(pre.image_mode)


def resize_crop(img, pre: Preprocessing) -> np.ndarray:
    """Resize the shorter side to ``pre.resize`` and center-crop ``pre.size`` (height x width):
    HWC uint8 (C = 1 for a grayscale image)."""
    Image = _pil()
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_short = pre.resize
    new_long = int(new_short * long_ / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), getattr(Image, _PIL_FILTERS[pre.interpolation]))
    ch, cw = pre.size
    top = int(round((new_h - ch) / 2.0))
    left = int(round((new_w - cw) / 2.0))
    arr = np.asarray(img.crop((left, top, left + cw, top + ch)), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def normalize(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 NHWC (or one HWC image) -> float32 NCHW normalized input; C must be ``pre.channels``."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != pre.channels:
        raise UsageError(f"Images of shape {list(arr.shape)} do not fit a {pre.channels}-channel input "
                         f"(expected N x H x W x {pre.channels} uint8).")
    x = arr.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file below ``folder``, recursively, in a deterministic (sorted) order."""
    root = Path(folder)
    if not root.exists():
        raise UsageError(f"Image folder '{root}' does not exist.", hint="Check the path.")
    if not root.is_dir():
        raise UsageError(f"'{root}' is not a folder of images.", hint="Pass a directory.")
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


@dataclasses.dataclass
class LoadedImages:
    """Resized and cropped images plus what could not be read."""

    images: np.ndarray  # N x H x W x C uint8 (C = pre.channels)
    names: list[str]
    skipped: list[tuple[str, str]]  # (file, reason)


def load_folder(
    files: Sequence[Path] | Iterable[Path], pre: Preprocessing, root: Path | None = None
) -> LoadedImages:
    """Load, resize and crop images; unreadable files are skipped and reported. A model whose
    channel count is neither 1 nor 3 cannot read images at all (a UsageError)."""
    pre.check_images("image files")
    arrays, names, skipped = [], [], []
    for path in files:
        name = path.relative_to(root).as_posix() if root else path.name
        try:
            img = load_image(path, pre)
            if min(img.size) < 1:
                raise ValueError("empty image")
            arrays.append(resize_crop(img, pre))
            names.append(name)
        except Exception as exc:  # noqa: BLE001 - any decoder error means "skip this file"
            skipped.append((name, f"{type(exc).__name__}: {exc}"))
    images = (
        np.stack(arrays)
        if arrays
        else np.zeros((0, *pre.size, pre.channels), dtype=np.uint8)
    )
    return LoadedImages(images=images, names=names, skipped=skipped)
