"""`edgeport bench`, the CPU INT8 artifact (model.int8-cpu.onnx) and INT8 precision selection.

Timing values are never compared with thresholds here (the machine is shared): only their
structure and internal consistency. Speed targets are checked by `make bench`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke

SMALL_INT8 = ("--model", "resnet18", "--weights", "none", "--input-size", "64", "--int8", "--max-batch", "8",
              "--calib-samples", "32")


@pytest.fixture(scope="module")
def int8_bundle(exported):
    return exported(*SMALL_INT8)


# -- the CPU INT8 artifact ------------------------------------------------------------------------
def test_export_int8_writes_cpu_artifact_that_verifies(int8_bundle):
    import onnx

    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():  # independent of runtime.machine
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    assert manifest["artifacts"]["int8-cpu"]["file"] == "model.int8-cpu.onnx"
    assert manifest["artifacts"]["int8"]["file"] == "model.int8.onnx"
    info = manifest["int8_cpu"]
    assert info["format"] == "QDQ" and info["method"] == "minmax" and info["samples"] == 32
    assert info["reduce_range"] is (not vnni)  # 7-bit weights exactly when the CPU lacks an int8 dot product
    assert "int8_cpu" in manifest["timings_s"]
    ops = [n.op_type for n in onnx.load(str(int8_bundle / "model.int8-cpu.onnx")).graph.node]
    assert ops.count("Conv") == 20 and ops.count("QuantizeLinear") > 20  # Q/DQ around every conv
    # What ONNX Runtime CPU runs after fusing the Q/DQ pairs: every conv in INT8, float only at the edges.
    runs = info["ort_cpu_ops"]
    assert runs["QLinearConv"] == 20 and "Conv" not in runs and runs["QLinearAdd"] == 8 and runs["QGemm"] == 1
    # One QuantizeLinear for the input; the logits leave QGemm in float (no uint8 grid clips them).
    assert runs["QuantizeLinear"] == 1 and "DequantizeLinear" not in runs
    assert info["float_graph_outputs"] == 1
    assert info["float_compute_ops_at_runtime"] == {}
    report = json.loads((int8_bundle / "report.json").read_text())
    rows = {r["precision"]: r for r in report["results"]}
    assert rows["int8-cpu"]["passed"] and rows["int8-cpu"]["cosine_min"] >= 0.99
    assert rows["int8-cpu"]["tolerance"]["cosine_min"] == 0.99
    assert "Q/DQ lint" not in " ".join(rows["int8-cpu"]["failures"])  # TensorRT's rules are not its rules


@pytest.mark.parametrize("reduce_range", [False, True])
def test_quantize_cpu_reduce_range_uses_7_bit_weights(int8_bundle, tmp_path, reduce_range):
    """Without VNNI the weights must fit 7 bits (u8s8 pairwise int16 sums cannot saturate)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from exporter.int8.calibration_file import CalibrationRanges
    from exporter.int8.cpu_int8 import quantize_cpu
    from runtime.bundle import Bundle

    b = Bundle.open(int8_bundle)
    pre = b.preprocessing
    ranges = CalibrationRanges.read(int8_bundle / "calibration.json").observed
    qmodel, stats = quantize_cpu(onnx.load(str(b.artifact_path("fp32"))), ranges, b.input_name,
                                 reduce_range=reduce_range, tmp=tmp_path)
    assert stats["ort_cpu_ops"]["QLinearConv"] == 20
    inits = {i.name: i for i in qmodel.graph.initializer}
    conv_weights = {n.input[1] for n in qmodel.graph.node if n.op_type == "Conv"}
    dq_of = {n.output[0]: n.input[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    weights = [numpy_helper.to_array(inits[dq_of[w]]) for w in conv_weights]
    assert len(weights) == 20 and all(w.dtype == np.int8 for w in weights)
    peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert peak <= 64 if reduce_range else peak == 127
    golden = b.golden()
    sess = ort.InferenceSession(qmodel.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {b.input_name: golden.inputs(pre)})[0]
    a = out.astype(np.float64) - out.mean(axis=1, keepdims=True)  # centered cosine, computed here
    r = golden.outputs.astype(np.float64) - golden.outputs.mean(axis=1, keepdims=True)
    cosine = (a * r).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(r, axis=1))
    assert cosine.min() >= 0.99


def _bn_graph(rng):
    """input -> Conv(a) -> BN1 (foldable by ORT) ; Concat(a, input) -> BN2 -> Relu -> Conv(b)."""
    from onnx import TensorProto, helper, numpy_helper

    def init(name, arr):
        return numpy_helper.from_array(arr.astype(np.float32), name)

    c_in, c_mid = 3, 4
    c_cat = c_in + c_mid
    inits = [init("wa", rng.normal(size=(c_mid, c_in, 3, 3))), init("wb", rng.normal(size=(5, c_cat, 1, 1)))]
    for tag, c in (("1", c_mid), ("2", c_cat)):
        inits += [init(f"g{tag}", rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c)), init(f"b{tag}", rng.normal(size=c)),
                  init(f"m{tag}", rng.normal(size=c)), init(f"v{tag}", rng.uniform(0.1, 3, c))]
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "g1", "b1", "m1", "v1"], ["a_bn"], epsilon=1e-5),
        helper.make_node("Concat", ["a_bn", "x"], ["cat"], axis=1),
        helper.make_node("BatchNormalization", ["cat", "g2", "b2", "m2", "v2"], ["cat_bn"], epsilon=1e-3),
        helper.make_node("Relu", ["cat_bn"], ["r"]),
        helper.make_node("Conv", ["r", "wb"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5, 6, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_preactivation_bn_becomes_an_exact_depthwise_conv():
    import onnxruntime as ort

    from exporter.graph.rewrites import fold_preactivation_bn

    rng = np.random.default_rng(0)
    model = _bn_graph(rng)
    before = model.SerializeToString()
    assert fold_preactivation_bn(model) == 1  # BN2 only: BN1 follows a Conv (ORT folds it)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("BatchNormalization") == 1 and ops.count("Conv") == 3
    dw = next(n for n in model.graph.node if n.op_type == "Conv" and n.output[0] == "cat_bn")
    assert {a.name: a.i for a in dw.attribute if a.name == "group"} == {"group": 7}
    assert not {"g2", "b2", "m2", "v2"} & {i.name for i in model.graph.initializer}  # old params dropped
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    ref, out = run(before), run(model.SerializeToString())
    assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def test_densenet_int8_cpu_graph_has_no_float_islands(tmp_path):
    """A tiny torchvision DenseNet: every BN->ReLU->Conv island runs in INT8 (no BN, no Q/DQ inside)."""
    import onnx

    factory = tmp_path / "tiny_densenet.py"
    factory.write_text("from torchvision.models import DenseNet\n\n\ndef build(num_classes=10):\n"
                       "    return DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2,\n"
                       "                    num_classes=num_classes)\n")
    result = invoke("export", "--model", f"{factory}:build", "--num-classes", "10", "--input-size", "32",
                    "--weights", "none", "--int8", "--calib-samples", "16", "--max-batch", "4",
                    "--output", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    (bundle,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.name.startswith(".")]
    manifest = json.loads((bundle / "manifest.json").read_text())
    # 2 + 2 dense layers (norm1 each), 1 transition, norm5: 6 pre-activation BNs.
    assert manifest["int8_cpu"]["preactivation_bn_as_dwconv"] == 6
    ops = [n.op_type for n in onnx.load(str(bundle / "model.int8-cpu.onnx")).graph.node]
    assert "BatchNormalization" not in ops
    runs = manifest["int8_cpu"]["ort_cpu_ops"]  # what ONNX Runtime CPU runs after fusing Q/DQ
    assert "BatchNormalization" not in runs and "Conv" not in runs and runs["QLinearConcat"] == 4
    assert "DequantizeLinear" not in runs and runs["QuantizeLinear"] == 1  # logits: float out of QGemm
    assert runs.get("Transpose", 0) <= 2  # NCHW -> NHWC once at the input (no BN islands)
    rows = {r["precision"]: r for r in json.loads((bundle / "report.json").read_text())["results"]}
    assert rows["int8-cpu"]["passed"] and rows["int8-cpu"]["cosine_min"] >= 0.99


def test_int8_cpu_keeps_top1_on_a_trained_model(trained_model, exported):
    """Random weights prove nothing about top-1: on a trained net the CPU graph agrees >= 97 %."""
    bundle = exported(*trained_model.export_args(), "--int8", "--calib-data", str(trained_model.calib))
    rows = {r["precision"]: r for r in json.loads((bundle / "report.json").read_text())["results"]}
    assert rows["int8-cpu"]["samples"] == 70
    assert rows["int8-cpu"]["top1_agreement"] >= 0.97, rows["int8-cpu"]
    assert rows["int8-cpu"]["cosine_min"] >= 0.99 and rows["int8-cpu"]["passed"]


# -- precision selection --------------------------------------------------------------------------
ALL4 = ["fp32", "fp16", "int8", "int8-cpu"]


@pytest.mark.parametrize("requested, kwargs, expected", [
    (("int8",), {}, ["int8-cpu"]),
    (("int8",), {"qdq": True}, ["int8"]),
    (("int8",), {"backend": "tensorrt", "provider": "cpu"}, ["int8"]),
    (("int8",), {"provider": "cuda"}, ["int8"]),
    (("int8",), {"provider": "tensorrt"}, ["int8"]),
    (("int8-cpu",), {}, ["int8-cpu"]),
    (("int8", "int8-cpu", "fp32"), {}, ["int8-cpu", "fp32"]),
    (("all",), {}, ALL4),
    (("all",), {"qdq": True}, ALL4),
    (("all",), {"provider": "cuda"}, ["fp32", "fp16", "int8"]),
    ((), {}, ALL4),
])
def test_artifact_selection(requested, kwargs, expected):
    from runtime.precision import select_artifacts

    assert select_artifacts(ALL4, requested, **kwargs) == expected


def test_artifact_selection_refusals():
    from runtime.errors import UsageError
    from runtime.precision import select_artifacts

    # A bundle exported before int8-cpu existed: int8 stays the Q/DQ graph.
    assert select_artifacts(["fp32", "int8"], ("int8",)) == ["int8"]
    with pytest.raises(UsageError, match="no int8-cpu artifact"):
        select_artifacts(["fp32", "int8"], ("int8-cpu",))
    with pytest.raises(UsageError, match="does not run"):
        select_artifacts(ALL4, ("int8-cpu",), backend="tensorrt")
    with pytest.raises(UsageError, match="does not run"):
        select_artifacts(ALL4, ("int8-cpu",), provider="cuda")
    with pytest.raises(UsageError, match="--qdq"):
        select_artifacts(ALL4, ("int8-cpu",), qdq=True)
    with pytest.raises(UsageError, match="no int8 artifact"):
        select_artifacts(["fp32"], ("int8",))


def test_verify_and_predict_pick_the_cpu_graph_for_int8(int8_bundle, copy_bundle):
    bundle = copy_bundle(int8_bundle)
    result = invoke("verify", bundle, "--precision", "int8")
    assert result.exit_code == 0, result.output
    table = [ln for ln in result.output.splitlines() if ln.startswith("| int8")]
    assert len(table) == 1 and table[0].startswith("| int8-cpu |")
    result = invoke("verify", bundle, "--precision", "int8", "--qdq")
    assert result.exit_code == 0, result.output
    table = [ln for ln in result.output.splitlines() if ln.startswith("| int8")]
    assert len(table) == 1 and table[0].startswith("| int8 |")
    result = invoke("verify", bundle)  # all: both INT8 graphs
    assert result.exit_code == 0, result.output
    assert {ln.split("|")[1].strip() for ln in result.output.splitlines() if ln.startswith("| int8")} == {
        "int8", "int8-cpu"}
    from conftest import REPO

    image = REPO / "exporter" / "assets" / "golden" / "coffee.jpg"
    for args, expected in ((("--precision", "int8"), "int8-cpu"), (("--precision", "int8", "--qdq"), "int8"),
                           (("--precision", "int8-cpu"), "int8-cpu")):
        result = invoke("predict", bundle, image, "--json", *args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["result"]["predictions"][0]["precision"] == expected
    result = invoke("predict", bundle, image, "--precision", "int8-cpu", "--backend", "tensorrt")
    assert result.exit_code == 2 and "does not run" in result.output


def test_cpu_flags_and_vnni_detection():
    from runtime.machine import has_vnni, parse_cpuinfo

    x86 = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni\n"
    info = parse_cpuinfo(x86)
    assert info["model"] == "Intel(R) Xeon(R) Gold 6338" and "avx512_vnni" in info["flags"]
    assert has_vnni(info["flags"])
    assert has_vnni({"avx2", "avx_vnni"}) and has_vnni({"amx_int8", "amx_tile"})
    assert not has_vnni({"sse4_2", "avx2", "fma"})
    assert not has_vnni(set())  # unknown flags: the safe choice (reduce_range)
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp\nCPU part\t: 0xd42\n"
    assert parse_cpuinfo(arm)["flags"] == {"fp", "asimd", "asimddp"}


def test_int8_cpu_warning_without_vnni():
    from types import SimpleNamespace

    from runtime.manifest import Int8CpuInfo
    from runtime.machine import int8_cpu_warning

    manifest = SimpleNamespace(int8_cpu=Int8CpuInfo(reduce_range=False, quantized_on={"cpu": "AMD EPYC", "vnni": True}))
    message = int8_cpu_warning(manifest, flags={"avx2"})
    assert message and "AMD EPYC" in message and "reduce_range" in message
    assert int8_cpu_warning(manifest, flags={"avx512_vnni"}) is None
    assert int8_cpu_warning(SimpleNamespace(int8_cpu=Int8CpuInfo(reduce_range=True)), flags={"avx2"}) is None
    assert int8_cpu_warning(SimpleNamespace(int8_cpu=None), flags={"avx2"}) is None


# -- timing and statistics ------------------------------------------------------------------------
class FakeClock:
    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def test_time_calls_counts_warmup_iterations_and_duration():
    from runtime.benchmark import MIN_ITERATIONS, time_calls

    calls = []
    samples = time_calls(lambda: calls.append(1), warmup=3, iterations=7, duration=None, clock=FakeClock(0.001))
    assert len(samples) == 7 and len(calls) == 10
    calls.clear()
    clock = FakeClock(0.001)
    samples = time_calls(lambda: calls.append(1), warmup=0, iterations=None, duration=0.05, clock=clock)
    assert len(calls) == len(samples) >= MIN_ITERATIONS
    assert 0.05 <= clock.t <= 0.05 + 0.004  # stopped within one call of the duration
    samples = time_calls(lambda: None, warmup=0, iterations=None, duration=1e-9, clock=FakeClock(0.001))
    assert len(samples) == MIN_ITERATIONS


def test_latency_stats():
    from runtime.benchmark import latency_stats

    stats = latency_stats([0.001, 0.002, 0.003, 0.004], batch=8)
    assert stats["p50_ms"] == pytest.approx(2.5) and stats["mean_ms"] == pytest.approx(2.5)
    assert stats["p90_ms"] == pytest.approx(3.7) and stats["p99_ms"] == pytest.approx(3.97)
    assert stats["throughput_ips"] == pytest.approx(8 * 4 / 0.010)
    assert stats["iterations"] == 4 and stats["min_ms"] == 1.0 and stats["max_ms"] == 4.0


def _check_result(r, batch):
    assert r["batch"] == batch and r["iterations"] == 5
    assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["max_ms"]
    assert r["min_ms"] <= r["mean_ms"] <= r["max_ms"]
    # throughput = images over the summed call time = batch / mean latency
    assert r["throughput_ips"] == pytest.approx(batch * 1000.0 / r["mean_ms"], rel=1e-3)
    for field in ("backend", "provider", "precision", "artifact", "threads"):
        assert field in r


def test_bench_json_report_merge(int8_bundle, copy_bundle, tmp_path):
    bundle = copy_bundle(int8_bundle)
    out = tmp_path / "bench.json"
    result = invoke("bench", bundle, "--batch", "1,2", "--threads", "1", "--warmup", "1", "--iterations", "5",
                    "--save-json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["model"] == "resnet18"
    machine = doc["machine"]
    assert machine["threads"] == 1 and machine["usable_cores"] >= 1 and machine["cpu"]
    assert "onnxruntime" in machine["versions"] and isinstance(machine["vnni"], bool)
    assert len(machine["load_avg_before"]) == 3 and len(machine["load_avg_after"]) == 3
    runs = doc["results"]
    assert [(r["precision"], r["batch"]) for r in runs] == [
        (p, b) for p in ("fp32", "int8", "int8-cpu") for b in (1, 2)]
    artifacts = {r["precision"]: r["artifact"] for r in runs}
    assert artifacts == {"fp32": "model.onnx", "int8": "model.int8.onnx", "int8-cpu": "model.int8-cpu.onnx"}
    for r in runs:
        _check_result(r, r["batch"])
        assert r["backend"] == "onnxruntime" and r["provider"] == "cpu" and r["threads"] == 1
    report = json.loads((bundle / "report.json").read_text())
    assert report["benchmarks"]["results"] == runs and report["benchmarks"]["machine"] == machine
    assert report["results"]  # the verification results are kept
    md = (bundle / "report.md").read_text()
    assert "### Latency" in md and "Measured on:" in md
    assert "latency" in (bundle / "report.html").read_text().lower()
    assert "| int8-cpu | onnxruntime/cpu | model.int8-cpu.onnx | 2 | 1 |" in result.output

    # Again for fp32 at batch 1: that row is replaced, the others are kept.
    result = invoke("bench", bundle, "--precision", "fp32", "--threads", "1", "--warmup", "0", "--iterations", "5")
    assert result.exit_code == 0, result.output
    merged = json.loads((bundle / "report.json").read_text())["benchmarks"]["results"]
    assert len(merged) == 6
    fp32_b1 = [r for r in merged if r["precision"] == "fp32" and r["batch"] == 1]
    assert len(fp32_b1) == 1 and fp32_b1[0] != runs[0] and fp32_b1[0]["warmup"] == 0
    # --qdq times the TensorRT-style graph as "int8"; a different thread count is a new row.
    result = invoke("bench", bundle, "--precision", "int8", "--qdq", "--threads", "2", "--warmup", "0",
                    "--iterations", "5", "-q")
    assert result.exit_code == 0, result.output
    merged = json.loads((bundle / "report.json").read_text())["benchmarks"]["results"]
    assert len(merged) == 7 and merged[-1]["precision"] == "int8" and merged[-1]["threads"] == 2


def test_merge_drops_other_machines():
    from runtime.benchmark import BenchmarkResult, Latency

    def row(precision):
        return Latency(precision=precision, backend="onnxruntime", provider="cpu", artifact="model.onnx", batch=1,
                       threads=None, p50_ms=1.0, p90_ms=1.0, p99_ms=1.0, mean_ms=1.0, min_ms=1.0, max_ms=1.0,
                       throughput_ips=1000.0, iterations=10, warmup=1, measured_at="2026-01-01T00:00:00+00:00")

    other = {"cpu": "Other CPU", "arch": "aarch64", "usable_cores": 8}
    here = {"cpu": "AMD EPYC", "arch": "x86_64", "usable_cores": 2}
    old = BenchmarkResult(machine=other, results=[row("fp32")])
    new = BenchmarkResult(machine=here, results=[row("fp16")])
    merged = old.merge(new)
    assert merged.results == new.results and merged.machine == new.machine
    same = BenchmarkResult(machine=dict(here), results=old.results)
    assert [r.precision for r in same.merge(new).results] == ["fp32", "fp16"]
    assert len(BenchmarkResult(machine={}, results=old.results).merge(new).results) == 1  # machine unknown
    # A same-key result is replaced, not duplicated; the section reads back as it was written.
    assert [r.p50_ms for r in new.merge(BenchmarkResult(here, [dataclasses.replace(row("fp16"), p50_ms=2.0)])).results] \
        == [2.0]
    assert BenchmarkResult.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged


@pytest.mark.parametrize("args, message", [
    (("--threads", "0"), "--threads"),
    (("--batch", "0"), "at least 1"),
    (("--batch", "abc"), "not a whole number"),
    (("--batch", ""), "at least one value"),
    (("--iterations", "0"), "--iterations"),
    (("--duration", "0"), "--duration"),
    (("--warmup", "-1"), "--warmup"),
    (("--iterations", "3", "--duration", "1"), "not both"),
    (("--precision", "int9"), "--precision"),
])
def test_bench_bad_options_are_usage_errors(int8_bundle, args, message):
    result = invoke("bench", int8_bundle, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_bench_batch_above_max_and_missing_artifact(exported, int8_bundle):
    result = invoke("bench", int8_bundle, "--batch", "1,16")
    assert result.exit_code == 2 and "maximum batch 8" in result.output
    plain = exported("--model", "resnet18", "--weights", "none", "--input-size", "64", "--fp16", "--max-batch", "8")
    result = invoke("bench", plain, "--precision", "int8")
    assert result.exit_code == 2 and "no int8 artifact" in result.output
    result = invoke("bench", plain, "--backend", "tensorrt", "--precision", "fp32", "--iterations", "1")
    assert result.exit_code == 3 and "TensorRT" in result.output and "Traceback" not in result.output
