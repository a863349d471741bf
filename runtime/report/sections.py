"""The typed sections of report.json that have no home of their own (verification results,
Q/DQ lint, sensitivity, the accuracy budget, engine composition), and what every section
shares: how a re-export carries it over.

A re-export (exporter/reexport.py) keeps what was computed from files that came out
byte-identical. It describes what changed with a ``Changes`` object; each section's
``carry_over(changes, notes)`` returns the part of itself that still holds (None: nothing)
and says in ``notes`` what it kept and dropped.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Protocol, TypedDict

from runtime.compare import Comparison
from runtime.graph.qdq_lint import ArtifactLint
from runtime.report.typed import FieldError, at, check, fields_of

# The backend and provider export verifies on: its results are redone by every export.
EXPORT_VERIFY_TARGET = ("onnxruntime", "cpu")


class Changes(Protocol):
    """What a re-export left byte-identical (exporter/reexport.py: _Compare)."""

    golden_same: bool
    engines: set  # engine files carried over

    def same(self, precision: str | None) -> bool: ...

    def row_valid(self, precision: str | None, backend: str | None, artifact: str | None, *,
                  golden: bool) -> bool: ...


@dataclasses.dataclass
class Notes:
    """What a carry-over kept and dropped, in words (one warning lists the dropped)."""

    kept: list[str] = dataclasses.field(default_factory=list)
    dropped: list[str] = dataclasses.field(default_factory=list)

    def filter(self, rows: list, valid: Callable[[object], bool], what: str) -> list:
        """The valid rows; a note of how many were kept and dropped, per precision."""
        good = [r for r in rows if valid(r)]
        bad = [r for r in rows if not valid(r)]
        for group, notes, tail in ((good, self.kept, ""), (bad, self.dropped, ": artifact changed or gone")):
            if group:
                precisions = ", ".join(dict.fromkeys(str(r.precision) for r in group))
                notes.append(f"{len(group)} {what}{'s' if len(group) > 1 else ''} ({precisions}{tail})")
        return good


@dataclasses.dataclass
class VerificationSection:
    """report.json's ``results`` (one Comparison per backend, provider and precision) and the
    golden image names they were measured on."""

    results: list[Comparison] = dataclasses.field(default_factory=list)
    golden_names: list[str] | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def merge(self, comparisons: list[Comparison], verified_at: str) -> None:
        """Replace results with the same (backend, provider, precision) key; keep the others."""
        keys = {c.key for c in comparisons}
        new = [dataclasses.replace(c, verified_at=verified_at) for c in comparisons]
        self.results = [r for r in self.results if r.key not in keys] + new

    def carry_over(self, changes: Changes, notes: Notes) -> "VerificationSection":
        """Results of other targets whose artifact (or engine) and golden set are unchanged;
        export's own verification target is redone, so never carried."""
        others = [r for r in self.results if (r.backend, r.provider) != EXPORT_VERIFY_TARGET]
        rows = notes.filter(others, lambda r: changes.row_valid(r.precision, r.backend, None, golden=True),
                            "verification result")
        return VerificationSection(results=rows, golden_names=self.golden_names if changes.golden_same else None)


