"""Models as users bring them (issue 14, items 1-4 and class names): any channel count and
non-square inputs, several outputs, an existing ONNX file (exported without torch), factories
that need arguments.

Every model here is tiny (a few hundred parameters, 16-28 px inputs). Expected values are
computed in the tests themselves: PIL for the crops, torch for the model outputs, ONNX
Runtime directly on the user's file, numpy for the normalization.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, edit_manifest, invoke

NETS = '''
import torch
import torch.nn as nn


class Gray(nn.Module):
    """MNIST-style: one input channel."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean((2, 3)))


def gray(num_classes=10):
    return Gray(num_classes)


def four(num_classes=3):
    return nn.Sequential(nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, num_classes))


def no_conv():  # nothing tells the channel count: --channels
    return nn.Sequential(nn.Flatten(), nn.Linear(1 * 12 * 12, 3))


class Two(nn.Module):
    def __init__(self, as_dict=False):
        super().__init__()
        self.as_dict = as_dict
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        f = self.body(x)
        if self.as_dict:
            return {"features": f, "scores": self.head(f)}
        return self.head(f), f


def two(as_dict=False):
    return Two(as_dict)


class Odd(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        if self.kind == "nested":
            return y, {"inner": y}
        if self.kind == "int":
            return y, y.argmax(1)
        if self.kind == "no_batch":
            return y, y.mean()
        return y, None


def odd(kind):
    return Odd(kind)


def needs_width(width, depth=1):
    layers = [nn.Conv2d(3, width, 3)] + [nn.Conv2d(width, width, 1) for _ in range(depth - 1)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4))
