"""The conformance matrix's representative subset (issue 19): scripts/conformance.py's own code
on one small model per family (ResNet, DenseNet, MobileNetV3 with SE blocks, RegNet) at 32 px,
through the real CLI: export, verify and TensorRT-RTX builds for 7.5, 8.6 and 12.0.

Every cell must be a pass or a failure with a one-paragraph reason, never a traceback or "bug
in edgeport"; Turing's fp32/int8 cells are the documented refusal (the classifier's Gemm), and
the layer counts are the ones the engines' sidecars on disk record. The full zoo is `make
conformance` (hours on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.rtx]

SUBSET = ("resnet18", "densenet121", "mobilenet_v3_small", "regnet_x_400mf")


@pytest.fixture(scope="module")
def conformance():
    spec = importlib.util.spec_from_file_location("conformance", REPO / "scripts" / "conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def matrix(conformance, tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    models = ",".join((*SUBSET, "vit_h_14"))  # vit_h_14: 633M parameters, listed as skipped
    args = ["--models", models, "--results", str(root / "results"), "--docs", str(root / "docs"), "--small", "32",
            "--keep-bundles"]
    assert conformance.main(args) == 0
    return root, args


def test_every_cell_is_a_pass_or_a_reason(matrix):
    root, _ = matrix
    data = json.loads((root / "docs" / "conformance.json").read_text())
    by_name = {m["model"]: m for m in data["models"]}
    assert set(by_name) == {*SUBSET, "vit_h_14"} and data["pending"] == []
    assert "633M parameters" in by_name["vit_h_14"]["skipped"]
    for name in SUBSET:
        record = by_name[name]
        assert record["export"]["status"] == "pass", record["export"]
        assert set(record["verify"]["precisions"]) == {"fp32", "fp16", "int8", "int8-cpu"}
        for precision, cell in record["verify"]["precisions"].items():
            assert cell["status"] == "pass" or cell["reason"], (name, precision, cell)
        for precision, builds in record["build"].items():
            for cc, cell in builds.items():
                # Turing included: each model here ends in a Gemm, built there as a 1x1 convolution
                assert cell["status"] == "pass", (name, precision, cc, cell)


def test_layer_counts_are_the_sidecars(matrix):
    root, _ = matrix
    data = json.loads((root / "docs" / "conformance.json").read_text())
    for record in (m for m in data["models"] if not m.get("skipped")):
        bundle = root / "results" / "bundles" / record["model"]
        for precision, builds in record["build"].items():
            for cc, cell in builds.items():
                if cell["status"] != "pass":
                    continue
                (sidecar,) = bundle.glob(f"model.{precision}.sm{cc.replace('.', '')}.rtx*.engine.json")
                layers = json.loads(sidecar.read_text())["layers"]["compute_layers_by_precision"]
                assert cell["layers"] == layers and sum(layers.values()) > 0
                if precision == "fp16":
                    assert set(layers) == {"fp16"}, (record["model"], cc, layers)


def test_the_markdown_has_a_row_per_model_and_precision_and_a_rerun_resumes(conformance, matrix):
    root, args = matrix
    md = (root / "docs" / "conformance.md").read_text()
    for name in SUBSET:
        for precision in ("fp32", "fp16", "int8", "int8-cpu"):
            assert sum(line.startswith(f"| {name} (") and f"| {precision} |" in line
                       for line in md.splitlines()) == 1, (name, precision)
    assert "skipped: too large" in md and "Pending" not in md and "Wall time so far" in md
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")}
    assert conformance.main(args) == 0  # everything is kept: nothing reruns
    assert {p.name: p.stat().st_mtime_ns for p in (root / "results").glob("*.json")} == stamps
