"""The typed report.json (runtime/report/document.py): derived verdicts, a lossless round trip,
and the per-section carry-over a re-export relies on. No bundle needed: hand-written reports."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest


def _result(precision, backend="onnxruntime", provider="cpu", failures=(), artifact=None):
    return {"backend": backend, "provider": provider, "precision": precision, "samples": 2, "max_abs_diff": 0.0,
            "mean_abs_diff": 0.0, "max_rel_diff": 0.0, "cosine_min": 1.0, "cosine_mean": 1.0,
            "top1_agreement": 1.0, "top5_overlap": 1.0, "nonfinite": 0, "passed": not failures,
            "failures": list(failures), "tolerance": {"max_rel_diff": None, "cosine_min": 0.99,
                                                      "top1_agreement": None},
            "per_sample_cosine": [1.0, 1.0], "per_sample_max_abs": [0.0, 0.0], "top1_changed": [],
            "top1_changed_to": [], "fp16_range": None, "outputs": [], "verified_at": "2026-01-01T00:00:00+00:00"}


def _latency(precision, backend="onnxruntime", artifact="model.onnx"):
    return {"precision": precision, "backend": backend, "provider": "cpu" if backend == "onnxruntime" else "gpu",
            "artifact": artifact, "batch": 1, "threads": None, "p50_ms": 1.0, "p90_ms": 1.5, "p99_ms": 2.0,
            "mean_ms": 1.1, "min_ms": 0.9, "max_ms": 2.1, "throughput_ips": 900.0, "iterations": 10, "warmup": 1,
            "measured_at": "2026-01-01T00:00:00+00:00"}


def _accuracy_row(precision, backend="onnxruntime"):
    return {"backend": backend, "provider": "cpu", "precision": precision, "samples": 10, "top1": 0.8, "top5": 1.0,
            "top1_drop_points": 0.0, "top5_drop_points": 0.0, "agreement_with_reference": 1.0}


def _lint(file):
    return {"file": file, "passed": True, "errors": 0, "warnings": 0, "summary": "clean", "qdq_nodes": 4,
            "violations": {}, "int8_layers": {"Conv": 2}, "float_layers": {}}


REPORT = {
    "report_version": 1, "model": "net", "weights": {"spec": "none", "random_init": True, "description": "random"},
    "golden": {"samples": 2, "source": "synthetic"}, "reference": "PyTorch FP32",
    "calibration": {"int8": {"method": "minmax", "samples": 8}},
    "results": [_result("fp32"), _result("fp16", backend="tensorrt", provider="gpu"),
                _result("int8", backend="tensorrt", provider="gpu")],
    "golden_names": ["a.png", "b.png"],
    "lint": {"int8": _lint("model.int8.onnx")},
    "benchmarks": {"machine": {"cpu": "X", "arch": "x86_64", "usable_cores": 2},
                   "results": [_latency("fp32"), _latency("int8", artifact="model.int8-cpu.onnx"),
                               _latency("fp16", "tensorrt", "model.fp16.engine"),
                               _latency("fp32", "tensorrt", "model.fp32.engine")]},
    "accuracy": {"data": "val", "layout": "imagefolder", "label_source": "integer labels", "samples": 10,
                 "classes_present": 2, "skipped": 0, "skipped_examples": [],
                 "reference": {"label": "model.onnx FP32", "precision": "fp32", "backend": "onnxruntime",
                               "provider": "cpu", "description": "d", "top1": 0.8, "top5": 1.0},
                 "results": [_accuracy_row("fp32"), _accuracy_row("int8")], "evaluated_at": "t"},
    "sensitivity": [{"rank": 1, "layer": "conv1", "op_type": "Conv", "sqnr_db": 30.0, "output_cosine": 0.999,
                     "top1_agreement": 1.0, "macs_share": 0.5, "kept_float": False}],
    "mixed_precision": {"budget_points": 1.0},
    "engines": {"model.fp16.engine": {"precision": "fp16"}, "model.int8.engine": {"precision": "int8"}},
    "future_section": {"written by": "a newer edgeport"},
    "passed": True,
}


def test_report_json_reads_back_as_it_was_written():
    from runtime.report.document import Report

    report = Report.from_dict(copy.deepcopy(REPORT))
    assert report.to_dict() == REPORT  # every section, and a section this edgeport does not know, kept
    assert json.loads(json.dumps(report.to_dict())) == REPORT


def test_passed_is_derived_from_failures_never_read_from_the_file():
    from runtime.compare import Comparison, Tolerance, compare
    from runtime.report.document import Report

    ref = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    c = compare(ref.copy(), ref, backend="onnxruntime", provider="cpu", precision="fp32", tolerance=Tolerance())
    assert c.passed and c.to_dict()["passed"] is True
    c.failures.append("Q/DQ lint: 1 error(s)")  # what verify does for a lint error: nothing else to patch
    assert not c.passed and c.to_dict()["passed"] is False
    # A report.json claiming "passed" for a result with failures reads as failed.
    edited = dict(_result("fp16", failures=["cosine_min 0.9 < 0.999"]), passed=True)
    assert not Comparison.from_dict(edited).passed
    data = dict(copy.deepcopy(REPORT), results=[_result("fp32"), edited], passed=True)
    assert Report.from_dict(data).to_dict()["passed"] is False
    assert "passed" not in Report().to_dict()  # nothing verified: no verdict at all


@pytest.mark.parametrize("section, value", [
    ("benchmarks", "fast"), ("accuracy", {"reference": "fp32"}), ("lint", {"int8": {"no": "fields"}}),
    ("sensitivity", [{"layer": "conv1"}]), ("results", [{"precision": "fp32"}]),
])
def test_a_malformed_section_is_refused_and_the_file_left_alone(tmp_path, section, value):
    from runtime.errors import BundleError
    from runtime.report.summary import read_report

    path = tmp_path / "report.json"
    text = json.dumps(dict(copy.deepcopy(REPORT), **{section: value}))
    path.write_text(text)
    with pytest.raises(BundleError, match="malformed section"):
        read_report(path)
    assert path.read_text() == text


@dataclasses.dataclass
class _Changes:
    """fp32 and fp16 came out byte-identical, int8 changed; the fp16 engine was kept."""

    golden_same: bool = True
    engines: set = dataclasses.field(default_factory=lambda: {"model.fp16.engine"})
    engine_precisions: set = dataclasses.field(default_factory=lambda: {"fp16"})

    def same(self, precision):
        return precision in ("fp32", "fp16")

    def row_valid(self, precision, backend, artifact, *, golden):
        if not self.same(precision) or (golden and not self.golden_same):
            return False
        if backend != "onnxruntime":
            return artifact in self.engines if artifact else precision in self.engine_precisions
        return True


def test_each_section_carries_over_what_still_holds():
    from runtime.report.document import Report

    carried, notes = Report.from_dict(copy.deepcopy(REPORT)).carry_over(_Changes())
    out = carried.to_dict()
    # ONNX Runtime CPU results are redone by the export; the TensorRT fp16 result's engine was kept.
    assert [(r["backend"], r["precision"]) for r in out["results"]] == [("tensorrt", "fp16")]
    assert out["golden_names"] == ["a.png", "b.png"]
    assert "lint" not in out and "sensitivity" not in out and "mixed_precision" not in out  # int8 changed
    assert [(b["backend"], b["precision"]) for b in out["benchmarks"]["results"]] == \
        [("onnxruntime", "fp32"), ("tensorrt", "fp16")]  # the fp32 engine was not kept
    assert [r["precision"] for r in out["accuracy"]["results"]] == ["fp32"]
    assert out["engines"] == {"model.fp16.engine": {"precision": "fp16"}}
    assert "future_section" not in out and "calibration" not in out and out["model"] is None  # written anew
    assert "section(s) future_section" in notes.dropped
    assert any("model.int8.onnx" in n and "sensitivity" in n for n in notes.dropped)
    assert "the composition of 1 dropped engine(s)" in notes.dropped
    # Sections the new export writes itself are not carried.
    again, _ = Report.from_dict(copy.deepcopy(REPORT)).carry_over(_NothingChanged(), fresh={"accuracy"})
    assert again.accuracy is None and again.sensitivity is not None and again.lint is not None


class _NothingChanged(_Changes):
    def same(self, precision):
        return True


def test_a_changed_reference_drops_labeled_accuracy():
    from runtime.report.document import Report

    class FP32Changed(_Changes):
        def same(self, precision):
            return precision == "fp16"

    carried, notes = Report.from_dict(copy.deepcopy(REPORT)).carry_over(FP32Changed())
    assert carried.accuracy is None
    assert "labeled accuracy (its FP32 reference, model.onnx, changed)" in notes.dropped