'''


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user_models") / "nets.py"
    path.write_text(NETS)
    return path


def _module(nets: Path, factory: str, **kwargs):
    """The user's model, built here as edgeport builds it (seed 0, eval mode)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("nets_under_test", nets)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    return getattr(mod, factory)(**kwargs).eval()


def _export(out: Path, *args) -> Path:
    result = invoke("export", *args, "--engine", "no", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    (bundle,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return bundle


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _golden(bundle: Path) -> dict:
    with np.load(bundle / "golden.npz") as z:
        return {k: z[k] for k in z.files}


PHOTOS = REPO / "exporter" / "assets" / "golden"


def _gray_crop(photo: Path, resize: int, hw: tuple[int, int]) -> np.ndarray:
    """The oracle: PIL grayscale (luma), shorter side resized, center crop of height x width."""
    from PIL import Image

    img = Image.open(photo).convert("RGB").convert("L")
    w, h = img.size
    scale = resize / min(w, h)
    new = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    assert abs(new[0] - w * scale) < 1 and abs(new[1] - h * scale) < 1
    img = img.resize(new, Image.BILINEAR)
    top, left = int(round((new[1] - hw[0]) / 2)), int(round((new[0] - hw[1]) / 2))
    return np.asarray(img.crop((left, top, left + hw[1], top + hw[0])), dtype=np.uint8)


# -- 1. any input layout ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gray_bundle(nets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gray")
    return _export(out, "--model", f"{nets}:gray", "--input-size", "24x16", "--mean", "0.1307", "--std", "0.3081",
                   "--fp16", "--int8")


def test_grayscale_non_square_model_exports_with_its_channel_read_from_the_first_conv(gray_bundle, nets):
    m = _manifest(gray_bundle)
    assert m["input"]["shape"] == ["batch", 1, 24, 16]
    pre = m["preprocessing"]
    assert pre["channels"] == 1 and pre["crop"] == [24, 16] and pre["color"] == "L"
    assert pre["mean"] == [0.1307] and pre["std"] == [0.3081]
    assert pre["resize"] == round(24 / 0.875)  # the user-model rule: the longer crop side / 0.875
    assert set(m["artifacts"]) == {"fp32", "fp16", "int8", "int8-cpu"}
    report = json.loads((gray_bundle / "report.json").read_text())
    assert report["passed"] and len(report["results"]) == 4

    # the golden crops are the photos in grayscale, resized and center-cropped to 24x16
    golden = _golden(gray_bundle)
    assert golden["images"].shape[1:] == (24, 16, 1)
    first = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))[0]
    assert str(golden["names"][0]) == first.name
    assert np.array_equal(golden["images"][0, :, :, 0], _gray_crop(first, pre["resize"], (24, 16)))

    # the reference outputs are the PyTorch model's on those crops, normalized with the given mean/std
    import torch

    x = (golden["images"].astype(np.float32) / 255.0 - 0.1307) / 0.3081
    with torch.no_grad():
        expected = _module(nets, "gray")(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(golden["outputs"], expected, rtol=1e-5, atol=1e-5)


def test_grayscale_bundle_predicts_and_benchmarks(gray_bundle, nets):
    import torch

    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    result = invoke("predict", gray_bundle, photo, "--topk", "3", "--json")
    assert result.exit_code == 0, result.output
    pred = json.loads(result.stdout)["result"]["predictions"][0]
    # predict decodes JPEGs at reduced size (draft), so its crop is close to, not equal to, the full decode
    crop = _gray_crop(photo, round(24 / 0.875), (24, 16)).astype(np.float32)
    x = ((crop / 255.0 - 0.1307) / 0.3081)[None, None]
    with torch.no_grad():
        logits = _module(nets, "gray")(torch.from_numpy(x)).numpy()[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert pred["top"][0]["index"] == int(np.argmax(probs))
    assert abs(pred["top"][0]["probability"] - float(probs.max())) < 0.02
    bench = invoke("bench", gray_bundle, "--iterations", "2", "--warmup", "0", "--batch", "1,4")
    assert bench.exit_code == 0, bench.output


def test_preprocessing_of_older_bundles_still_reads_as_rgb_square():
    from runtime.preprocess import Preprocessing

    old = {"resize": 36, "crop": 32, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "interpolation": "bilinear",
           "scale": "1/255", "layout": "NCHW", "color": "RGB"}
    pre = Preprocessing.from_dict(old)
    assert (pre.channels, pre.crop, pre.size, pre.chw) == (3, 32, (32, 32), (3, 32, 32))
    # square stays an int on the way out (an older edgeport reads the crop as an int)
    assert pre.to_dict()["crop"] == 32 and pre.to_dict()["channels"] == 3
    wide = Preprocessing(resize=30, crop=(24, 16), mean=(0.5,), std=(0.25,), channels=1)
    assert Preprocessing.from_dict(json.loads(json.dumps(wide.to_dict()))) == wide
    assert Preprocessing(resize=30, crop=(20, 20)).crop == 20
    # one value is broadcast to every channel, as torchvision's Normalize does
    assert Preprocessing(resize=30, crop=24, mean=(0.5,), std=(0.5,)).mean == (0.5, 0.5, 0.5)


def test_an_older_bundle_without_channels_opens_and_verifies(nets, tmp_path):
    bundle = _export(tmp_path / "o", "--model", f"{nets}:two", "--input-size", "16")

    def as_before(m):
        for key in ("channels", "color"):
            m["preprocessing"].pop(key)
        m["preprocessing"]["color"] = "RGB"
    edit_manifest(bundle, as_before)
    result = invoke("verify", bundle)
    assert result.exit_code == 0, result.output


def test_mean_and_std_take_one_value_per_channel_or_one_for_all(nets, tmp_path):
    wrong = invoke("export", "--model", f"{nets}:gray", "--mean", "0.1,0.2,0.3", "--engine", "no", "-o", tmp_path)
    assert wrong.exit_code == 2
    assert "--mean has 3 values, but the model input has 1 channel(s)" in wrong.output
    assert "first convolution 'conv1'" in wrong.output
    bundle = _export(tmp_path / "b", "--model", f"{nets}:two", "--input-size", "16", "--mean", "0.5", "--std", "0.25",
                     "--no-verify")
    pre = _manifest(bundle)["preprocessing"]
    assert pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.25, 0.25, 0.25] and pre["channels"] == 3


def test_channels_option_when_no_convolution_tells(nets, tmp_path):
    guessed = invoke("export", "--model", f"{nets}:no_conv", "--input-size", "12", "--engine", "no", "-o", tmp_path)
    assert guessed.exit_code == 3
    assert "cannot take 12x12 inputs (height x width) with 3 channel(s) (no nn.Conv2d found: assumed 3" \
        in guessed.output
    bundle = _export(tmp_path / "b", "--model", f"{nets}:no_conv", "--input-size", "12", "--channels", "1",
                     "--mean", "0.5", "--std", "0.5")
    assert _manifest(bundle)["input"]["shape"] == ["batch", 1, 12, 12]


def test_four_channel_model_needs_preprocessed_arrays(nets, tmp_path):
    photos = invoke("export", "--model", f"{nets}:four", "--input-size", "16", "--engine", "no", "-o", tmp_path / "x")
    assert photos.exit_code == 2
    assert "takes 4-channel inputs" in photos.output and "--golden-data FILE.npy" in photos.output
    rng = np.random.default_rng(0)
    golden = tmp_path / "golden.npy"
    np.save(golden, rng.normal(size=(6, 4, 16, 16)).astype(np.float32))
    calib = tmp_path / "calib.npz"
    np.savez(calib, inputs=rng.normal(size=(12, 4, 16, 16)).astype(np.float32))
    bundle = _export(tmp_path / "b", "--model", f"{nets}:four", "--input-size", "16", "--golden-data", golden,
                     "--int8", "--calib-data", calib)
    m = _manifest(bundle)
    assert m["input"]["shape"] == ["batch", 4, 16, 16] and m["preprocessing"]["channels"] == 4
    stored = _golden(bundle)
    assert "images" not in stored and np.array_equal(stored["inputs"], np.load(golden))
    import torch

    with torch.no_grad():
        expected = _module(nets, "four")(torch.from_numpy(np.load(golden))).numpy()
    np.testing.assert_allclose(stored["outputs"], expected, rtol=1e-5, atol=1e-5)
    assert invoke("verify", bundle).exit_code == 0
    refused = invoke("predict", bundle, sorted(PHOTOS.glob("*.jpg"))[0])
    assert refused.exit_code == 2 and "takes 4-channel inputs" in refused.output


# -- 2. more than one output ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_bundle(nets, tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("two"), "--model", f"{nets}:two", "--input-size", "20", "--fp16")


def test_every_output_of_a_tuple_is_exported_stored_and_verified(two_bundle, nets):
    import onnx
    import torch

    m = _manifest(two_bundle)
    assert [(o["name"], o["shape"]) for o in m["outputs"]] == [("output0", ["batch", 5]), ("output1", ["batch", 8])]
    graph = onnx.load(str(two_bundle / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["output0", "output1"]
    golden = _golden(two_bundle)
    x = golden["images"].astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        logits, features = _module(nets, "two")(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(golden["outputs"], logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(golden["outputs_1"], features.numpy(), rtol=1e-5, atol=1e-5)
    report = json.loads((two_bundle / "report.json").read_text())
    for r in report["results"]:
        assert [o["name"] for o in r["outputs"]] == ["output1"] and r["outputs"][0]["passed"]
    assert "### Further outputs" in (two_bundle / "report.md").read_text()
    assert 'id="outputs"' in (two_bundle / "report.html").read_text()


def test_a_failing_further_output_fails_its_artifact(two_bundle, copy_bundle):
    from runtime.bundle import sha256_file

    bundle = copy_bundle(two_bundle)
    stored = _golden(bundle)
    stored["outputs_1"] = stored["outputs_1"] + np.arange(8, dtype=np.float32)  # the features' reference, changed
    np.savez_compressed(bundle / "golden.npz", **stored)
    edit_manifest(bundle, lambda m: m["golden"].update(sha256=sha256_file(bundle / "golden.npz"),
                                                       bytes=(bundle / "golden.npz").stat().st_size))
    result = invoke("verify", bundle, "--precision", "fp32")
    assert result.exit_code == 1, result.output
    assert "further outputs:" in result.stdout and "| fp32 | onnxruntime/cpu | output1 |" in result.stdout
    report = json.loads((bundle / "report.json").read_text())
    (fp32,) = [r for r in report["results"] if r["precision"] == "fp32"]
    assert fp32["cosine_min"] > 0.99999  # the classifier output still matches
    assert not fp32["passed"] and any(f.startswith("output 'output1': ") for f in fp32["failures"])


def test_dict_outputs_and_the_chosen_classifier_output(nets, tmp_path):
    import onnx
    import torch

    bundle = _export(tmp_path, "--model", f"{nets}:two", "--factory-arg", "as_dict=True", "--output-name", "scores",
                     "--input-size", "20")
    m = _manifest(bundle)
    assert [o["name"] for o in m["outputs"]] == ["scores", "features"]  # the classifier first
    assert [o.name for o in onnx.load(str(bundle / "model.onnx")).graph.output] == ["scores", "features"]
    assert m["model"]["num_classes"] == 5 and m["model"]["factory_args"] == {"as_dict": True}
    golden = _golden(bundle)
    x = golden["images"].astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        out = _module(nets, "two", as_dict=True)(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(golden["outputs"], out["scores"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(golden["outputs_1"], out["features"].numpy(), rtol=1e-5, atol=1e-5)
    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    pred = json.loads(invoke("predict", bundle, photo, "--json", "--topk", "10").stdout)["result"]["predictions"][0]
    assert len(pred["top"]) == 5  # predict ranks the 5 scores, not the 8 features
    by_index = invoke("export", "--model", f"{nets}:two", "--output-index", "2", "--input-size", "20", "--engine",
                      "no", "-o", tmp_path / "i")
    assert by_index.exit_code == 2 and "--output-index 2 is out of range: the model has 2 output(s)" in by_index.output


@pytest.mark.parametrize("kind, message", [
    ("nested", "whose output 'output1' is a dict (nested structures are not supported)"),
    ("int", "output 'output1' is a int64 tensor"),
    ("no_batch", "output 'output1' has shape [] for a batch of 8: it has no batch axis first"),
    ("none", "whose output 'output1' is a NoneType"),
])
def test_unsupported_outputs_are_refused_with_what_is_supported(nets, tmp_path, kind, message):
    result = invoke("export", "--model", f"{nets}:odd", "--factory-arg", f"kind={kind}", "--input-size", "16",
                    "--engine", "no", "-o", tmp_path)
    assert result.exit_code == 3 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert not any(p.is_dir() for p in tmp_path.iterdir())


# -- 3. an existing ONNX model, exported without torch ---------------------------------------------
def _no_torch_env(tmp_path: Path) -> tuple[list[str], str]:
    """A python command on this interpreter that cannot import torch: -S (no site-packages) and a
    PYTHONPATH of links to every installed package except torch's. (Stub packages that raise on
    import are not enough here: onnxruntime looks torch up with find_spec and would import it.)"""
    site = Path(np.__file__).resolve().parents[1]
    farm = tmp_path / "site-without-torch"
    farm.mkdir()
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0] in ("torch", "torchvision", "functorch", "torchgen"):
            continue
        (farm / entry.name).symlink_to(entry)
    return [sys.executable, "-S"], f"{farm}{os.pathsep}{REPO}"


def _run_without_torch(tmp_path: Path, *args, check_blocked: bool = False) -> subprocess.CompletedProcess:
    python, pythonpath = _no_torch_env(tmp_path)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    if check_blocked:
        probe = subprocess.run([*python, "-c", "import torch"], env=env, capture_output=True, text=True)
        assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    return subprocess.run([*python, "-m", "edgeport.cli", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)


def _onnx_file(nets: Path, path: Path, factory: str = "two", shape=(1, 3, 20, 20), dynamic=None, **kwargs):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_module(nets, factory, **kwargs), torch.zeros(*shape), str(path), input_names=["image"],
                          output_names=["scores", "feat"] if factory == "two" else ["y"], opset_version=13,
                          dynamic_axes=dynamic, dynamo=False)
    return path


def test_an_onnx_file_exports_without_torch_against_onnx_runtime(nets, tmp_path):
    import onnxruntime as ort

    model = _onnx_file(nets, tmp_path / "two_b1.onnx")  # batch fixed at 1, two outputs
    out = tmp_path / "out"
    proc = _run_without_torch(tmp_path, "export", "--model", model, "--fp16", "--int8", "--engine", "no", "-o", out,
                              check_blocked=True)
    assert proc.returncode == 0, proc.stderr
    bundle = out / "two_b1"
    m = _manifest(bundle)
    assert m["reference"] == "onnx" and m["model"]["source"] == "onnx" and m["opset"] == 13
    assert m["input"]["name"] == "image" and m["input"]["shape"] == ["batch", 3, 20, 20]
    assert [o["name"] for o in m["outputs"]] == ["scores", "feat"]
    assert "Reference: ONNX Runtime FP32 of the given model" in (bundle / "report.md").read_text()
    assert "reference: ONNX Runtime FP32 of the given model" in (bundle / "report.html").read_text()
    assert "PyTorch FP32" not in (bundle / "report.md").read_text()
    # the reference is ONNX Runtime on the user's own file, one sample at a time (its fixed batch)
    golden = _golden(bundle)
    x = golden["images"].astype(np.float32) / 255.0
    x = ((x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32))
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    singles = [sess.run(None, {"image": x[i:i + 1].transpose(0, 3, 1, 2).copy()}) for i in range(len(x))]
    np.testing.assert_allclose(golden["outputs"], np.concatenate([s[0] for s in singles]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(golden["outputs_1"], np.concatenate([s[1] for s in singles]), rtol=1e-5, atol=1e-6)
    report = json.loads((bundle / "report.json").read_text())
    assert report["passed"] and {r["precision"] for r in report["results"]} == {"fp32", "fp16", "int8", "int8-cpu"}


def test_onnx_files_edgeport_cannot_take_are_refused_clearly(nets, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    two_inputs = tmp_path / "two_inputs.onnx"
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 16, 16]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(two_inputs))
    r = invoke("export", "--model", two_inputs, "--engine", "no", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "takes 2 inputs ('a', 'b'); edgeport exports models with exactly one" in r.output

    dynamic_hw = _onnx_file(nets, tmp_path / "gray_dyn.onnx", "gray", (1, 1, 28, 28),
                            {"image": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}})
    r = invoke("export", "--model", dynamic_hw, "--engine", "no", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "has a dynamic height/width" in r.output and "--input-size" in r.output

    # a graph that mixes the samples of a batch (a batch-1 export): refused, not silently wrong
    mixing = tmp_path / "mixing.onnx"
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["c"]),
             helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(mixing))
    r = invoke("export", "--model", mixing, "--engine", "no", "-o", tmp_path / "o")
    assert r.exit_code == 3 and "was exported for batch 1" in r.output and "mixes samples" in r.output

    r = invoke("export", "--model", "seed_resnet", "--weights", two_inputs, "--engine", "no", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "is an ONNX file, not a PyTorch checkpoint" in r.output
    assert f"--model {two_inputs}" in r.output
    r = invoke("export", "--model", tmp_path / "missing.onnx", "--engine", "no", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "does not exist" in r.output and "Did you mean" not in r.output


# -- 4. factories with arguments --------------------------------------------------------------------
def test_factory_arguments_are_checked_against_the_signature_and_recorded(nets, tmp_path):
    import onnx
    from onnx import numpy_helper

    missing = invoke("export", "--model", f"{nets}:needs_width", "--engine", "no", "-o", tmp_path / "o")
    assert missing.exit_code == 2
    assert "missing a required argument: 'width'" in missing.output
    assert "Its signature is needs_width(width, depth=1)" in missing.output and "--factory-arg" in missing.output
    unknown = invoke("export", "--model", f"{nets}:needs_width", "--factory-arg", "width=4", "--factory-arg",
                     "height=2", "--engine", "no", "-o", tmp_path / "o")
    assert unknown.exit_code == 2 and "unexpected keyword argument 'height'" in unknown.output

    bundle = _export(tmp_path / "b", "--model", f"{nets}:needs_width", "--factory-arg", "width=4",
                     "--factory-arg", "depth=2", "--input-size", "16")
    assert _manifest(bundle)["model"]["factory_args"] == {"width": 4, "depth": 2}
    graph = onnx.load(str(bundle / "model.onnx")).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    assert len(convs) == 2 and weights[convs[0].input[1]].shape == (4, 3, 3, 3)

    classes = invoke("export", "--model", f"{nets}:needs_width", "--factory-arg", "width=4", "--num-classes", "7",
                     "--input-size", "16", "--engine", "no", "-o", tmp_path / "c")
    assert classes.exit_code == 3 and "returns 4 classes (output 'logits'), but 7 were requested" in classes.output
    assert "takes no num_classes argument" in classes.output and "needs_width(width, depth=1)" in classes.output


def test_factory_arg_values_are_python_literals_or_text():
    from exporter.models.factories import parse_factory_arg, parse_factory_args
    from runtime.errors import UsageError

    assert parse_factory_arg("width=64") == ("width", 64)
    assert parse_factory_arg("scale=0.5") == ("scale", 0.5)
    assert parse_factory_arg("act=relu") == ("act", "relu")
    assert parse_factory_arg("name='64'") == ("name", "64")
    assert parse_factory_arg("dims=[1, 2]") == ("dims", [1, 2])
    assert parse_factory_arg("flag=True") == ("flag", True)
    assert parse_factory_arg("expr=1+") == ("expr", "1+")
    for bad in ("width", "1x=2", "=3"):
        with pytest.raises(UsageError):
            parse_factory_arg(bad)
    with pytest.raises(UsageError, match="given twice"):
        parse_factory_args(["a=1", "a=2"])


def test_python_api_takes_factory_args_and_non_square_grayscale(nets, tmp_path):
    import edgeport

    result = edgeport.export(f"{nets}:needs_width", factory_args={"width": 3}, input_size=(20, 12), output=tmp_path,
                             engine="no", verify=False)
    b = result.open()
    assert b.manifest.model.factory_args == {"width": 3} and b.input.shape == ["batch", 3, 20, 12]
    gray = edgeport.export(_module(nets, "gray"), input_size="16x24", mean=0.5, std=0.5, output=tmp_path / "g",
                           engine="no")
    assert gray.passed and gray.open().preprocessing.chw == (1, 16, 24)


# -- class names against the classifier output (issue 14, item 8) -----------------------------------
def test_a_manifest_whose_class_names_do_not_fit_the_output_is_refused(two_bundle, copy_bundle):
    from runtime.bundle import Bundle
    from runtime.errors import BundleError

    bundle = copy_bundle(two_bundle)
    edit_manifest(bundle, lambda m: m["model"].update(class_names=["a", "b"]))
    with pytest.raises(BundleError, match="lists 2 class names, but the classifier output 'output0' has 5 classes"):
        Bundle.open(bundle)
    result = invoke("predict", bundle, sorted(PHOTOS.glob("*.jpg"))[0])
    assert result.exit_code == 3 and "--class-names FILE of exactly 5 lines" in result.output
    edit_manifest(bundle, lambda m: m["model"].update(class_names=list("abcde")))
    assert Bundle.open(bundle).class_names == list("abcde")


def test_grayscale_crops_make_grayscale_thumbnails(gray_bundle):
    import base64
    import io

    from PIL import Image

    from runtime.report.html import _thumbnail

    crop = _golden(gray_bundle)["images"][0]  # 24 x 16 x 1
    uri = _thumbnail(crop)
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.mode == "L" and img.size == (16 * 4, 24 * 4)  # enlarged 4x (96 // 24) without blurring
