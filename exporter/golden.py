"""The golden set: held-out photos, resized and cropped, plus the PyTorch FP32 outputs.

By default the photographs shipped in exporter/assets/golden (public domain / CC0; see
the README there), each used three ways (center crop, mirrored, zoomed), so a device
without torch can check any artifact against PyTorch. ``--verify-data DIR`` replaces them.
These files never overlap the INT8 calibration set (calib_data/).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from runtime.errors import EdgeportError
from runtime.preprocess import Preprocessing, list_images, load_rgb, load_folder, resize_crop

BUILTIN_DIR = Path(__file__).parent / "assets" / "golden"


@dataclasses.dataclass
class GoldenImages:
    images: np.ndarray  # N x H x W x 3 uint8
    names: list[str]
    source: str
    skipped: list


def builtin_images(pre: Preprocessing) -> GoldenImages:
    files = list_images(BUILTIN_DIR)
    if not files:
        raise EdgeportError(f"The built-in golden photos are missing from {BUILTIN_DIR}.",
                            hint="Reinstall edgeport, or pass --verify-data DIR.")
    zoom = Preprocessing(resize=int(round(pre.resize * 1.3)), crop=pre.crop, mean=pre.mean, std=pre.std,
                         interpolation=pre.interpolation)
    images, names = [], []
    for f in files:
        img = load_rgb(f)
        center = resize_crop(img, pre)
        images += [center, np.ascontiguousarray(center[:, ::-1]), resize_crop(img, zoom)]
        names += [f.name, f"{f.name}#mirrored", f"{f.name}#zoomed"]
    return GoldenImages(np.stack(images), names, "builtin photos (exporter/assets/golden)", [])


def folder_images(folder: str | Path, pre: Preprocessing, limit: int) -> GoldenImages:
    root = Path(folder)
    files = list_images(root)
    if not files:
        raise EdgeportError(f"--verify-data folder '{root}' contains no image files.",
                            hint="Point it at a folder with jpg/png/bmp/webp images.")
    loaded = load_folder(files[:limit], pre, root=root)
    if len(loaded.names) == 0:
        raise EdgeportError(f"None of the {len(files[:limit])} images in '{root}' could be read.",
                            hint=f"First problem: {loaded.skipped[0][0]}: {loaded.skipped[0][1]}")
    return GoldenImages(loaded.images, loaded.names, f"--verify-data {root}", loaded.skipped)


def reference_outputs(module, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    """PyTorch FP32 outputs for normalized NCHW inputs."""
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            outs.append(module(torch.from_numpy(inputs[i:i + batch])).float().numpy())
    return np.concatenate(outs)
