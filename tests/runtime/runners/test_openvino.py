"""`--backend openvino` (runtime/runners/openvino.py): which artifacts it runs, how, and which
it refuses. The expected outputs come from ONNX Runtime on the same artifact, an independent
runtime; the tests skip with the reason where OpenVINO is not installed (edgeport[openvino])."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import edit_manifest, invoke

RESNET18 = ("--model", "resnet18", "--weights", "none", "--input-size", "64", "--int8")


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install 'edgeport[openvino]')")


@pytest.fixture(scope="module")
def ov_bundle(exported):
    """resnet18 at 64 px with both INT8 graphs and NNCF's model.int8-ov.onnx."""
    _needs("openvino")
    _needs("nncf")
    return exported(*RESNET18, "--fp16", "--int8-openvino")


def _golden(bundle):
    from runtime.bundle import Bundle

    b = Bundle.open(bundle)
    return b, np.ascontiguousarray(b.golden().inputs(b.preprocessing)[:4], dtype=np.float32)


def _run(b, precision, x, **target):
    from runtime.runners import Target, open_runner

    with open_runner(b, precision, Target(**target)) as runner:
        return runner.resolved.path.name, runner.infer(x)[b.output_name]


def test_openvino_fp32_matches_onnxruntime_at_fp32_precision(ov_bundle):
    """fp32 runs with INFERENCE_PRECISION_HINT f32: on a bf16-capable CPU the plugin's default
    would miss the fp32 tolerance (relative error ~1e-3)."""
    from runtime.compare import DEFAULT_TOLERANCES

    b, x = _golden(ov_bundle)
    _, ours = _run(b, "fp32", x, backend="openvino", threads=2)
    _, ort = _run(b, "fp32", x)
    rel = np.abs(ours - ort).max() / np.abs(ort).max()
    assert rel <= DEFAULT_TOLERANCES["fp32"].max_rel_diff, rel


@pytest.mark.parametrize("precision, artifact", [("int8", "model.int8-ov.onnx"), ("int8-cpu", "model.int8-cpu.onnx"),
                                                 ("fp16", "model.fp16.onnx")])
def test_openvino_agrees_with_onnxruntime_on_each_artifact_it_accepts(ov_bundle, precision, artifact):
    from runtime.compare import centered_cosine

    b, x = _golden(ov_bundle)
    name, ours = _run(b, precision, x, backend="openvino", threads=2)
    assert name == artifact
    _, ort = _run(b, {"int8": "int8-ov"}.get(precision, precision), x)
    assert centered_cosine(ours, ort).min() >= 0.999


def _without(bundle, *keys):
    def drop(manifest):
        for key in keys:
            del manifest["artifacts"][key]

    edit_manifest(bundle, drop)
    return bundle


def test_int8_means_the_cpu_graph_without_the_openvino_one(ov_bundle, copy_bundle):
    b, x = _golden(_without(copy_bundle(ov_bundle), "int8-ov"))
    name, out = _run(b, "int8", x, backend="openvino")
    _, ort = _run(b, "int8-cpu", x)
    assert name == "model.int8-cpu.onnx"
    from runtime.compare import centered_cosine

    assert centered_cosine(out, ort).min() >= 0.999


def test_tensorrt_int8_graph_is_refused_with_the_reason(ov_bundle, copy_bundle):
    result = invoke("verify", str(ov_bundle), "--backend", "openvino", "--precision", "int8", "--qdq")
    assert result.exit_code == 2, result.output
    assert "FP16 regions" in result.output and "model.int8.onnx" in result.output
    only_trt = _without(copy_bundle(ov_bundle), "int8-ov", "int8-cpu")
    result = invoke("bench", str(only_trt), "--backend", "openvino", "--precision", "int8", "--iterations", "1")
    assert result.exit_code == 2 and "FP16 regions" in result.output, result.output


