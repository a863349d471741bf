#!/usr/bin/env python3
"""Rebuild the two shipped image sets from locally installed packages.

Writes

* ``exporter/assets/golden/``: the golden held-out set, one JPEG (quality 90)
  per source photo, resized so the shorter side is 256 px (aspect ratio kept).
* ``calib_data/``: the default INT8 calibration set of ``edgeport export --int8``,
  several square crops of each source photo, each resized to 256x256 and saved
  as JPEG quality 85, named ``<source>_<k>.jpg``.

The two sets are made from *different* source photos: no photo appears in both
(this is asserted below).  Every source photo is public domain or CC0 according
to the text shipped with the package it comes from; see the README.md in each
output folder for the per-file source and license.

Nothing is downloaded.  The sources are read from installed packages:

* scikit-image (``skimage/data/*``; tested with 0.26.0)
      pip install scikit-image
* matplotlib (``matplotlib/mpl-data/sample_data/grace_hopper.jpg``; tested with 3.11.2)
      pip install matplotlib
* Debian package ``lomiri-wallpapers-16.04`` (``/usr/share/backgrounds/...``)
      apt-get install lomiri-wallpapers-16.04

Only the file locations are looked up (``importlib.util.find_spec``); the
packages are not imported, so e.g. SciPy is not needed.  The script needs
Pillow and numpy.

Determinism: crop boxes are fixed grids plus random boxes drawn from a numpy
``default_rng`` seeded by a CRC32 of the source name, so the same boxes are
produced on every run.  Each source file is checked against its SHA-256 (the
file whose license was checked); a mismatch aborts unless ``--no-verify`` is
given.  JPEG bytes can differ slightly between Pillow / libjpeg versions;
the pixel content does not change in any meaningful way.

Usage (from anywhere)::

    python calib_data/make_sets.py            # rewrite both folders
    python calib_data/make_sets.py --dry-run  # only check that sources exist
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parent.parent
GOLDEN_DIR = REPO / "exporter" / "assets" / "golden"
CALIB_DIR = REPO / "calib_data"

GOLDEN_SHORT_SIDE = 256
GOLDEN_QUALITY = 90
CALIB_SIZE = 256
CALIB_QUALITY = 85


# --------------------------------------------------------------------------- #
# Where the source photos live
# --------------------------------------------------------------------------- #
def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed (pip install {name})")
    return Path(list(spec.submodule_search_locations)[0])


def _skimage(rel: str) -> Path:
    return _package_dir("skimage") / "data" / rel


def _matplotlib(rel: str) -> Path:
    return _package_dir("matplotlib") / "mpl-data" / "sample_data" / rel


def _debian(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"{p} is missing (apt-get install lomiri-wallpapers-16.04)")
    return p


@dataclass(frozen=True)
class Source:
    name: str          # output name stem
    locate: callable   # () -> Path
    sha256: str        # of the exact file whose license was checked


SOURCES = {
    # ---- golden set ------------------------------------------------------ #
    "chelsea": Source("chelsea", lambda: _skimage("chelsea.png"),
                      "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    "coffee": Source("coffee", lambda: _skimage("coffee.png"),
                     "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    "rocket": Source("rocket", lambda: _skimage("rocket.jpg"),
                     "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    "retina": Source("retina", lambda: _skimage("retina.jpg"),
                     "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6"),
    "camera": Source("camera", lambda: _skimage("camera.png"),
                     "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
    "clock_motion": Source("clock_motion", lambda: _skimage("clock_motion.png"),
                           "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955"),
    "grace_hopper": Source("grace_hopper", lambda: _matplotlib("grace_hopper.jpg"),
                           "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    # ---- calibration set ------------------------------------------------- #
    "astronaut": Source("astronaut", lambda: _skimage("astronaut.png"),
                        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    "seeding": Source("seeding",
                      lambda: _debian("/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg"),
                      "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f"),
    "hubble": Source("hubble", lambda: _skimage("hubble_deep_field.jpg"),
                     "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4"),
    "grass": Source("grass", lambda: _skimage("grass.png"),
                    "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
    "gravel": Source("gravel", lambda: _skimage("gravel.png"),
                     "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
    "brick": Source("brick", lambda: _skimage("brick.png"),
                    "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
}

GOLDEN = ["chelsea", "coffee", "rocket", "retina", "grace_hopper", "camera", "clock_motion"]

# Calibration recipe per source: (grid n, grid side as a fraction of the
# shorter side, add the full-frame centre square?, number of random crops,
# random side range as fractions of the shorter side).
CALIB = {
    "astronaut": dict(grid=3, grid_frac=0.6, full=True, n_random=14, rand_frac=(0.45, 0.9)),
    "seeding":   dict(grid=3, grid_frac=0.6, full=True, n_random=22, rand_frac=(0.25, 0.9)),
    "hubble":    dict(grid=3, grid_frac=0.5, full=True, n_random=2,  rand_frac=(0.3, 0.8)),
    "grass":     dict(grid=2, grid_frac=0.7, full=False, n_random=0, rand_frac=(0.5, 0.9)),
    "gravel":    dict(grid=2, grid_frac=0.7, full=False, n_random=0, rand_frac=(0.5, 0.9)),
    "brick":     dict(grid=2, grid_frac=0.7, full=False, n_random=0, rand_frac=(0.5, 0.9)),
}

assert not set(GOLDEN) & set(CALIB), "a source photo must never be in both sets"


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(src: Source, verify: bool) -> Image.Image:
    path = src.locate()
    if verify and sha256(path) != src.sha256:
        raise SystemExit(
            f"{path}: SHA-256 differs from the file whose license was checked; "
            "re-check its license, update the hash, or pass --no-verify")
    im = ImageOps.exif_transpose(Image.open(path))
    # Keep greyscale photos greyscale; everything else becomes 8-bit RGB.
    return im.convert("L") if im.mode in ("L", "I;16", "I", "LA") else im.convert("RGB")


def resize_short_side(im: Image.Image, short: int) -> Image.Image:
    w, h = im.size
    scale = short / min(w, h)
    if w <= h:
        size = (short, round(h * scale))
    else:
        size = (round(w * scale), short)
    return im.resize(size, Image.LANCZOS)


def crop_boxes(name: str, w: int, h: int, grid: int, grid_frac: float, full: bool,
               n_random: int, rand_frac: tuple[float, float]) -> list[tuple[int, int, int, int]]:
    """Square crop boxes (left, top, right, bottom): an overlapping grid x grid
    lattice, optionally the full-frame centre square, then seeded random ones."""
    short = min(w, h)
    boxes = []
    s = round(grid_frac * short)
    for iy in range(grid):
        for ix in range(grid):
            x = round(ix * (w - s) / (grid - 1)) if grid > 1 else (w - s) // 2
            y = round(iy * (h - s) / (grid - 1)) if grid > 1 else (h - s) // 2
            boxes.append((x, y, x + s, y + s))
    if full:
        x, y = (w - short) // 2, (h - short) // 2
        boxes.append((x, y, x + short, y + short))
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    for _ in range(n_random):
        s = int(round(rng.uniform(*rand_frac) * short))
        x = int(rng.integers(0, w - s + 1))
        y = int(rng.integers(0, h - s + 1))
        boxes.append((x, y, x + s, y + s))
    return boxes


def clear_jpegs(folder: Path) -> None:
    for p in folder.glob("*.jpg"):
        p.unlink()


# --------------------------------------------------------------------------- #
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--golden-dir", type=Path, default=GOLDEN_DIR)
    ap.add_argument("--calib-dir", type=Path, default=CALIB_DIR)
    ap.add_argument("--no-verify", action="store_true",
                    help="do not check the SHA-256 of the source files")
    ap.add_argument("--dry-run", action="store_true",
                    help="only locate and verify the sources; write nothing")
    args = ap.parse_args(argv)
    verify = not args.no_verify

    if args.dry_run:
        for src in SOURCES.values():
            load(src, verify)
            print(f"ok  {src.name:14s} {src.locate()}")
        return 0

    args.golden_dir.mkdir(parents=True, exist_ok=True)
    args.calib_dir.mkdir(parents=True, exist_ok=True)
    clear_jpegs(args.golden_dir)
    clear_jpegs(args.calib_dir)

    for name in GOLDEN:
        im = resize_short_side(load(SOURCES[name], verify), GOLDEN_SHORT_SIDE)
        out = args.golden_dir / f"{name}.jpg"
        im.save(out, "JPEG", quality=GOLDEN_QUALITY, optimize=True)
        print(f"golden {out.name:22s} {im.mode:3s} {im.size[0]}x{im.size[1]}")

    total = 0
    for name, recipe in CALIB.items():
        im = load(SOURCES[name], verify)
        boxes = crop_boxes(name, *im.size, **recipe)
        for k, box in enumerate(boxes):
            crop = im.crop(box).resize((CALIB_SIZE, CALIB_SIZE), Image.LANCZOS)
            crop.save(args.calib_dir / f"{name}_{k:02d}.jpg", "JPEG",
                      quality=CALIB_QUALITY, optimize=True)
        total += len(boxes)
        print(f"calib  {name:14s} {im.mode:3s} {im.size[0]}x{im.size[1]} -> {len(boxes)} crops")
    print(f"golden: {len(GOLDEN)} images, calib: {total} crops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
