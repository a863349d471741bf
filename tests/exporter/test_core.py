"""Core pipeline: registry, weights, export -> ONNX -> onnxsim -> verify, on CPU."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, invoke, run_cli

SMALL = ("--weights", "none", "--input-size", "64")


def ort_run(path, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def centered_cosine(a, b):
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def golden_inputs(bundle: Path):
    from runtime.bundle import Bundle

    b = Bundle.open(bundle)
    g = b.golden()
    return b, g, g.inputs(b.preprocessing)


# -- registry ---------------------------------------------------------------------------
def test_models_lists_every_architecture():
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["result"]["models"]}
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                 "resnext101_32x8d", "wide_resnet50_2", "densenet121", "densenet161", "densenet169",
                 "densenet201", "seed_resnet", "seed_densenet"):
        assert name in rows
    assert rows["resnet50"]["gmacs"] == pytest.approx(4.089, abs=1e-3)
    assert rows["resnet50"]["resize"] == 232  # V2 weights are the default
    assert rows["resnet50"]["weights"] == ["none", "IMAGENET1K_V1", "IMAGENET1K_V2"]
    assert rows["resnet50"]["default_weights"] == "IMAGENET1K_V2"
    assert rows["seed_resnet"]["input_size"] == 32
    assert rows["seed_densenet"]["params_m"] > 0.1


def test_seed_models_fixed_bugs_and_shapes():
    import torch

    from exporter.models.seed import BasicBlock, seed_densenet, seed_resnet

    block = BasicBlock(16, 32, strd=2)  # the article's code raised NameError here (stride=stride)
    assert block.conv_layer1.stride == (2, 2)
    assert block(torch.zeros(1, 16, 8, 8)).shape == (1, 32, 4, 4)
    assert seed_resnet(num_classes=7)(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    assert seed_densenet(num_classes=5)(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_unknown_model_is_a_usage_error_found_before_torch_is_imported(tmp_path):
    # A `torch` that cannot be imported: if export imported torch before checking the name,
    # the user would get "needs the Python package 'torch'" (exit 3) instead of the typo.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch was imported')\n")
    result = run_cli("export", "--model", "resnet05", "-o", tmp_path, env={"PYTHONPATH": f"{REPO}:{blocker}"})
    assert result.returncode == 2, result.stderr
    assert "Unknown model 'resnet05'" in result.stderr and "resnet50" in result.stderr
    assert "Traceback" not in result.stderr and "torch" not in result.stderr


# -- export and verify --------------------------------------------------------------------
@pytest.mark.parametrize("model", ["resnet18", "densenet121"])
def test_export_and_verify(exported, model):
    bundle = exported("--model", model, *SMALL, "--fp16", "--max-batch", "8")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == 2
    assert manifest["input"]["name"] == "input" and manifest["input"]["shape"][1:] == [3, 64, 64]
    assert manifest["input"]["max_batch"] == 8
    assert manifest["opset"] == 17
    assert set(manifest["artifacts"]) == {"fp32", "fp16"}
    assert manifest["weights"]["random_init"] is True
    for key in ("torch", "onnx", "onnxruntime", "onnxsim"):
        assert key in manifest["versions"]
    report = json.loads((bundle / "report.json").read_text())
    by_precision = {r["precision"]: r for r in report["results"]}
    for field in ("max_abs_diff", "mean_abs_diff", "cosine_min", "cosine_mean", "top1_agreement",
                  "top5_overlap", "samples", "passed", "backend", "provider", "precision"):
        assert field in by_precision["fp32"]
    assert by_precision["fp32"]["passed"] and by_precision["fp32"]["max_rel_diff"] < 1e-4
    assert by_precision["fp16"]["passed"] and by_precision["fp16"]["cosine_min"] > 0.999
    assert by_precision["fp32"]["samples"] >= 18
    # Independent check: ONNX Runtime on the golden inputs against the stored PyTorch outputs.
    b, g, x = golden_inputs(bundle)
    out = ort_run(bundle / "model.onnx", x)
    assert np.abs(out - g.outputs).max() < 1e-3
    assert centered_cosine(out, g.outputs).min() > 0.99999
    fp16 = ort_run(bundle / "model.fp16.onnx", x)
    assert fp16.dtype == np.float32  # FP32 inputs and outputs around an FP16 graph
    import onnx

    m = onnx.load(str(bundle / "model.fp16.onnx"))
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in m.graph.initializer)


def test_verify_command_and_exit_codes(exported, copy_bundle):
    bundle = copy_bundle(exported("--model", "resnet18", *SMALL, "--fp16", "--max-batch", "8"))
    ok = run_cli("verify", bundle, "--precision", "fp32")
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout
    failing = run_cli("verify", bundle, "--tol", "fp16.cosine_min=1.5")
    assert failing.returncode == 1
    assert "FAIL" in failing.stdout
    report = json.loads((bundle / "report.json").read_text())
    assert report["passed"] is False
    assert "FAIL" in (bundle / "report.md").read_text().splitlines()[0]
    usage = run_cli("verify", bundle, "--precision", "fp64")
    assert usage.returncode == 2
    missing = run_cli("verify", bundle.parent / "nope")
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    noprov = run_cli("verify", bundle, "--provider", "cuda")
    assert noprov.returncode == 3 and "--provider cuda needs onnxruntime-gpu" in noprov.stderr
    assert "must not both be installed" in noprov.stderr and "--provider cpu" in noprov.stderr


def test_dynamic_batch_matches_batch_one(exported):
    bundle = exported("--model", "resnet18", *SMALL, "--fp16", "--max-batch", "8")
    _, _, x = golden_inputs(bundle)
    five = ort_run(bundle / "model.onnx", x[:5])
    singles = np.concatenate([ort_run(bundle / "model.onnx", x[i:i + 1]) for i in range(5)])
    assert five.shape == singles.shape == (5, 1000)
    np.testing.assert_allclose(five, singles, rtol=0, atol=1e-4)


def test_tampered_artifact_is_refused(exported, copy_bundle):
    bundle = copy_bundle(exported("--model", "resnet18", *SMALL, "--fp16", "--max-batch", "8"))
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    result = run_cli("verify", bundle, "--precision", "fp32")
    assert result.returncode == 3
    assert "sha256" in result.stderr and "Traceback" not in result.stderr


def test_newer_schema_is_refused(exported, copy_bundle):
    bundle = copy_bundle(exported("--model", "resnet18", *SMALL, "--fp16", "--max-batch", "8"))
    m = json.loads((bundle / "manifest.json").read_text())
    m["schema_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(m))
    result = run_cli("verify", bundle)
    assert result.returncode == 3 and "schema version 99" in result.stderr


# -- user models --------------------------------------------------------------------------
USER_MODEL = textwrap.dedent("""
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self, num_classes=3):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    def build(num_classes=3):
        return Tiny(num_classes)

    def not_a_module():
        return 42
