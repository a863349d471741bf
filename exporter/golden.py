"""The golden set: held-out photos, resized and cropped, plus the reference outputs.

By default the photographs shipped in exporter/assets/golden (public domain / CC0; see
the README there), each used three ways (center crop, mirrored, zoomed), so a device
without torch can check any artifact against PyTorch. They are read as the model's input
takes them: RGB for 3 channels, grayscale (PIL's ``L``) for 1; a model with another
channel count cannot use photos and needs ``--golden-data FILE.npy|.npz`` (preprocessed
NCHW float tensors). ``--golden-data DIR`` replaces the photos with a folder of images.
These files never overlap the INT8 calibration set (calib_data/).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from runtime.errors import EdgeportError
from runtime.preprocess import Preprocessing, list_images, load_folder, load_image, normalize, resize_crop

BUILTIN_DIR = Path(__file__).parent / "assets" / "golden"
ARRAY_SUFFIXES = (".npy", ".npz")


@dataclasses.dataclass
class GoldenImages:
    images: np.ndarray | None  # N x H x W x C uint8; None when preprocessed arrays were given
    names: list[str]
    source: str
    skipped: list
    arrays: np.ndarray | None = None  # N x C x H x W float32 (--golden-data FILE.npy)

    def inputs(self, pre: Preprocessing) -> np.ndarray:
        """Normalized float32 NCHW inputs."""
        return self.arrays if self.arrays is not None else normalize(self.images, pre)


def builtin_images(pre: Preprocessing) -> GoldenImages:
    pre.check_images("the built-in golden photos")
    files = list_images(BUILTIN_DIR)
    if not files:
        raise EdgeportError(f"The built-in golden photos are missing from {BUILTIN_DIR}.",
                            hint="Reinstall edgeport, or pass --golden-data DIR.")
    zoom = dataclasses.replace(pre, resize=int(round(pre.resize * 1.3)))
    images, names = [], []
    for f in files:
        img = load_image(f, pre, draft=False)  # full decode: the zoomed crop needs more pixels
        center = resize_crop(img, pre)
        images += [center, np.ascontiguousarray(center[:, ::-1]), resize_crop(img, zoom)]
        names += [f.name, f"{f.name}#mirrored", f"{f.name}#zoomed"]
    return GoldenImages(np.stack(images), names, "builtin photos (exporter/assets/golden)", [])


def folder_images(folder: str | Path, pre: Preprocessing, limit: int) -> GoldenImages:
    """``--golden-data``: a folder of images, or a .npy/.npz file of preprocessed NCHW tensors."""
    root = Path(folder)
    if root.is_file() and root.suffix.lower() in ARRAY_SUFFIXES:
        return array_inputs(root, pre, limit)
    files = list_images(root)
    if not files:
        raise EdgeportError(f"--golden-data folder '{root}' contains no image files.",
                            hint="Point it at a folder with jpg/png/bmp/webp images, or a .npy/.npz of "
                                 "preprocessed NCHW float tensors.")
    loaded = load_folder(files[:limit], pre, root=root)
    if len(loaded.names) == 0:
        raise EdgeportError(f"None of the {len(files[:limit])} images in '{root}' could be read.",
                            hint=f"First problem: {loaded.skipped[0][0]}: {loaded.skipped[0][1]}")
    return GoldenImages(loaded.images, loaded.names, f"--golden-data {root}", loaded.skipped)


def array_inputs(path: Path, pre: Preprocessing, limit: int) -> GoldenImages:
    """Preprocessed tensors (N x C x H x W float, normalized) as the golden inputs."""
    from exporter.int8.calibration import load_array

    arr = load_array(path, pre.chw, limit, "input", option="--golden-data")
    names = [f"{path.name}[{i}]" for i in range(len(arr))]
    return GoldenImages(None, names, f"--golden-data {path} (preprocessed tensors)", [], arrays=arr)


def reference_outputs(module, inputs: np.ndarray, what: str, input_name: str,
                      batch: int = 8) -> list[tuple[str, np.ndarray]]:
    """PyTorch FP32 outputs for normalized NCHW inputs: (name, array) of every output, in the
    model's order (exporter/models/outputs.py names and checks them)."""
    import torch

    from exporter.models.outputs import check_output_values, flatten

    parts: dict[str, list] = {}
    names: list[str] | None = None
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            chunk = inputs[i:i + batch]
            pairs = flatten(module(torch.from_numpy(chunk)), what)
            check_output_values(pairs, len(chunk), what, input_name)
            if names is None:
                names = [n for n, _ in pairs]
                parts = {n: [] for n in names}
            elif [n for n, _ in pairs] != names:
                raise EdgeportError(f"{what} returns different outputs from one batch to the next "
                                    f"({names} then {[n for n, _ in pairs]}).")
            for n, v in pairs:
                parts[n].append(v.float().numpy())
    return [(n, np.concatenate(parts[n])) for n in names or []]