def test_verify_all_on_openvino_checks_every_artifact_but_the_tensorrt_graph(ov_bundle, copy_bundle):
    bundle = copy_bundle(ov_bundle)
    result = invoke("verify", str(bundle), "--backend", "openvino", "--threads", "2", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["result"]["results"]
    assert sorted(r["precision"] for r in rows) == ["fp16", "fp32", "int8-cpu", "int8-ov"]
    assert all(r["backend"] == "openvino" and r["passed"] for r in rows), rows


def test_bench_and_predict_run_on_openvino(ov_bundle, copy_bundle, tmp_path):
    from PIL import Image

    bundle = copy_bundle(ov_bundle)
    result = invoke("bench", str(bundle), "--backend", "openvino", "--precision", "int8", "--batch", "1,2",
                    "--iterations", "2", "--warmup", "1", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["result"]["results"]
    assert [(r["backend"], r["artifact"], r["batch"], r["threads"]) for r in rows] == [
        ("openvino", "model.int8-ov.onnx", 1, 1), ("openvino", "model.int8-ov.onnx", 2, 1)]
    image = tmp_path / "x.png"
    Image.fromarray(np.full((70, 90, 3), 120, np.uint8)).save(image)
    result = invoke("predict", str(bundle), str(image), "--backend", "openvino", "--precision", "int8")
    assert result.exit_code == 0 and "(int8-ov, openvino/cpu)" in result.output, result.output


def _compiled_batch(request) -> int:
    shape = request.get_compiled_model().inputs[0].get_partial_shape()
    assert shape.is_static, shape  # compiled for one shape, not OpenVINO's dynamic path
    return shape[0].get_length()


def test_each_batch_compiles_a_static_model_with_its_hint_and_threads(ov_bundle):
    from runtime.runners.openvino import OpenVINORunner

    b, x = _golden(ov_bundle)
    runner = OpenVINORunner(b.artifact_path("int8-ov"), threads=1)
    assert runner.inputs[0].shape[0] is None  # the artifact itself keeps its dynamic batch
    for n in (1, 2, 3):
        runner.infer(x[:n])
    assert all(len(r) == 1 for r in runner._requests.values())  # one thread: one stream, one request
    compiled = {_compiled_batch(r[0]): r[0].get_compiled_model() for r in runner._requests.values()}
    assert sorted(compiled) == [1, 2, 3]
    for batch, c in compiled.items():
        assert str(c.get_property("PERFORMANCE_HINT")) == ("LATENCY" if batch == 1 else "THROUGHPUT")
        assert c.get_property("INFERENCE_NUM_THREADS") == 1
        assert c.get_property("NUM_STREAMS") == 1  # one synchronous request: all threads on it


def test_a_batch_that_splits_evenly_runs_as_one_request_per_stream(ov_bundle):
    from runtime.runners.openvino import OpenVINORunner, streams_for

    # (batch, threads) -> streams: the largest divisor of the batch not above the threads
    assert [streams_for(b, t) for b, t in ((1, 2), (2, 2), (3, 2), (4, 2), (8, 2), (6, 4), (7, 4), (8, 16))] == \
        [1, 2, 1, 2, 2, 3, 1, 8]
    b, x = _golden(ov_bundle)
    runner = OpenVINORunner(b.artifact_path("int8-ov"), threads=2)
    for n in (1, 3, 4):
        runner.infer(x[:n])
    requests = {shapes[0][0]: r for shapes, r in runner._requests.items()}
    assert {n: len(r) for n, r in requests.items()} == {1: 1, 3: 1, 4: 2}
    part = requests[4][0].get_compiled_model()
    assert _compiled_batch(requests[4][0]) == 2 and requests[4][1].get_compiled_model() is not None
    assert part.get_property("NUM_STREAMS") == 2 and part.get_property("INFERENCE_NUM_THREADS") == 2
    assert _compiled_batch(requests[3][0]) == 3 and requests[3][0].get_compiled_model().get_property("NUM_STREAMS") == 1


def test_static_batches_match_onnxruntime_row_by_row(ov_bundle):
    """Every batch size, interleaved, gives ONNX Runtime's numbers for its own rows: a request
    compiled for one shape never serves another, an output is not overwritten by the next call
    of its request (rows 1-3 after rows 0-2), and a strided view is read as its values."""
    from runtime.bundle import Bundle
    from runtime.compare import DEFAULT_TOLERANCES
    from runtime.runners.openvino import OpenVINORunner

    b = Bundle.open(ov_bundle)
    x = np.ascontiguousarray(b.golden().inputs(b.preprocessing)[:6], dtype=np.float32)
    _, ort = _run(b, "fp32", x)
    runner = OpenVINORunner(b.artifact_path("fp32"), threads=2, precision_hint="f32")
    rows = [slice(0, 3), slice(0, 1), slice(0, 4), slice(2, 4), slice(1, 4), slice(0, 6, 2)]
    outs = [runner.infer(x[r])[b.output_name] for r in rows]
    for r, out in zip(rows, outs):
        assert out.shape == ort[r].shape
        rel = np.abs(out - ort[r]).max() / np.abs(ort[r]).max()
        assert rel <= DEFAULT_TOLERANCES["fp32"].max_rel_diff, (r, rel)


def test_compiled_models_are_bounded_least_recently_used_first(ov_bundle):
    from runtime.bundle import Bundle
    from runtime.compare import centered_cosine
    from runtime.runners.openvino import COMPILED_SHAPES, OpenVINORunner

    b = Bundle.open(ov_bundle)
    x = np.ascontiguousarray(b.golden().inputs(b.preprocessing), dtype=np.float32)
    sizes = list(range(2, COMPILED_SHAPES + 3))
    assert len(x) >= sizes[-1]
    runner = OpenVINORunner(b.artifact_path("int8-ov"), threads=1)  # batch 1 compiled at open
    first = runner.infer(x[:1])[b.output_name]
    for n in sizes:
        runner.infer(x[:n])
        runner.infer(x[:1])  # batch 1 stays the most recently used
    kept = sorted(_compiled_batch(r[0]) for r in runner._requests.values())
    assert kept == sorted([1, *sizes[-(COMPILED_SHAPES - 1):]])
    again = runner.infer(x[:sizes[0]])[b.output_name]  # evicted: compiled again, same numbers
    assert sorted(_compiled_batch(r[0]) for r in runner._requests.values()) == sorted([1, sizes[0], *sizes[-2:]])
    assert centered_cosine(again[:1], first).min() >= 0.9999


def test_missing_openvino_is_a_dependency_error_with_the_install_hint(monkeypatch, tmp_path):
    from runtime.errors import DependencyError
    from runtime.runners.openvino import OpenVINORunner

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(DependencyError) as err:
        OpenVINORunner(tmp_path / "model.onnx")
    assert "edgeport[openvino]" in err.value.hint


def test_openvino_refuses_onnxruntime_providers(ov_bundle):
    from runtime.errors import UsageError
    from runtime.runners import Target, open_runner
    from runtime.bundle import Bundle

    with pytest.raises(UsageError, match="ONNX Runtime execution provider"):
        open_runner(Bundle.open(ov_bundle), "fp32", Target(backend="openvino", provider="cuda"))