""")


def test_user_model_from_file_and_module(tmp_path, monkeypatch):
    src = tmp_path / "tiny_net.py"
    src.write_text(USER_MODEL)
    out = tmp_path / "out"
    r = invoke("export", "--model", f"{src}:build", "--num-classes", "5", "--input-size", "40",
               "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    bundle = out / "tiny_net_build"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["num_classes"] == 5 and manifest["model"]["source"] == "user"
    assert manifest["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and manifest["preprocessing"]["crop"] == 40
    # package.module:factory form
    monkeypatch.syspath_prepend(str(tmp_path))
    r = invoke("export", "--model", "tiny_net:build", "--input-size", "32", "-o", tmp_path / "out2", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out2" / "build" / "manifest.json").read_text())["model"]["num_classes"] == 3


@pytest.mark.parametrize("spec,message", [
    ("missing_file.py:build", "does not exist"),
    ("{src}:nope", "has no attribute 'nope'"),
    ("{src}:not_a_module", "not a torch.nn.Module"),
])
def test_bad_user_models(tmp_path, spec, message):
    src = tmp_path / "tiny_net.py"
    src.write_text(USER_MODEL)
    result = run_cli("export", "--model", spec.format(src=src), "-o", tmp_path / "out")
    assert result.returncode == (2 if message == "does not exist" else 3), result.stderr  # a typed path: usage
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*/manifest.json"))


# -- weights ------------------------------------------------------------------------------
def _torch_logits(module, x):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_checkpoint_forms_reproduce_pytorch(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(123)
    net = torchvision.models.resnet18(num_classes=10).eval()
    # Perturb BatchNorm statistics so the checkpoint differs visibly from a fresh init.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    sd = net.state_dict()
    forms = {
        "plain.pth": sd,
        "wrapped.pth": {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
        "model_key.pth": {"model": sd, "optimizer": {}},
        "lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 9},
    }
    outputs = {}
    for fname, obj in forms.items():
        torch.save(obj, tmp_path / fname)
        out = tmp_path / f"out_{fname}"
        r = invoke("export", "--model", "resnet18", "--num-classes", "10", "--input-size", "64",
                   "--weights", tmp_path / fname, "-o", out, "-q")
        assert r.exit_code == 0, r.output
        b, g, x = golden_inputs(out / "resnet18")
        expected = _torch_logits(net, x)
        np.testing.assert_allclose(g.outputs, expected, atol=1e-4)
        outputs[fname] = ort_run(out / "resnet18" / "model.onnx", x)
        assert b.manifest.weights.extra["sha256"] and not b.manifest.weights.random_init
    np.testing.assert_allclose(outputs["plain.pth"], outputs["wrapped.pth"], atol=1e-5)


@pytest.mark.slow
def test_resnet50_checkpoint_within_1e4_of_logit_range_at_batch_1_and_8(tmp_path):
    import torch
    import torchvision

    torch.manual_seed(7)
    net = torchvision.models.resnet50().eval()
    ckpt = tmp_path / "ckpt.pth"
    torch.save(net.state_dict(), ckpt)
    r = invoke("export", "--model", "resnet50", "--weights", ckpt, "--max-batch", "8", "-o", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    _, _, x = golden_inputs(tmp_path / "o" / "resnet50")
    assert x.shape[1:] == (3, 224, 224)
    for batch in (1, 8):
        xb = x[:batch]
        ref = _torch_logits(net, xb)
        out = ort_run(tmp_path / "o" / "resnet50" / "model.onnx", xb)
        span = ref.max(1) - ref.min(1)
        assert (np.abs(out - ref).max(1) / span).max() < 1e-4


def test_densenet_legacy_keys(tmp_path):
    import re

    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.densenet121(num_classes=4).eval()
    legacy = {}
    for k, v in net.state_dict().items():
        legacy[re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)] = v
    assert any(".norm.1." in k for k in legacy)
    torch.save(legacy, tmp_path / "legacy.pth")
    r = invoke("export", "--model", "densenet121", "--num-classes", "4", "--input-size", "64",
               "--weights", tmp_path / "legacy.pth", "-o", tmp_path / "o", "-q", "--no-verify")
    assert r.exit_code == 0, r.output
    _, g, x = golden_inputs(tmp_path / "o" / "densenet121")
    np.testing.assert_allclose(g.outputs, _torch_logits(net, x), atol=1e-4)


def test_mismatched_checkpoint_lists_keys(tmp_path):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet34(num_classes=10).state_dict(), tmp_path / "r34.pth")
    r = run_cli("export", "--model", "resnet18", "--num-classes", "10", "--weights", tmp_path / "r34.pth",
                "-o", tmp_path / "o")
    assert r.returncode == 3
    assert "unexpected keys" in r.stderr and "layer1.2" in r.stderr and "Traceback" not in r.stderr
    torch.save(torchvision.models.resnet18(num_classes=7).state_dict(), tmp_path / "r18_7.pth")
    r = run_cli("export", "--model", "resnet18", "--num-classes", "10", "--weights", tmp_path / "r18_7.pth",
                "-o", tmp_path / "o")
    assert r.returncode == 3 and "shape mismatches" in r.stderr and "fc.weight" in r.stderr


class _Evil:
    """Unpickling this runs a shell command that creates ``marker``: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_code_executing_pickle_is_refused(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "payload": _Evil(marker)}, tmp_path / "evil.pth")
    r = run_cli("export", "--model", "resnet18", "--weights", tmp_path / "evil.pth", "-o", tmp_path / "o")
    assert r.returncode == 3
    assert "Refused" in r.stderr and "--trust-checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()  # the payload never ran
    (tmp_path / "junk.pth").write_bytes(bytes(range(256)) * 4)  # binary junk (text files have their own message)
    r = run_cli("export", "--model", "resnet18", "--weights", tmp_path / "junk.pth", "-o", tmp_path / "o")
    assert r.returncode == 3 and "not a PyTorch checkpoint" in r.stderr and "Traceback" not in r.stderr
    # the same file with --trust-checkpoint does unpickle (the refusal above was the check, not luck)
    r = run_cli("export", "--model", "resnet18", "--weights", tmp_path / "evil.pth", "--trust-checkpoint",
                "--input-size", "32", "--no-verify", "-o", tmp_path / "o")
    assert marker.exists()


