"""Accuracy diff between an artifact's outputs and the reference outputs (PyTorch FP32, or
ONNX Runtime FP32 of a given ONNX model).

Metrics per (backend, provider, precision):
- max/mean absolute difference, and max difference relative to the reference logit range
  (per sample: max|a-r| / (max r - min r), worst sample);
- cosine similarity of centered logits (each sample's mean subtracted), min and mean;
- top-1 agreement and mean top-5 overlap.

Random-init classifiers predict one class for nearly every image, so top-1 agreement on
them says little; centered cosine and the relative difference are the primary checks.
Any NaN or Inf in the outputs fails the check, whatever the tolerances.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from runtime.errors import UsageError
from runtime.precision import PRECISIONS


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Pass criteria; ``None`` disables a criterion."""

    max_rel_diff: float | None = None
    cosine_min: float | None = None
    top1_agreement: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Defaults per precision: the registry's (runtime/precision.py says why they are what they are).
DEFAULT_TOLERANCES = {p.key: Tolerance(**p.tolerance) for p in PRECISIONS.values()}

TOLERANCE_KEYS = tuple(f.name for f in dataclasses.fields(Tolerance))


def parse_tolerances(items) -> dict[str, Tolerance]:
    """Tolerances over the defaults, from ``--tol fp16.cosine_min=0.995`` items, or from a dict
    ``{"fp16": {"cosine_min": 0.995}}`` / ``{"fp16": Tolerance(...)}`` (the Python API).

    An unknown precision or metric is a UsageError, never silently ignored.
    """
    if isinstance(items, dict):
        flat = []
        for precision, value in items.items():
            if isinstance(value, Tolerance):
                value = value.to_dict()
            if not isinstance(value, dict):
                raise UsageError(f"tolerances[{precision!r}] must be a dict of metrics or a Tolerance, "
                                 f"got {type(value).__name__}.")
            flat += [f"{precision}.{k}={'none' if v is None else v}" for k, v in value.items()]
        items = flat
    tols = dict(DEFAULT_TOLERANCES)
    for item in items or ():
        try:
            lhs, value = item.split("=", 1)
            precision, key = lhs.split(".", 1)
        except ValueError:
            raise UsageError(f"--tol takes PRECISION.METRIC=VALUE (e.g. fp16.cosine_min=0.995), got '{item}'.") from None
        if precision not in DEFAULT_TOLERANCES:
            raise UsageError(f"--tol precision '{precision}' is unknown; choose one of "
                             f"{', '.join(DEFAULT_TOLERANCES)}.")
        if key not in TOLERANCE_KEYS:
            raise UsageError(f"--tol metric '{key}' is unknown; choose one of {', '.join(TOLERANCE_KEYS)}.")
        if value.lower() in ("none", "off"):
            number = None
        else:
            try:
                number = float(value)
            except ValueError:
                raise UsageError(f"--tol value '{value}' for {lhs} is not a number.") from None
        base = tols.get(precision, Tolerance())
        tols[precision] = dataclasses.replace(base, **{key: number})
    return tols


@dataclasses.dataclass
class OutputComparison:
    """One further output of a multi-output model against its reference (runtime/verify.py)."""

    name: str
    shape: list
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    cosine_min: float
    cosine_mean: float
    nonfinite: int
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict) -> "OutputComparison":
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))


