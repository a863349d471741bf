"""INT8 that explains itself, end to end: a failing INT8 export names its culprit layer in the
output, report.json/.md/.html and `verify --json`; the option it suggests makes it pass.

The model is broken in INT8 by construction (tests/fault_models.py: the weight fault of
tests/runtime/test_int8_diagnosis.py, in PyTorch): the culprit is /conv2/Conv and its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke
from fault_models import DEAD_CHANNEL_CULPRIT, DEAD_CHANNEL_NET

NET = DEAD_CHANNEL_NET
CULPRIT = DEAD_CHANNEL_CULPRIT


@pytest.fixture(scope="module")
def net_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("net") / "deadnet.py"
    path.write_text(NET)
    return path


def _export(net_file: Path, out: Path, *extra: str):
    return invoke("export", "--model", f"{net_file}:dead", "--input-size", "16", "--int8", "--engine", "no",
                  "-o", out, *extra)


@pytest.fixture(scope="module")
def failing(net_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("failing")
    result = _export(net_file, out)
    return result, out / "deadnet_dead"


def test_failing_export_prints_the_culprit_its_weights_and_the_option(failing):
    result, _ = failing
    assert result.exit_code == 1, result.output
    text = result.output
    assert f"INT8 diagnosis (int8," in text and f"the error jumps at {CULPRIT} (Conv)" in text
    assert "carried by its weights" in text
    assert f"try: --int8-exclude '{CULPRIT}'" in text
    assert "INT8 diagnosis (int8-cpu," in text  # the CPU graph's names map too


def test_diagnosis_is_in_report_json_md_and_html(failing):
    _, bundle = failing
    section = json.loads((bundle / "report.json").read_text())["int8_diagnosis"]
    assert section["int8"]["layer"] == CULPRIT and section["int8"]["carrier"] == "weights"
    assert [b["layer"] for b in section["int8"]["boundaries"]][:3] == ["/conv1/Conv", CULPRIT, "/conv3/Conv"]
    md = (bundle / "report.md").read_text()
    assert "### Why INT8 failed: the diagnosis" in md and f"`--int8-exclude '{CULPRIT}'`" in md
    page = (bundle / "report.html").read_text()
    assert '<section id="int8-diagnosis">' in page and f"<td>{CULPRIT}</td>" in page


def test_verify_json_carries_the_diagnosis(failing):
    _, bundle = failing
    result = invoke("verify", bundle, "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert sorted(payload["result"]["int8_diagnosis"]) == ["int8", "int8-cpu"]  # fp32 passed: none for it
    diagnosis = payload["result"]["int8_diagnosis"]["int8"]
    assert (diagnosis["layer"], diagnosis["carrier"]) == (CULPRIT, "weights")
    assert diagnosis["weights_only"]["layer_cosine"] < 0.9 < diagnosis["activations_only"]["layer_cosine"]


def test_the_suggested_exclude_makes_export_and_verify_pass(net_file, tmp_path):
    import onnx

    from runtime.graph.index import kept_float_names

    result = _export(net_file, tmp_path, "--int8-exclude", CULPRIT)
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "deadnet_dead"
    assert kept_float_names(onnx.load(str(bundle / "model.int8.onnx"))) == [CULPRIT]
    assert "int8_diagnosis" not in json.loads((bundle / "report.json").read_text())
    again = invoke("verify", bundle)
    assert again.exit_code == 0, again.output
    assert "INT8 diagnosis" not in again.output


def test_budget_that_cannot_be_met_prints_the_diagnosis(net_file, tmp_path):
    # A tolerance no INT8 layer can meet: the budget search fails, and says where full INT8 breaks.
    result = _export(net_file, tmp_path, "--max-drop", "1", "--max-float-layers", "1",
                     "--tol", "int8.cosine_min=0.999999")
    assert result.exit_code != 0 and "budget not met" in result.output, result.output
    assert f"the error jumps at {CULPRIT}" in result.output


@pytest.mark.parametrize("args, words", [(("--int8-exclude", "Conv"), "only mean"),
                                         (("--int8", "--int8-exclude", "/nope/Conv"), "no node of the model")])
def test_int8_exclude_usage_errors(net_file, tmp_path, args, words):
    result = invoke("export", "--model", f"{net_file}:dead", "--input-size", "16", "--engine", "no", "-o", tmp_path,
                    *args)
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_op_type_excludes_the_layers_reading_a_sigmoid_gated_mul():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from exporter.int8.exclude import excluded_nodes

    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="before"),
             helper.make_node("Sigmoid", ["a"], ["s"], name="gate"),
             helper.make_node("Mul", ["a", "s"], ["m"], name="se_mul"),
             helper.make_node("Conv", ["m", "w"], ["b"], name="after_gate"),
             helper.make_node("Conv", ["b", "w"], ["y"], name="last")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w])
    model = helper.make_model(graph)
    assert excluded_nodes(model, ["Mul"]) == ["after_gate"]
    assert excluded_nodes(model, ["Conv"]) == ["before", "after_gate", "last"]
    assert excluded_nodes(model, ["last"]) == ["last"]
    assert onnx.checker.check_model(model) is None