def test_default_weights_offline_error_names_file(tmp_path):
    home = tmp_path / "th"
    r = run_cli("export", "--model", "resnet18", "-o", tmp_path / "o", env={"TORCH_HOME": str(home)})
    assert r.returncode == 3
    expected = home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in r.stderr and "download" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "resnet18").exists()


def test_default_weights_from_cache(tmp_path):
    """A cached torchvision file is used as is (here: a stand-in state_dict we made)."""
    import torch
    import torchvision

    home = tmp_path / "th"
    ckpt_dir = home / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    torch.manual_seed(5)
    net = torchvision.models.resnet18().eval()
    torch.save(net.state_dict(), ckpt_dir / "resnet18-f37072fd.pth")
    r = run_cli("export", "--model", "resnet18", "--input-size", "64", "-o", tmp_path / "o",
                env={"TORCH_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o" / "resnet18" / "manifest.json").read_text())
    assert m["weights"]["name"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert len(m["model"]["class_names"]) == 1000 and m["model"]["class_names"][0] == "tench"
    assert m["preprocessing"]["resize"] == 73  # 256/224 scaled to a 64 crop
    _, g, x = golden_inputs(tmp_path / "o" / "resnet18")
    np.testing.assert_allclose(g.outputs, _torch_logits(net, x), atol=1e-4)
    auto = run_cli("export", "--model", "resnet18", "--weights", "auto", "--input-size", "64", "-o",
                   tmp_path / "o2", "--no-verify", env={"TORCH_HOME": str(tmp_path / "empty")})
    assert auto.returncode == 0 and "random init" in auto.stderr


# -- atomic bundles -------------------------------------------------------------------------
def test_failed_export_keeps_existing_bundle(tmp_path, monkeypatch):
    import exporter.onnx_export as onnx_export
    from runtime.errors import EdgeportError

    out = tmp_path / "o"
    r = invoke("export", "--model", "seed_resnet", "-o", out, "-q", "--no-verify")
    assert r.exit_code == 0, r.output
    before = (out / "seed_resnet" / "manifest.json").read_text()
    staged_at_failure = []
    real_to_fp16 = onnx_export.to_fp16

    def failing_to_fp16(model):  # the FP16 stage runs inside the staged bundle, after model.onnx
        staged_at_failure.extend(sorted(p.name for d in out.glob(".seed_resnet.tmp-*") for p in d.iterdir()))
        raise EdgeportError("simulated failure in the FP16 stage")

    monkeypatch.setattr(onnx_export, "to_fp16", failing_to_fp16)
    r = invoke("export", "--model", "seed_resnet", "--fp16", "-o", out)
    monkeypatch.setattr(onnx_export, "to_fp16", real_to_fp16)
    assert r.exit_code == 3 and "simulated failure in the FP16 stage" in r.output
    assert "model.onnx" in staged_at_failure  # it failed after staging had written files
    assert (out / "seed_resnet" / "manifest.json").read_text() == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and "tmp" in p.name] == []


def test_python_m_edgeport_is_the_edgeport_command(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    r = subprocess.run([sys.executable, "-m", "edgeport", "export", "--model", "seed_densenet", "--no-verify", "-o",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "seed_densenet" / "manifest.json").is_file()