@dataclasses.dataclass
class Comparison:
    """The result of comparing one artifact with the reference. ``passed`` is derived from
    ``failures``: adding a failure (lint, FP16 overflow, a further output) fails the artifact."""

    backend: str
    provider: str
    precision: str
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    cosine_min: float
    cosine_mean: float
    top1_agreement: float
    top5_overlap: float
    nonfinite: int
    failures: list[str]
    tolerance: dict[str, float | None]
    per_sample_cosine: list[float] = dataclasses.field(default_factory=list)
    per_sample_max_abs: list[float] = dataclasses.field(default_factory=list)
    top1_changed: list[int] = dataclasses.field(default_factory=list)
    # The artifact's top-1 class for each image of top1_changed (same order): report.html shows it.
    top1_changed_to: list[int] = dataclasses.field(default_factory=list)
    fp16_range: dict | None = None  # export-time FP16 range check (FP16 artifacts only)
    # Multi-output models: one entry per further output (runtime/verify.py: compare_output);
    # the fields above are the classifier output's, and a failing output fails the artifact.
    outputs: list[OutputComparison] = dataclasses.field(default_factory=list)
    verified_at: str | None = None  # set when written into report.json

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.backend, self.provider, self.precision)

    def to_dict(self) -> dict:
        """report.json's shape of one result (``passed`` written for tools that read it)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["outputs"] = [o.to_dict() for o in self.outputs]
        d["passed"] = self.passed
        if d["verified_at"] is None:
            del d["verified_at"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        """A result read back from report.json (its ``passed`` is recomputed from ``failures``);
        every field checked against its type (runtime/report/typed.py)."""
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))


def centered_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine of the logits after subtracting each sample's mean (1.0 for two constant rows)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = na * nb
    cos = np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1.0), np.where(
        (na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(cos, -1.0, 1.0)


def compare(
    outputs: np.ndarray,
    reference: np.ndarray,
    *,
    backend: str,
    provider: str,
    precision: str,
    tolerance: Tolerance,
) -> Comparison:
    """Metrics of ``outputs`` against ``reference`` (rows are samples), judged by ``tolerance``."""
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from reference shape {ref.shape}")
    result = Comparison(backend=backend, provider=provider, precision=precision, tolerance=tolerance.to_dict(),
                        failures=[], **_metrics(out, ref))
    result.failures = judge(result, tolerance)
    return result


def _metrics(out: np.ndarray, ref: np.ndarray) -> dict:
    """Comparison's metric fields for two (samples, values) arrays; NaN/Inf counted, never averaged."""
    n = len(ref)
    finite = np.isfinite(out)
    safe = np.where(finite, out, 0.0)
    diff = np.where(finite, np.abs(safe - ref), np.inf)
    span = ref.max(axis=1) - ref.min(axis=1)
    rel = diff.max(axis=1) / np.where(span > 0, span, 1.0)
    cos = np.where(finite.all(axis=1), centered_cosine(safe, ref), -1.0)
    top1_out = safe.argmax(axis=1)
    agree = top1_out == ref.argmax(axis=1)
    k = min(5, ref.shape[1])
    top5_out = np.argsort(-safe, axis=1)[:, :k]
    top5_ref = np.argsort(-ref, axis=1)[:, :k]
    overlap = np.array([len(set(a) & set(b)) / k for a, b in zip(top5_out, top5_ref)])
    changed = np.nonzero(~agree)[0]
    return dict(
        samples=n,
        max_abs_diff=float(diff.max()) if n else 0.0,
        mean_abs_diff=float(np.where(np.isfinite(diff), diff, 0).mean()) if n else 0.0,
        max_rel_diff=float(rel.max()) if n else 0.0,
        cosine_min=float(cos.min()) if n else 1.0,
        cosine_mean=float(cos.mean()) if n else 1.0,
        top1_agreement=float(agree.mean()) if n else 1.0,
        top5_overlap=float(overlap.mean()) if n else 1.0,
        nonfinite=int((~finite).sum()),
        per_sample_cosine=[float(c) for c in cos],
        per_sample_max_abs=[float(d) for d in diff.max(axis=1)] if n else [],
        top1_changed=[int(i) for i in changed],
        top1_changed_to=[int(top1_out[i]) for i in changed],
    )


def judge(result: Comparison, tolerance: Tolerance) -> list[str]:
    """Why ``result`` fails ``tolerance`` (empty: it passes)."""
    failures = []
    if result.samples == 0:
        failures.append("no samples to compare")
    if result.nonfinite:
        failures.append(f"{result.nonfinite} NaN/Inf values in the outputs")
    if tolerance.max_rel_diff is not None and not result.max_rel_diff <= tolerance.max_rel_diff:
        failures.append(f"max_rel_diff {result.max_rel_diff:.3g} > {tolerance.max_rel_diff:g}")
    if tolerance.cosine_min is not None and not result.cosine_min >= tolerance.cosine_min:
        failures.append(f"cosine_min {result.cosine_min:.6f} < {tolerance.cosine_min:g}")
    if tolerance.top1_agreement is not None and not result.top1_agreement >= tolerance.top1_agreement:
        failures.append(f"top1_agreement {result.top1_agreement:.3f} < {tolerance.top1_agreement:g}")
    return failures
