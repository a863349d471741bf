"""calibration.json: the one reader and the one writer of a calibration pass's ranges.

The calibration step (exporter/int8/ranges.py) returns a ``CalibrationRanges``; the INT8
graphs (exporter/int8/quantize.py, exporter/int8/cpu_int8.py) and the accuracy budget
(exporter/int8/mixed_precision.py) take it in memory. The file is only written (into the
bundle and the cache folder) and read back as a cache, validated here: a cache entry that
does not parse is a miss, never a crash.

Per tensor the file keeps ``min``/``max``/``amax``, the method's symmetric range
(model.int8.onnx and calib.cache), and ``observed``, the real [min, max] of the same pass
(model.int8-cpu.onnx's asymmetric uint8 grid).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from runtime.fsutil import atomic_write_text

CALIBRATION_FILE = "calibration.json"
FORMAT = "edgeport-calibration"
VERSION = 1


class CalibrationFileError(ValueError):
    """A calibration.json that is not one edgeport wrote (the field is named)."""


def _pair(value, field: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise CalibrationFileError(f"{field} must be a [min, max] pair, got {value!r}")
    lo, hi = (_number(v, field) for v in value)
    if lo > hi:
        raise CalibrationFileError(f"{field} has min {lo} > max {hi}")
    return lo, hi


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CalibrationFileError(f"{field} must be a finite number, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class CalibrationRanges:
    """One calibration pass: its cache key, how it was made, and the ranges per tensor."""

    key: str
    method: str
    samples: int
    source: dict  # {"path", "kind", "digest", "skipped"}
    ranges: dict[str, tuple[float, float]]  # the method's symmetric range
    observed: dict[str, tuple[float, float]]  # the real min/max seen
    recipe_version: int
    percentile: float | None = None

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "key": self.key,
            "recipe_version": self.recipe_version,
            "method": self.method,
            "percentile": self.percentile,
            "samples": self.samples,
            "source": dict(self.source),
            "tensors": {name: {"min": lo, "max": hi, "amax": max(abs(lo), abs(hi)),
                               "observed": list(self.observed.get(name, (lo, hi)))}
                        for name, (lo, hi) in sorted(self.ranges.items())},
        }

    @classmethod
    def from_dict(cls, data) -> "CalibrationRanges":
        """Validated: raises CalibrationFileError naming the first field that is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise CalibrationFileError(f"not a {FORMAT} version {VERSION} document")
        key, method, samples = data.get("key"), data.get("method"), data.get("samples")
        if not isinstance(key, str) or not isinstance(method, str):
            raise CalibrationFileError("key and method must be strings")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise CalibrationFileError(f"samples must be a positive integer, got {samples!r}")
        tensors = data.get("tensors")
        if not isinstance(tensors, dict) or not tensors:
            raise CalibrationFileError("tensors must be a non-empty object")
        ranges, observed = {}, {}
        for name, entry in tensors.items():
            if not isinstance(entry, dict):
                raise CalibrationFileError(f"tensors.{name} must be an object")
            ranges[name] = _pair([entry.get("min"), entry.get("max")], f"tensors.{name}.min/max")
            observed[name] = _pair(entry.get("observed"), f"tensors.{name}.observed")
        percentile = data.get("percentile")
        return cls(key=key, method=method, samples=samples,
                   source=data.get("source") if isinstance(data.get("source"), dict) else {},
                   ranges=ranges, observed=observed, recipe_version=int(_number(data.get("recipe_version"),
                                                                                  "recipe_version")),
                   percentile=None if percentile is None else _number(percentile, "percentile"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def write(self, path: str | Path) -> None:
        """Write atomically (a cache folder may be shared by concurrent exports)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> "CalibrationRanges":
        """Read and validate; OSError when unreadable, CalibrationFileError when malformed."""
        try:
            data = json.loads(Path(path).read_text())
        except ValueError as exc:
            raise CalibrationFileError(f"{path} is not JSON ({exc})") from exc
        return cls.from_dict(data)