@dataclasses.dataclass
class LintSection:
    """report.json's ``lint``: {precision: ArtifactLint} of the TensorRT-style Q/DQ graphs."""

    artifacts: dict[str, ArtifactLint] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {p: lint.to_dict() for p, lint in self.artifacts.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "LintSection":
        return cls(check(data, dict[str, ArtifactLint]))

    def carry_over(self, changes: Changes, notes: Notes) -> "LintSection | None":
        kept = {p: lint for p, lint in self.artifacts.items() if changes.same(p)}
        return LintSection(kept) if kept else None


@dataclasses.dataclass(frozen=True)
class SensitivityRow:
    """One quantized layer, alone in INT8: how much it changes the logits."""

    rank: int
    layer: str
    op_type: str
    sqnr_db: float | None
    output_cosine: float | None
    top1_agreement: float | None
    macs_share: float | None
    kept_float: bool = False
    group: str | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.sqnr_db is not None and not math.isfinite(self.sqnr_db):
            d["sqnr_db"] = -999.0 if self.sqnr_db < 0 else 999.0  # JSON has no inf; the chart needs a number
        if self.group is None:
            del d["group"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "SensitivityRow":
        return cls(**fields_of(cls, data))


@dataclasses.dataclass
class Sensitivity:
    """The per-layer INT8 sensitivity ranking (report.json's ``sensitivity``: the rows), with
    how it was measured when it was (``samples`` golden images, ``units`` quantized layers)."""

    rows: list[SensitivityRow]
    samples: int | None = None
    units: int | None = None
    kept: list[str] = dataclasses.field(default_factory=list)  # layers already out of INT8

    def to_dict(self) -> list[dict]:
        return [r.to_dict() for r in self.rows]

    @classmethod
    def from_dict(cls, rows: list) -> "Sensitivity":
        """Rows as report.json holds them (dicts, each checked), or SensitivityRows (export's own)."""
        if not isinstance(rows, list):
            raise FieldError("", "a list of layer rows", rows)
        return cls(rows=[r if isinstance(r, SensitivityRow) else at(f"[{i}]", SensitivityRow.from_dict, r)
                         for i, r in enumerate(rows)])

    def carry_over(self, changes: Changes, notes: Notes) -> "Sensitivity | None":
        return _carry_int8("sensitivity", self, changes, notes, needs_golden=True)


class KeptFloatRow(TypedDict, total=False):
    """A layer export --max-drop kept out of INT8 (the keys the pages read)."""

    layer: str
    op_type: str
    precision: str
    reason: str


class BudgetSummary(TypedDict, total=False):
    """The keys of ``mixed_precision`` that report.md reads (the page shows every key as it is)."""

    budget_points: float
    metric: str
    data: str
    drop_points: float | None
    full_int8_drop_points: float | None
    layers_out_of_int8: int
    quantized_layers: int
    int8_macs_share: float | None
    kept_float: list[KeptFloatRow]


@dataclasses.dataclass
class MixedPrecision:
    """report.json's ``mixed_precision`` (export --max-drop: exporter/int8/mixed_precision.py)."""

    data: dict

    def to_dict(self) -> dict:
        return self.data

    @classmethod
    def from_dict(cls, data: dict) -> "MixedPrecision":
        return cls(check(data, BudgetSummary))

    def carry_over(self, changes: Changes, notes: Notes) -> "MixedPrecision | None":
        return _carry_int8("mixed_precision", self, changes, notes, needs_golden=False)


def _carry_int8(key: str, section, changes: Changes, notes: Notes, *, needs_golden: bool):
    """A section computed from model.int8.onnx (and the golden set): kept whole or dropped."""
    if changes.same("int8") and (changes.golden_same or not needs_golden):
        notes.kept.append(f"the {key} section")
        return section
    notes.dropped.append(f"the {key} section (model.int8.onnx{' or the golden set' if needs_golden else ''} "
                         "changed or is gone)")
    return None


class EngineLayerRow(TypedDict, total=False):
    """One compute layer of an engine (runtime/engines/layers.py: LayerSummary.to_dict)."""

    layer: str
    type: str
    reads: str
    writes: str
    onnx: list[str]


class Composition(TypedDict, total=False):
    """The keys of an engine's composition that the pages read."""

    layers: int
    tensors: dict[str, int]
    compute_layers_by_precision: dict[str, int]
    int8_compute_layers: list[EngineLayerRow]
    other_compute_layers: list[EngineLayerRow]
    weights_bytes: int | None
    activation_bytes: int | None


class EngineEntry(TypedDict, total=False):
    """One ``engines`` entry (runtime/report/engines.py: engine_entry)."""

    precision: str
    runtime: str
    version: str
    composition: Composition | None


@dataclasses.dataclass
class EnginesSection:
    """report.json's ``engines``: {engine file: entry} (runtime/report/engines.py: engine_entry)."""

    entries: dict[str, dict] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return self.entries

    @classmethod
    def from_dict(cls, data: dict) -> "EnginesSection":
        return cls(check(data, dict[str, EngineEntry]))

    def carry_over(self, changes: Changes, notes: Notes) -> "EnginesSection | None":
        kept = {e: v for e, v in self.entries.items() if e in changes.engines}
        gone = len(self.entries) - len(kept)
        if gone:
            notes.dropped.append(f"the composition of {gone} dropped engine(s)")
        return EnginesSection(kept) if kept else None
