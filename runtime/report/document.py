"""The typed report.json: ``Report`` and its sections. Read and written only by
runtime/report/summary.py (``load_report`` / ``save_report``)."""

from __future__ import annotations

import dataclasses
from typing import TypedDict

from runtime.benchmark import BenchmarkResult
from runtime.compare import Comparison
from runtime.int8_diagnosis import Int8DiagnosisSection
from runtime.labeled import LabeledAccuracy
from runtime.report.sections import (EnginesSection, LintSection, MixedPrecision, Notes, Sensitivity,
                                     VerificationSection)
from runtime.report.typed import at, check, fields_of

REPORT_VERSION = 1

# report.json key (also the Report attribute that holds it) -> the section's type (``from_dict``).
# These are what a re-export can carry over; the header (model, weights, golden, reference,
# calibration) is written anew from the bundle by every verification.
SECTIONS = {
    "lint": LintSection,
    "benchmarks": BenchmarkResult,
    "accuracy": LabeledAccuracy,
    "sensitivity": Sensitivity,
    "mixed_precision": MixedPrecision,
    "engines": EnginesSection,
    "int8_diagnosis": Int8DiagnosisSection,
}
_HEADER = ("report_version", "model", "weights", "golden", "reference", "calibration")


# The header's free-form dicts: the keys the pages read, checked when present (other keys kept).
class WeightsEntry(TypedDict, total=False):
    """The manifest's weights (Weights.to_dict)."""

    spec: str | None
    random_init: bool
    description: str | None
    note: str | None


class GoldenEntry(TypedDict, total=False):
    samples: int | None
    source: str | None


class CalibrationEntry(TypedDict, total=False):
    """One INT8 artifact's calibration (runtime/bundle.py: CalibrationInfo.to_dict)."""

    method: str | None
    samples: int | None
    source: str | None
    kind: str | None
    skipped: int
    calibrated: bool | None
    seconds: float | None
    shared_with: str | None
    few: bool
    recommended_min: int | None


@dataclasses.dataclass
class Report:
    """A bundle's report.json. ``passed`` is derived from the verification results."""

    model: str | None = None
    weights: WeightsEntry = dataclasses.field(default_factory=dict)  # manifest weights (Weights.to_dict)
    golden: GoldenEntry = dataclasses.field(default_factory=dict)  # {"samples", "source"} of the golden set
    reference: str | None = None  # what the golden outputs came from ("PyTorch FP32", ...)
    calibration: dict[str, CalibrationEntry] = dataclasses.field(default_factory=dict)  # precision -> CalibrationInfo
    verification: VerificationSection = dataclasses.field(default_factory=VerificationSection)
    lint: LintSection | None = None
    benchmarks: BenchmarkResult | None = None
    accuracy: LabeledAccuracy | None = None
    sensitivity: Sensitivity | None = None
    mixed_precision: MixedPrecision | None = None
    engines: EnginesSection | None = None
    int8_diagnosis: Int8DiagnosisSection | None = None
    report_version: int = REPORT_VERSION
    extra: dict = dataclasses.field(default_factory=dict)  # sections of a newer edgeport: kept as they are

    @property
    def results(self) -> list[Comparison]:
        return self.verification.results

    @property
    def passed(self) -> bool:
        """Some artifact was verified and every verified artifact passed."""
        return bool(self.results) and self.verification.passed

    def to_dict(self) -> dict:
        d: dict = {k: getattr(self, k) for k in _HEADER}
        if not self.calibration:
            del d["calibration"]
        d["results"] = [r.to_dict() for r in self.results]
        if self.verification.golden_names is not None:
            d["golden_names"] = self.verification.golden_names
        for key in SECTIONS:
            section = getattr(self, key)
            if section is not None:
                d[key] = section.to_dict()
        d.update(self.extra)
        if self.results:
            d["passed"] = self.passed
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        """The typed report, every value checked against its type (runtime/report/typed.py): a
        value of the wrong type raises FieldError (a ValueError naming its path), a section of the
        wrong shape TypeError, ValueError, KeyError or AttributeError (summary.read_report turns
        them into a BundleError)."""
        header = {k: data[k] for k in _HEADER if data.get(k) is not None}
        report = cls(**fields_of(cls, header))
        report.verification = VerificationSection(
            results=check(data.get("results"), list[Comparison], "results"),
            golden_names=check(data.get("golden_names"), list[str] | None, "golden_names"))
        for key, section in SECTIONS.items():
            if data.get(key) is not None:
                setattr(report, key, at(key, section.from_dict, data[key]))
        known = set(_HEADER) | set(SECTIONS) | {"results", "golden_names", "passed"}
        report.extra = {k: v for k, v in data.items() if k not in known}
        return report

    def carry_over(self, changes, fresh: set = frozenset()) -> tuple["Report", Notes]:
        """What still describes a re-exported bundle (``changes``: what it left byte-identical),
        section by section; ``fresh``: sections the new export writes itself."""
        notes = Notes()
        carried = Report(report_version=self.report_version,
                         verification=self.verification.carry_over(changes, notes))
        for key in SECTIONS:
            section = getattr(self, key)
            if section is not None and key not in fresh:
                setattr(carried, key, section.carry_over(changes, notes))
        if self.extra:
            notes.dropped.append(f"section(s) {', '.join(sorted(self.extra))}")
        return carried, notes

    @property
    def empty(self) -> bool:
        """Nothing worth writing (no results and no section)."""
        return not self.results and all(getattr(self, k) is None for k in SECTIONS)
