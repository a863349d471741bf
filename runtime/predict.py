"""`edgeport predict`: class names and softmax probabilities for a few images.

A multi-output bundle predicts from its classifier output (the manifest's first output).

Images go through exactly the bundle's preprocessing (runtime.preprocess), the same code
that produced the golden inputs, so a prediction here matches what verify checked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from runtime.bundle import Bundle
from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import load_image, normalize, resize_crop
from runtime.runners import Target, open_runner, select_precisions


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    precision: str = "fp32"
    target: Target = Target()
    topk: int = 5


@dataclasses.dataclass(frozen=True)
class ClassScore:
    rank: int
    index: int
    name: str
    probability: float


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image, and what ran it."""

    image: str
    precision: str
    backend: str
    provider: str
    top: list[ClassScore]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_name(names: list[str] | None, index: int) -> str:
    """The manifest's name for ``index``, or ``class N`` when the bundle has none."""
    if names and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"


def load_inputs(bundle: Bundle, images: list[str | Path]) -> np.ndarray:
    """Preprocess ``images`` for ``bundle`` (converted to its channels: RGB, or grayscale for a
    1-channel model); an unreadable file is an error naming it."""
    pre = bundle.preprocessing
    pre.check_images("image files (edgeport predict)")
    crops = []
    for item in images:
        path = Path(item)
        if not path.exists():
            raise UsageError(f"Image '{path}' does not exist.", hint="Check the path.")
        if path.is_dir():
            raise UsageError(f"'{path}' is a folder, not an image.",
                                hint="Pass image files (a shell glob like DIR/*.jpg works).")
        try:
            crops.append(resize_crop(load_image(path, pre), pre))
        except Exception as exc:  # noqa: BLE001 - any decoder error means "not a readable image"
            raise EdgeportError(f"Cannot read image '{path}': {type(exc).__name__}: {exc}.",
                                hint="Pass a JPEG, PNG, BMP, WebP, TIFF or GIF file.") from exc
    return normalize(np.stack(crops), pre)


def predict(bundle: Bundle, images: list[str | Path], config: PredictConfig) -> list[Prediction]:
    """Top-k classes with softmax probabilities for each image, in the order given."""
    from runtime.verify import default_batch, run_batched

    if not images:
        raise UsageError("Pass at least one image.")
    if config.topk < 1:
        raise UsageError(f"--topk must be at least 1, got {config.topk}.")
    # int8 on the CPU provider means model.int8-cpu.onnx (unless --qdq): runtime/precision.py.
    (precision,) = select_precisions(bundle, (config.precision,), config.target)
    x = load_inputs(bundle, images)
    # Same artifact choice as verify: TensorRT runs the bundle's engine for this device.
    with open_runner(bundle, precision, config.target, artifact=True) as runner:
        provider = runner.resolved.provider
        logits = run_batched(runner, bundle, x, default_batch(bundle, None))
    probs = softmax(logits)
    k = min(config.topk, probs.shape[1])
    names = bundle.class_names
    out = []
    for path, p in zip(images, probs):
        order = np.argsort(-p, kind="stable")[:k]
        out.append(Prediction(
            image=str(path), precision=precision, backend=config.target.backend, provider=provider,
            top=[ClassScore(rank=r + 1, index=int(i), name=class_name(names, int(i)), probability=float(p[i]))
                 for r, i in enumerate(order)]))
    return out


def format_predictions(predictions: list[Prediction]) -> str:
    """Human-readable block per image: rank, name, probability."""
    lines = []
    for pred in predictions:
        lines.append(f"{pred.image}  ({pred.precision}, {pred.backend}/{pred.provider})")
        width = max(len(t.name) for t in pred.top)
        for t in pred.top:
            lines.append(f"  {t.rank}. {t.name:<{width}}  {t.probability:7.2%}")
    return "\n".join(lines)
