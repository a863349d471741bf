"""report.json's one reader (``load_report``) and one writer (``save_report``), and the updates
that go through them (verify, bench, build). Every write redraws report.md and report.html from
the same typed ``Report``, so the three never disagree."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Callable

from runtime.benchmark import BenchmarkResult
from runtime.bundle import Bundle
from runtime.errors import BundleError
from runtime.fsutil import atomic_write_text
from runtime.labeled import LabeledAccuracy
from runtime.report.document import REPORT_VERSION, SECTIONS, Report
from runtime.report.markdown import SUMMARY_HEADER, render_markdown, render_table, summary_rows  # noqa: F401
from runtime.report.sections import EnginesSection, LintSection
from runtime.report.typed import FieldError


def read_report(path, *, fix: str = "") -> Report:
    """Parse the report.json at ``path``; anything that is not an edgeport report is a BundleError
    (the file is then never overwritten: that would lose its sections)."""
    from runtime.fsutil import open_regular

    try:
        with open_regular(path) as f:  # a link out of the bundle is refused (BundleError), never followed
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}).", hint=fix) from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BundleError(f"{path} has no 'results' list, so it is not an edgeport report.", hint=fix)
    try:
        return Report.from_dict(data)
    except FieldError as exc:  # a value of the wrong type: its path and what was expected say it all
        raise BundleError(f"{path} has a malformed section ({exc}), so it is not a report this edgeport wrote.",
                          hint=fix) from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise BundleError(f"{path} has a malformed section ({type(exc).__name__}: {exc}), so it is not a report "
                          "this edgeport wrote.", hint=fix) from exc


def load_report(bundle: Bundle, *, required: bool = False) -> Report:
    """The bundle's report (an empty one when there is no report.json yet, unless ``required``)."""
    path = bundle.report_path("json")
    if not path.is_file():
        if required:
            raise BundleError(f"Bundle '{bundle.root}' has no report.json yet, so there is nothing to render.",
                              hint=f"Run `edgeport verify {bundle.root}` first (export writes it too unless --no-verify).")
        return Report()
    return read_report(path, fix=f"Move it aside (it is not overwritten) and run `edgeport verify {bundle.root}` "
                                 "to write a fresh one.")


def check_writable(bundle: Bundle, command: str) -> None:
    """Refuse, before any work, a bundle folder ``command`` cannot write its reports into.

    Reports are replaced atomically (a temp file renamed over the old one), so what matters is
    creating a file in the folder: try exactly that. Minutes of verification should not end in
    "permission denied" with the verdict lost."""
    import os
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".report-write-test.", dir=bundle.root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BundleError(
            f"Cannot write the reports of bundle '{bundle.root}' ({exc.strerror or exc}): `edgeport {command}` "
            "writes report.json, report.md and report.html into the bundle folder, so it stops before the work.",
            hint="Copy the bundle somewhere writable, or fix the folder's permissions (from Python: "
                 "write_report=False runs without writing reports).") from exc


def save_after_work(bundle: Bundle, write: Callable[[], object], warn: Callable[[str], None]) -> str | None:
    """Run ``write`` (a report writer) after the work is done: an OSError (a full disk, a folder
    made read-only meanwhile) becomes a warning naming the report, so the caller still shows
    the verdict. Returns the error's text, or None when the reports were written."""
    try:
        write()
    except OSError as exc:
        why = f"{exc.strerror or exc}" + (f": {exc.filename}" if getattr(exc, "filename", None) else "")
        message = (f"the results above stand, but the report {bundle.report_path('json')} (and .md/.html) could "
                   f"not be written ({why})")
        warn(message)
        return message
    return None


def write_reports(bundle: Bundle, verification, accuracy: LabeledAccuracy | None = None,
                  sections: dict | None = None) -> Report:
    """Merge a ``runtime.verify.Verification`` (and labeled ``accuracy``) into the bundle's report
    and redraw report.md and .html. ``sections``: other sections to set, as report.json holds
    them (export's ``{"sensitivity": [...], "mixed_precision": {...}}``)."""
    from runtime.labeled import merge_accuracy

    golden = bundle.manifest.golden
    report = load_report(bundle)
    report.report_version = REPORT_VERSION
    report.model = bundle.name
    report.weights = bundle.manifest.weights.to_dict()
    report.golden = {"samples": golden.samples if golden else None, "source": golden.source if golden else None}
    report.reference = bundle.reference_label
    report.calibration = calibration_section(bundle)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    report.verification.merge(verification.comparisons, now)
    if verification.lint:
        report.lint = report.lint or LintSection()
        report.lint.artifacts.update(verification.lint)
    _merge_diagnoses(report, verification)
    if accuracy is not None:
        report.accuracy = merge_accuracy(report.accuracy, accuracy)
    for key, value in (sections or {}).items():
        setattr(report, key, SECTIONS[key].from_dict(value))
    save_report(bundle, report)
    return report


def _merge_diagnoses(report: Report, verification) -> None:
    """The INT8 diagnoses of this run in; an artifact verified again without one (it passed now,
    or its diagnosis could not run) loses its old one."""
    from runtime.int8_diagnosis import Int8DiagnosisSection

    entries = dict(report.int8_diagnosis.entries) if report.int8_diagnosis else {}
    for c in verification.comparisons:
        entries.pop(c.precision, None)
    entries.update(getattr(verification, "diagnoses", {}))
    report.int8_diagnosis = Int8DiagnosisSection(entries) if entries else None


def write_benchmarks(bundle: Bundle, run: BenchmarkResult,
                     log: Callable[[str], None] = lambda s: None) -> BenchmarkResult:
    """Merge a benchmark run into the report and redraw report.md/.html; returns the merged section."""
    report = load_report(bundle)
    report.model = report.model or bundle.name
    report.benchmarks = report.benchmarks.merge(run, log=log) if report.benchmarks else run
    save_report(bundle, report)
    return report.benchmarks


def calibration_section(bundle: Bundle) -> dict:
    """report.json's ``calibration``: per INT8 artifact, the method, sample count and source
    (from the manifest), and whether the count is below the recommended minimum."""
    out = {}
    from runtime.precision import quantized_keys

    for precision in quantized_keys():
        info = bundle.calibration(precision)
        if info is not None:
            out[precision] = info.to_dict()
    return out


def record_engines(bundle: Bundle, entries: dict[str, dict]) -> bool:
    """Merge ``{engine file: entry}`` (runtime/report/engines.py: engine_entry) into the report's
    ``engines`` section and redraw report.md/.html. Only when report.json exists (a bundle
    exported with --no-verify has none, and a report without results reads as failed);
    returns whether it wrote."""
    if not entries or not bundle.report_path("json").is_file():
        return False
    report = load_report(bundle)
    report.engines = report.engines or EnginesSection()
    report.engines.entries.update(entries)
    save_report(bundle, report)
    return True


def save_report(bundle: Bundle, report: Report) -> None:
    """Write report.json, report.md and report.html from ``report`` (the one writer)."""
    from runtime.report.html import write_html

    atomic_write_text(bundle.report_path("json"), json.dumps(report.to_dict(), indent=2) + "\n")
    atomic_write_text(bundle.report_path("md"), render_markdown(report, bundle.manifest))
    write_html(bundle, report)
