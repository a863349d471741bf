"""runtime/runners: the ONNX Runtime runner takes a path, a graph or a session; the one batched-run helper."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.errors import EdgeportError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _graph(reduce_all: bool = False):
    """y = 2x (per sample), and s = sum(x) over every axis when ``reduce_all`` (no batch axis)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Mul", ["x", "two"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]
    if reduce_all:
        nodes.append(helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0))
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, []))
    graph = helper.make_graph(nodes, "g", [x], outputs, initializer=[two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("form", ["path", "proto", "bytes", "session"])
def test_runner_takes_a_path_a_graph_or_a_session(form, tmp_path):
    from runtime.runners.onnxruntime import OnnxRuntimeRunner, create_session

    model = _graph()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    source = {"path": path, "proto": model, "bytes": model.SerializeToString(),
              "session": create_session(path)}[form]
    runner = OnnxRuntimeRunner(source)
    x = np.arange(21, dtype=np.float32).reshape(7, 3)
    out = runner.infer_batched(x, 3)  # batches of 3, 3, 1
    np.testing.assert_array_equal(out["y"], x * 2)
    assert list(out) == ["y"]


def test_infer_batched_counts_progress_and_selects_outputs():
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    class Count:
        def __init__(self):
            self.seen = []

        def update(self, n):
            self.seen.append(n)

    progress = Count()
    runner = OnnxRuntimeRunner(_graph())
    x = np.ones((5, 3), np.float32)
    out = runner.infer_batched(x, 2, outputs=["y"], progress=progress)
    assert progress.seen == [2, 2, 1] and out["y"].shape == (5, 3)


def test_infer_batched_refuses_an_output_without_batch_axis():
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(_graph(reduce_all=True))
    with pytest.raises(EdgeportError, match=r"output 's' has shape \[\] for a batch of 2: it has no batch axis"):
        runner.infer_batched(np.ones((4, 3), np.float32), 2)


def test_infer_batched_names_a_missing_output():
    from runtime.runners.base import MissingOutputError
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(_graph())
    with pytest.raises(MissingOutputError, match="'logits'"):
        runner.infer_batched(np.ones((2, 3), np.float32), 2, outputs=["logits"])
