"""`edgeport predict BUNDLE IMAGE...`: class names and softmax probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import COLOR_CLASSES, color_image, edit_manifest, invoke, run_cli


@pytest.fixture
def color_photos(tmp_path):
    """One fresh (unseen) image per colour, as JPEG and PNG."""
    from PIL import Image

    rng = np.random.default_rng(21)
    paths = {}
    for i, name in enumerate(COLOR_CLASSES):
        path = tmp_path / f"photo_{name}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(color_image(rng, name, size=40)).save(path)
        paths[name] = path
    return paths


def test_predict_prints_class_names_with_probabilities(color_bundle, color_photos):
    result = invoke("predict", color_bundle, color_photos["red"], color_photos["blue"], "--topk", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(str(color_photos["red"])) and "(fp32, onnxruntime/cpu)" in lines[0]
    assert lines[1].split()[:2] == ["1.", "red"]
    assert lines[4].startswith(str(color_photos["blue"]))
    assert lines[5].split()[:2] == ["1.", "blue"]
    assert len(lines) == 8  # 2 images x (header + 3 classes)
    assert lines[1].rstrip().endswith("%")


def test_predict_json_every_colour_and_precision(color_bundle, color_photos):
    for precision in ("fp32", "fp16"):
        result = invoke("predict", color_bundle, *color_photos.values(), "--json", "--precision", precision)
        assert result.exit_code == 0, result.output
        preds = json.loads(result.stdout)["result"]["predictions"]
        assert [p["image"] for p in preds] == [str(p) for p in color_photos.values()]
        for (name, _), pred in zip(color_photos.items(), preds):
            top = pred["top"]
            assert pred["precision"] == precision and len(top) == 5
            assert top[0]["name"] == name and top[0]["index"] == list(COLOR_CLASSES).index(name)
            assert top[0]["probability"] > 0.5
            probs = [t["probability"] for t in top]
            assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-9
            assert [t["rank"] for t in top] == [1, 2, 3, 4, 5]


def test_predict_probabilities_are_the_softmax_of_the_logits(color_bundle, color_photos):
    """Same preprocessing as verify, same numbers as running the ONNX file directly."""
    import onnxruntime as ort

    from runtime.bundle import Bundle
    from runtime.predict import load_inputs

    b = Bundle.open(color_bundle)
    x = load_inputs(b, [color_photos["green"]])
    sess = ort.InferenceSession(str(color_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {b.input_name: x})[0][0].astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    result = invoke("predict", color_bundle, color_photos["green"], "--json", "--topk", "6")
    top = json.loads(result.stdout)["result"]["predictions"][0]["top"]
    for t in top:
        assert t["probability"] == pytest.approx(expected[t["index"]], rel=1e-5)


def test_predict_without_class_names_prints_class_numbers(color_bundle, copy_bundle, color_photos):
    bundle = copy_bundle(color_bundle)
    edit_manifest(bundle, lambda m: m["model"].update(class_names=None))  # as exported without names
    result = invoke("predict", bundle, color_photos["yellow"], "--topk", "2")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:3] == ["1.", "class", str(list(COLOR_CLASSES).index("yellow"))]


def test_predict_errors_name_the_problem(color_bundle, tmp_path, color_photos):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    proc = run_cli("predict", color_bundle, color_photos["red"], broken)
    assert proc.returncode == 3
    assert f"Cannot read image '{broken}'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("predict", color_bundle, tmp_path / "missing.png")
    assert proc.returncode == 2 and "missing.png' does not exist" in proc.stderr  # a path typed: usage
    result = invoke("predict", color_bundle, color_photos["red"], "--precision", "int8")
    assert result.exit_code == 2 and "has no int8 artifact" in result.output
    result = invoke("predict", color_bundle)
    assert result.exit_code == 2  # IMAGE is required


def test_export_rejects_class_names_of_the_wrong_length(color_bundle, tmp_path):
    manifest = json.loads((color_bundle / "manifest.json").read_text())
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    result = invoke("export", "--model", manifest["model"]["spec"], "--weights", "none", "--num-classes", "6",
                    "--input-size", "16", "--class-names", names, "-o", tmp_path / "out", "-q")
    assert result.exit_code == 2, result.output
    assert "--class-names lists 3 names" in result.output and "returns 6 classes" in result.output
    assert not (tmp_path / "out" / "color_net_build").exists()


def test_predict_backend_tensorrt_runs_the_resolved_engine(tmp_path, monkeypatch):
    """Through the fake TensorRT (tests/trt_fake.py): predict picks the same engine as verify."""
    from PIL import Image

    from runtime.bundle import Bundle
    from runtime.predict import PredictConfig, load_inputs, predict
    from runtime.runners import Target
    from runtime.engines import cuda_mem, device
    from runtime.engines.build import BuildOptions, build_engines
    from runtime.engines.device import GpuInfo, TargetEnv
    from trt_fake import FakeMemory, FakeTRT, make_bundle, onnx_logits

    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    bundle = Bundle.open(make_bundle(tmp_path / "net", precisions=("fp32", "fp16")))
    mem = FakeMemory()
    trt = FakeTRT("10.3.0.30", memory=mem)
    env = TargetEnv(tensorrt=trt.__version__, gpu=GpuInfo("Orin", "8.7", total_memory=8 << 30, integrated=True,
                                                           source="test"),
                    cuda_runtime="12.6", cuda_driver="12.6", jetson=True, dla_cores=None)
    build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=2), trt=trt, env=env)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(device, "probe_env", lambda trt=None, dla=False: env)
    monkeypatch.setattr(cuda_mem, "default_memory", lambda: mem)
    images = []
    rng = np.random.default_rng(3)
    for i in range(3):
        images.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(images[-1])
    preds = predict(bundle, images, PredictConfig(precision="fp16", target=Target(backend="tensorrt"), topk=3))
    logits = onnx_logits(bundle.root / "model.onnx", load_inputs(bundle, images)).astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))  # softmax, computed here
    expected = e / e.sum(axis=1, keepdims=True)
    for pred, probs in zip(preds, expected):
        assert pred.backend == "tensorrt" and pred.provider == "gpu"
        order = np.argsort(-probs)[:3]
        assert [t.index for t in pred.top] == order.tolist()
        assert [t.name for t in pred.top] == [f"class {i}" for i in order]
        assert [t.probability for t in pred.top] == pytest.approx(probs[order].tolist())
    assert trt.called("context.execute_async_v3")


def test_predict_report_and_labeled_verify_need_no_torch(color_bundle, copy_bundle, color_photos, tmp_path):
    """The device side: predict, report and verify --labeled-data run with torch unimportable."""
    from conftest import EDGEPORT, REPO, write_color_images

    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n\n\nclass _Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
        "sys.meta_path.insert(0, _Blocked())\n")
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    blocked = subprocess.run([sys.executable, "-c", "import torch"], env={**os.environ, **env}, capture_output=True)
    assert blocked.returncode != 0  # the blocker works, so the runs below really had no torch
    bundle = copy_bundle(color_bundle)
    data = tmp_path / "val"
    write_color_images(data, per_class=1, seed=31)
    for args in (("predict", bundle, color_photos["cyan"], "--topk", "1"), ("report", bundle),
                 ("verify", bundle, "--labeled-data", data)):
        proc = subprocess.run([*EDGEPORT, *map(str, args)], cwd=REPO,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
    assert "1. cyan" in subprocess.run(
        [*EDGEPORT, "predict", str(bundle), str(color_photos["cyan"])], cwd=REPO,
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300).stdout
