"""A small *trained* classifier for the INT8 tests (random-init nets say nothing about top-1).

``build_trained_model(folder)`` deterministically trains, in a few seconds on 2 CPU cores,
a SeedResNet (the seed article's BasicBlock, width 16, one block per stage, 32x32 input)
to tell apart crops of the 7 golden photographs (exporter/assets/golden). It writes:

- ``model.py`` with the factory ``build`` (export with ``--model model.py:build``),
- ``ckpt.pt`` (a plain state_dict, ``--weights ckpt.pt``),
- ``heldout/``: crops from other random boxes than training (seed 2), ``<class>_<k>.png``,
- ``calib/``: calibration crops (seed 3), never in the held-out set.

Crops are random squares (35-90 % of the short side) of each photo, mirrored half the
time, stored as 48x48 PNGs; the model's preprocessing (resize 37, center crop 32,
ImageNet mean/std) is the one edgeport uses, so training sees what the bundle sees.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "exporter" / "assets" / "golden"
INPUT_SIZE = 32
CROP_PIXELS = 48
TRAIN_PER_CLASS, HELDOUT_PER_CLASS, CALIB_PER_CLASS = 100, 10, 8
SEEDS = {"train": 1, "heldout": 2, "calib": 3}

MODEL_SOURCE = '''"""Test model: SeedResNet (seed article BasicBlock), width 16, one block per stage."""
from exporter.models.seed import SeedResNet


def build(num_classes=7):
    return SeedResNet(num_blocks=(1, 1, 1, 1), num_classes=num_classes, width=16)
'''


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    folder: Path
    model_spec: str  # "<folder>/model.py:build"
    weights: Path
    heldout: Path
    calib: Path
    classes: tuple[str, ...]
    input_size: int
    train_seconds: float
    heldout_accuracy: float  # FP32 PyTorch, true labels

    def export_args(self) -> list[str]:
        return ["--model", self.model_spec, "--weights", str(self.weights), "--num-classes", str(len(self.classes)),
                "--input-size", str(self.input_size), "--golden-data", str(self.heldout),
                "--golden-samples", str(len(self.classes) * HELDOUT_PER_CLASS)]

    def label_of(self, name: str) -> int:
        return self.classes.index(Path(name).name.rsplit("_", 1)[0])


def _crops(photo, rng: np.random.Generator, n: int):
    from PIL import Image

    w, h = photo.size
    short = min(w, h)
    out = []
    for _ in range(n):
        side = int(short * rng.uniform(0.35, 0.9))
        x = int(rng.integers(0, w - side + 1))
        y = int(rng.integers(0, h - side + 1))
        img = photo.crop((x, y, x + side, y + side)).resize((CROP_PIXELS, CROP_PIXELS), Image.LANCZOS)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(img)
    return out


def _preprocessing():
    from runtime.preprocess import Preprocessing

    return Preprocessing(resize=int(round(INPUT_SIZE / 0.875)), crop=INPUT_SIZE)


def build_trained_model(folder: Path, epochs: int = 6) -> TrainedModel:
    """Train (deterministically) and write the model file, checkpoint, held-out and calibration crops."""
    import torch

    from runtime.preprocess import list_images, load_rgb, normalize, resize_crop

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = list_images(PHOTOS)
    classes = tuple(f.stem for f in files)
    photos = [load_rgb(f) for f in files]
    pre = _preprocessing()

    def tensors(imgs):
        return normalize(np.stack([resize_crop(im, pre) for im in imgs]), pre)

    sets = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("heldout", HELDOUT_PER_CLASS), ("calib", CALIB_PER_CLASS)):
        rng = np.random.default_rng(SEEDS[split])
        sets[split] = [(c, im) for c, photo in enumerate(photos) for im in _crops(photo, rng, per_class)]
    for split in ("heldout", "calib"):
        d = folder / split
        d.mkdir(exist_ok=True)
        counts: dict[int, int] = {}
        for c, im in sets[split]:
            k = counts[c] = counts.get(c, -1) + 1
            im.save(d / f"{classes[c]}_{k:02d}.png")

    x = torch.from_numpy(tensors([im for _, im in sets["train"]]))
    y = torch.tensor([c for c, _ in sets["train"]])
    (folder / "model.py").write_text(MODEL_SOURCE)
    from exporter.models.seed import SeedResNet

    torch.manual_seed(0)
    model = SeedResNet(num_blocks=(1, 1, 1, 1), num_classes=len(classes), width=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps_per_epoch = (len(x) + 63) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    t0 = time.perf_counter()
    try:
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 64):
                idx = order[i:i + 64]
                xb = x[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        with torch.no_grad():
            xh = torch.from_numpy(tensors([im for _, im in sets["heldout"]]))
            yh = np.array([c for c, _ in sets["heldout"]])
            acc = float((model(xh).argmax(1).numpy() == yh).mean())
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    torch.save(model.state_dict(), folder / "ckpt.pt")
    return TrainedModel(folder=folder, model_spec=f"{folder / 'model.py'}:build", weights=folder / "ckpt.pt",
                        heldout=folder / "heldout", calib=folder / "calib", classes=classes,
                        input_size=INPUT_SIZE, train_seconds=round(seconds, 2), heldout_accuracy=acc)


if __name__ == "__main__":  # pragma: no cover - manual run: python tests/trained_model.py OUT
    import sys

    sys.path.insert(0, str(REPO))
    tm = build_trained_model(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/edgeport-trained"))
    print(tm)
