"""INT8 on model shapes that broke it (issue 19, items 1, 2 and 4): GELU feeding a Conv,
nn.Upsample with a skip connection, activations below FP16's smallest normal.

Every model is tiny (random init, 32 px) and written to tmp_path as a ``file.py:factory``.
Expected values come from the tests themselves: torch for the reference outputs, the ONNX
graphs read directly, ONNX Runtime run here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke, run_cli

NETS = '''
import torch
import torch.nn as nn


class GeluConv(nn.Module):
    """Conv -> GELU -> Conv: onnxsim folds GELU's x0.5 into the second Conv's weight as a Constant node."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.GELU()
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.c2(self.act(self.c1(x))).mean((2, 3)))


class UpSkip(nn.Module):
    """A stride-2 Conv, nn.Upsample back, added to the skip: ORT's symbolic shape inference gives up."""

    def __init__(self, mode="nearest"):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode=mode)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = self.up(torch.relu(self.down(a)))
        return self.head(torch.relu(self.c2(a + b)).mean((2, 3)))


class Tiny(nn.Module):
    """c1 writes ~1e-9 (below FP16's smallest subnormal, 6e-8); c2 and c3 scale it back up.
    Flushed to zero there, the logits are the head's bias alone."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)
        with torch.no_grad():
            self.c1.weight.mul_(1e-9)
            self.c1.bias.mul_(1e-9)
            self.c2.weight.mul_(3e4)
            self.c3.weight.mul_(1e5)  # logits of ~1: the head's bias (~0.3) is not what they carry
            self.c2.bias.zero_()
            self.c3.bias.zero_()

    def forward(self, x):
        x = nn.functional.relu6(self.c1(x))  # Clip: ONNX Runtime CPU runs it in FP16 in an FP16 region
        x = nn.functional.relu6(self.c2(x))
        x = torch.relu(self.c3(x))
        return self.head(x.mean((2, 3)))


def gelu():
    return GeluConv()


def up_nearest():
    return UpSkip("nearest")


def up_bilinear():
    return UpSkip("bilinear")


def tiny():
    return Tiny()
'''


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nets") / "nets.py"
    path.write_text(NETS)
    return path


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


def _producers(model) -> dict:
    return {o: n for n in model.graph.node for o in n.output}


def test_gelu_before_a_conv_quantizes_the_folded_weight(nets, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", "--model", f"{nets}:gelu", "--input-size", "32", "--int8", "--engine", "no",
                    "--output", out)
    assert result.exit_code == 0, result.output
    assert "bug in edgeport" not in result.output
    bundle = out / "nets_gelu"
    # The premise: in model.onnx the second Conv's weight is a Constant node, not an initializer.
    fp32 = _load(bundle / "model.onnx")
    conv2 = next(n for n in fp32.graph.node if n.op_type == "Conv" and n.name == "/c2/Conv")
    assert _producers(fp32)[conv2.input[1]].op_type == "Constant"
    # In model.int8.onnx that weight is an INT8 initializer read through a per-channel DequantizeLinear.
    int8 = _load(bundle / "model.int8.onnx")
    conv2 = next(n for n in int8.graph.node if n.op_type == "Conv" and n.name == "/c2/Conv")
    dq = _producers(int8)[conv2.input[1]]
    assert dq.op_type == "DequantizeLinear"
    inits = {i.name: i for i in int8.graph.initializer}
    assert dq.input[0] in inits and inits[dq.input[0]].data_type == 3  # INT8
    assert list(inits[dq.input[1]].dims) == [8]  # one scale per output channel
    report = json.loads((bundle / "report.json").read_text())
    verdicts = {r["precision"]: r["passed"] for r in report["results"]}
    assert verdicts["int8"] is True and verdicts["int8-cpu"] is True


@pytest.mark.parametrize("factory", ["up_nearest", "up_bilinear"])
def test_upsample_with_a_skip_exports_int8_and_writes_nothing_into_the_cwd(nets, tmp_path, factory):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = run_cli("export", "--model", f"{nets}:{factory}", "--input-size", "32", "--int8", "--engine", "no",
                "--output", tmp_path / "out", cwd=cwd)
    assert r.returncode == 0, r.stderr
    bundle = tmp_path / "out" / f"nets_{factory}"
    assert (bundle / "model.int8.onnx").is_file() and (bundle / "model.int8-cpu.onnx").is_file()
    assert sorted(p.name for p in cwd.iterdir()) == []  # no sym_shape_infer_temp.onnx, no <uuid>.data
    report = json.loads((bundle / "report.json").read_text())
    assert {r["precision"]: r["passed"] for r in report["results"]}["int8-cpu"] is True


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(((a * b).sum(1) / np.maximum(norms, 1e-30)).min())  # all-zero logits: 0


def test_fp16_underflow_keeps_int8_float_regions_fp32_and_warns_about_the_fp16_artifact(nets, tmp_path):
    import importlib.util

    import onnxruntime as ort
    import torch

    out = tmp_path / "out"
    # 0.98: this random toy loses ~0.01 of centered cosine to INT8 rounding itself (the CPU U8S8 graph, without
    # FP16 regions, reaches 0.99999); with c1's output flushed the INT8 graph scored 0.92.
    result = invoke("export", "--model", f"{nets}:tiny", "--input-size", "32", "--fp16", "--int8", "--engine", "no",
                    "--tol", "int8.cosine_min=0.98", "--output", out)
    # Here FP16 really flushes c1's ~1e-9 output (below even its subnormals): the FP16 row fails on its own
    # numbers, and the underflow warning says why; reports are written (exit 1).
    assert result.exit_code == 1, result.output
    assert "FP16 underflow" in result.output and "/c1/Conv_output_0" in result.output
    bundle = out / "nets_tiny"
    report = json.loads((bundle / "report.json").read_text())
    rows = {r["precision"]: r for r in report["results"]}
    assert rows["fp16"]["passed"] is False and rows["fp16"]["fp16_range"]["underflowing_count"] >= 1
    assert rows["int8"]["passed"] is True
    # The Clip reading c1's ~1e-9 output keeps FP32: no Cast to FP16 in between.
    int8 = _load(bundle / "model.int8.onnx")
    clip = next(n for n in int8.graph.node if n.op_type == "Clip" and n.name == "/Clip")
    assert clip.input[0] == "/c1/Conv_output_0"
    # Run with ONNX Runtime's optimizations off, so FP16 nodes compute in FP16 as TensorRT's would.
    spec = importlib.util.spec_from_file_location("nets_underflow", nets)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = module.tiny().eval()(torch.from_numpy(x)).numpy()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(int8.SerializeToString(), options, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert _cosine(got, expected) > 0.999  # with c1's output flushed to zero: 0.967
