"""The runner interface (template method, after Polygraphy's BaseRunner).

``infer()`` validates the feed once (name, dtype, rank, fixed dimensions, batch range) and
then calls the backend's ``infer_impl()``, so every backend gets the same checks and the
same error messages.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from runtime.errors import EdgeportError, UsageError


class MissingOutputError(EdgeportError):
    """A run gave no value for an output asked for (an artifact that does not match its manifest)."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple  # ints for fixed dimensions, None (or a string) for dynamic ones


class Runner(abc.ABC):
    """Runs one model artifact. Subclasses set ``inputs``/``outputs`` and ``infer_impl``."""

    backend = "base"

    def __init__(self):
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.max_batch: int | None = None

    @property
    def description(self) -> str:
        return self.backend

    def infer(self, feed) -> dict[str, np.ndarray]:
        """Run one batch. ``feed`` maps input names to arrays, or is a bare array for a
        single-input model. Returns {output name: array}."""
        if isinstance(feed, np.ndarray):
            if len(self.inputs) != 1:
                raise UsageError(f"This model takes {len(self.inputs)} inputs ({', '.join(t.name for t in self.inputs)}): "
                                 "pass a dict {name: array}.")
            feed = {self.inputs[0].name: feed}
        elif not isinstance(feed, dict):
            raise UsageError(f"infer() takes a numpy array or a dict of them, got {type(feed).__name__}.")
        self._validate(feed)
        return self.infer_impl(feed)

    def infer_batched(self, inputs: np.ndarray, batch: int, *, outputs=None, progress=None) -> dict[str, np.ndarray]:
        """Run a single-input model on ``inputs`` (samples stacked on axis 0) in batches of
        ``batch``: the one batched-run loop of edgeport. Returns {output name: the batches'
        results concatenated}, for ``outputs`` (names; default every output). ``progress``
        (a console.Progress) counts samples."""
        if len(self.inputs) != 1:
            raise UsageError(f"infer_batched() runs single-input models; this one takes {len(self.inputs)} inputs.")
        if batch < 1:
            raise UsageError(f"batch must be at least 1, got {batch}.")
        names = list(outputs) if outputs is not None else [t.name for t in self.outputs]
        parts: dict[str, list] = {n: [] for n in names}
        for start in range(0, len(inputs), batch):
            chunk = np.ascontiguousarray(inputs[start:start + batch])
            result = self.infer(chunk)
            missing = [n for n in names if n not in result]
            if missing:
                raise MissingOutputError(f"The artifact gives no output {', '.join(map(repr, missing))} (it gives "
                                    f"{', '.join(map(repr, result))}).")
            for n in names:
                parts[n].append(_batch_first(n, np.asarray(result[n]), len(chunk)))
            if progress is not None:
                progress.update(len(chunk))
        return {n: np.concatenate(v, axis=0) for n, v in parts.items()}

    @abc.abstractmethod
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the backend on a validated feed."""

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- validation ----------------------------------------------------------------
    def _validate(self, feed: dict[str, np.ndarray]) -> None:
        expected = {t.name: t for t in self.inputs}
        missing = sorted(set(expected) - set(feed))
        extra = sorted(set(feed) - set(expected))
        if missing or extra:
            raise EdgeportError(
                f"Input names do not match the model: missing {missing}, unexpected {extra}; "
                f"the model takes {sorted(expected)}."
            )
        for name, spec in expected.items():
            arr = feed[name]
            if not isinstance(arr, np.ndarray):
                raise EdgeportError(f"Input '{name}' must be a numpy array, got {type(arr).__name__}.")
            if arr.dtype != spec.dtype:
                raise EdgeportError(
                    f"Input '{name}' has dtype {arr.dtype}, but the model expects {np.dtype(spec.dtype)}."
                )
            if arr.ndim != len(spec.shape):
                raise EdgeportError(
                    f"Input '{name}' has shape {list(arr.shape)} (rank {arr.ndim}), but the model "
                    f"expects rank {len(spec.shape)}: {list(spec.shape)}."
                )
            for axis, (got, want) in enumerate(zip(arr.shape, spec.shape)):
                if isinstance(want, int) and want > 0 and got != want:
                    raise EdgeportError(
                        f"Input '{name}' has shape {list(arr.shape)}, but the model expects "
                        f"{list(spec.shape)} (dimension {axis} must be {want})."
                    )
            if arr.shape and arr.shape[0] < 1:
                raise EdgeportError(f"Input '{name}' has an empty batch.")
            if self.max_batch and arr.shape and arr.shape[0] > self.max_batch:
                raise EdgeportError(
                    f"Batch {arr.shape[0]} exceeds the artifact's maximum batch {self.max_batch}.",
                    hint="Split the input or rebuild with a larger --max-batch.",
                )


def _batch_first(name: str, value: np.ndarray, batch: int) -> np.ndarray:
    """``value`` when its first axis is the batch (results of batches are joined on it)."""
    if value.ndim == 0 or value.shape[0] != batch:
        raise EdgeportError(f"The model's output '{name}' has shape {list(value.shape)} for a batch of {batch}: it "
                            "has no batch axis first, which edgeport requires.",
                            hint="Export the model so that every output starts with the batch axis.")
    return value
