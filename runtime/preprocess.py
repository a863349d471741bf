"""Image loading and preprocessing with PIL and numpy only (no torch).

Matches torchvision's ``ImageClassification`` transform on PIL images: resize the shorter
side (bilinear, antialiased as PIL always is), center crop, scale to [0, 1], normalize.
The exporter computes the PyTorch reference outputs from exactly these arrays, so the
runtime on a device without torch feeds every artifact the same numbers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import EdgeportError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

# A bound on decoded pixels: PIL's own decompression-bomb limit, made explicit so a huge
# image is refused (counted as unreadable) instead of exhausting memory.
MAX_PIXELS = 89_478_485


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's input tensor."""

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.resize < 1 or self.crop < 1:
            raise UsageError(f"Resize ({self.resize}) and crop ({self.crop}) sizes must be positive.")
        if self.crop > self.resize:
            raise UsageError(f"Crop size {self.crop} is larger than resize size {self.resize}.")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise UsageError(f"--mean and --std take 3 values each, got {list(self.mean)} and {list(self.std)}.")
        if any(s <= 0 for s in self.std):
            raise UsageError(f"--std values must be positive, got {list(self.std)}.")
        if self.interpolation not in _PIL_FILTERS:
            raise UsageError(
                f"Unknown interpolation '{self.interpolation}'; choose one of {sorted(_PIL_FILTERS)}."
            )

    def to_dict(self) -> dict:
        return {
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "scale": "1/255",
            "layout": "NCHW",
            "color": "RGB",
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(
            resize=int(d["resize"]),
            crop=int(d["crop"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            interpolation=d.get("interpolation", "bilinear"),
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


def resize_crop(img, pre: Preprocessing) -> np.ndarray:
    """Resize the shorter side to ``pre.resize`` and center-crop ``pre.crop``: HWC uint8."""
    Image = _pil()
    w, h = img.size
    short, long_ = (w, h) if w <= h else (h, w)
    new_short = pre.resize
    new_long = int(new_short * long_ / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), getattr(Image, _PIL_FILTERS[pre.interpolation]))
    c = pre.crop
    top = int(round((new_h - c) / 2.0))
    left = int(round((new_w - c) / 2.0))
    return np.asarray(img.crop((left, top, left + c, top + c)), dtype=np.uint8)


def normalize(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """uint8 NHWC (or HWC) RGB -> float32 NCHW normalized input."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    x = arr.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image file below ``folder``, recursively, in a deterministic (sorted) order."""
    root = Path(folder)
    if not root.exists():
        raise EdgeportError(f"Image folder '{root}' does not exist.", hint="Check the path.")
    if not root.is_dir():
        raise EdgeportError(f"'{root}' is not a folder of images.", hint="Pass a directory.")
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


@dataclasses.dataclass
class LoadedImages:
    """Resized and cropped images plus what could not be read."""

    images: np.ndarray  # N x H x W x 3 uint8
    names: list[str]
    skipped: list[tuple[str, str]]  # (file, reason)


def load_folder(
    files: Sequence[Path] | Iterable[Path], pre: Preprocessing, root: Path | None = None
) -> LoadedImages:
    """Load, resize and crop images; unreadable files are skipped and reported."""
    arrays, names, skipped = [], [], []
    for path in files:
        name = path.relative_to(root).as_posix() if root else path.name
        try:
            img = load_rgb(path, min_side=pre.resize)
            if min(img.size) < 1:
                raise ValueError("empty image")
            arrays.append(resize_crop(img, pre))
            names.append(name)
        except Exception as exc:  # noqa: BLE001 - any decoder error means "skip this file"
            skipped.append((name, f"{type(exc).__name__}: {exc}"))
    images = (
        np.stack(arrays)
        if arrays
        else np.zeros((0, pre.crop, pre.crop, 3), dtype=np.uint8)
    )
    return LoadedImages(images=images, names=names, skipped=skipped)
