"""The strict bundle reader (runtime/bundle_check.py) through `edgeport verify BUNDLE`: a battery
of malformed manifests and golden sets, each a mutation of a real exported bundle, re-sealed
with a correct digest (computed here, independently of runtime/manifest.py) so that the
digest check is not what refuses it. Every case must end in exit 3 and one paragraph that
names the field, never in "probably a bug" or a traceback.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke

SEED = ("--model", "seed_resnet", "--no-verify")
SAMPLES = 21  # the built-in golden photos


def seal(data: dict) -> dict:
    """The manifest digest as docs/bundle-format.md defines it: sha256 of the canonical JSON of
    everything but the digest (sorted keys, no spaces, ASCII)."""
    body = {k: v for k, v in data.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**data, "digest": hashlib.sha256(text.encode("utf-8")).hexdigest()}


@pytest.fixture(scope="module")
def source(exported) -> Path:
    bundle = exported(*SEED)
    data = json.loads((bundle / "manifest.json").read_text())
    assert seal(data)["digest"] == data["digest"]  # the seal below is the exporter's own
    return bundle


def make_case(source: Path, dst: Path, change=None, golden: bytes | None = None) -> Path:
    """A copy of ``source`` (artifacts hard-linked: they are only read) with ``change`` applied
    to its manifest, ``golden`` as golden.npz, and the manifest re-sealed."""
    dst.mkdir()
    for f in source.iterdir():
        if f.is_file() and f.name != "manifest.json" and not (golden is not None and f.name == "golden.npz"):
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copy2(f, dst / f.name)
    data = json.loads((source / "manifest.json").read_text())
    if golden is not None:
        (dst / "golden.npz").write_bytes(golden)
        data["golden"].update(sha256=hashlib.sha256(golden).hexdigest(), bytes=len(golden))
    if change is not None:
        change(data)
    (dst / "manifest.json").write_text(json.dumps(seal(data), indent=2))
    return dst


def setter(path: str, value):
    """change(data): set the dotted ``path`` (list indices as numbers) to ``value``."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(data):
        node = data
        for p in parents:
            node = node[p]
        node[last] = copy.deepcopy(value)

    return change


def both(*changes):
    def change(data):
        for c in changes:
            c(data)

    return change


def drop(path: str):
    *parents, last = path.split(".")

    def change(data):
        node = data
        for p in parents:
            node = node[p]
        del node[last]

    return change


def add_artifact(key: str):
    def change(data):
        data["artifacts"][key] = dict(data["artifacts"]["fp32"])

    return change


MANIFEST_CASES = {
    # the batch range
    "max_batch negative": (setter("input.max_batch", -5), "input.max_batch must be a positive integer no larger"),
    "max_batch zero": (setter("input.max_batch", 0), "input.max_batch"),
    "max_batch huge": (setter("input.max_batch", 10 ** 100), "input.max_batch"),
    "max_batch float": (setter("input.max_batch", 4.0), "input.max_batch must be an integer"),
    "max_batch bool": (setter("input.max_batch", True), "input.max_batch must be an integer"),
    "max_batch string": (setter("input.max_batch", "32"), "input.max_batch must be an integer"),
    "max_batch null": (setter("input.max_batch", None), "input.max_batch must be an integer"),
    "min_batch above max": (setter("input.min_batch", 64), "input.min_batch"),
    # the input
    "input a list": (setter("input", []), "input must be an object"),
    "input without name": (drop("input.name"), "input lacks name"),
    "input name a number": (setter("input.name", 5), "input.name must be a string"),
    "input rank 3": (setter("input.shape", ["batch", 3, 32]), "input.shape must have 4 dimensions"),
    "input dim zero": (setter("input.shape.2", 0), "input.shape[2]"),
    "input dim float": (setter("input.shape.3", 32.5), "input.shape[3]"),
    "input shape a string": (setter("input.shape", "batch,3,32,32"), "input.shape must be a list"),
    "input fixed batch": (setter("input.shape.0", 1), "input.shape[0]"),
    "input channels differ": (setter("input.shape.1", 1), "input.shape"),
    "input HxW differ": (both(setter("input.shape.2", 16), setter("input.shape.3", 16)), "input.shape"),
    "input dtype": (setter("input.dtype", "int64"), "input.dtype"),
    # the outputs
    "outputs an object": (setter("outputs", {"name": "logits"}), "outputs must be a list"),
    "outputs empty": (setter("outputs", []), "outputs lists no outputs"),
    "output dim negative": (setter("outputs.0.shape.1", -10), "outputs[0].shape[1]"),
    "classifier without classes": (setter("outputs.0.shape", ["batch"]), "outputs[0].shape"),
    "output named as the input": (setter("outputs.0.name", "input"), "outputs[0].name"),
    "output entry a string": (setter("outputs.0", "logits"), "outputs[0] must be an object"),
    # preprocessing
    "preprocessing a list": (setter("preprocessing", []), "preprocessing must be an object"),
    "mean of two": (setter("preprocessing.mean", [0.5, 0.5]), "preprocessing.mean"),
    "std zero": (setter("preprocessing.std", [0, 0.2, 0.2]), "preprocessing.std"),
    "std a string": (setter("preprocessing.std", "0.2"), "preprocessing.std"),
    "resize negative": (setter("preprocessing.resize", -1), "preprocessing.resize"),
    "crop of three": (setter("preprocessing.crop", [32, 32, 3]), "preprocessing.crop"),
    "channels a string": (setter("preprocessing.channels", "3"), "preprocessing.channels"),
    "interpolation unknown": (setter("preprocessing.interpolation", "lanczos"), "preprocessing is inconsistent"),
    "crop beyond resize": (setter("preprocessing.crop", 48), "preprocessing is inconsistent"),
    # classes and the model
    "class names too few": (setter("model.class_names", ["a"] * 9),
                            "9 class names, but the classifier output 'logits' has 10 classes (model.class_names"),
    "class names a string": (setter("model.class_names", "cat,dog"), "model.class_names must be a list"),
    "class name a number": (setter("model.class_names", [1] * 10), "model.class_names[0] must be a string"),
    "class name empty": (setter("model.class_names", [""] * 10), "model.class_names[0]"),
    "num_classes differs": (setter("model.num_classes", 12), "model.num_classes"),
    "num_classes a string": (setter("model.num_classes", "10"), "model.num_classes must be an integer"),
    "model name empty": (setter("model.name", ""), "model.name"),
    "random_init a string": (setter("weights.random_init", "yes"), "weights.random_init must be true or false"),
    "reference unknown": (setter("reference", "tensorflow"), "reference must be one of pytorch, onnx"),
    "schema 1": (setter("schema_version", 1), "schema version 1"),
    "schema a string": (setter("schema_version", "2"), "no integer schema_version"),
    # artifacts
    "unknown precision key": (add_artifact("fp8"), "unknown key \"fp8\""),
    "artifact key a path": (add_artifact("../../../../tmp/x"), "unknown key \"../../../../tmp/x\""),
    "artifacts empty": (setter("artifacts", {}), "artifacts lists no artifacts"),
    "artifact a string": (setter("artifacts.fp32", "model.onnx"), "artifacts.fp32 must be an object"),
    "artifact file with parent": (setter("artifacts.fp32.file", "../model.onnx"), "artifacts.fp32.file"),
    "artifact file absolute": (setter("artifacts.fp32.file", "/etc/passwd"), "artifacts.fp32.file"),
    "artifact file hidden": (setter("artifacts.fp32.file", ".model.onnx"), "artifacts.fp32.file"),
    "artifact file a list": (setter("artifacts.fp32.file", ["model.onnx"]), "artifacts.fp32.file must be a string"),
    "sha256 short": (setter("artifacts.fp32.sha256", "abc"), "artifacts.fp32.sha256"),
    "sha256 null": (setter("artifacts.fp32.sha256", None), "artifacts.fp32.sha256"),
    "sha256 upper case": (setter("artifacts.fp32.sha256", "A" * 64), "artifacts.fp32.sha256"),
    "artifact bytes negative": (setter("artifacts.fp32.bytes", -1), "artifacts.fp32.bytes"),
    # the golden entry
    "golden samples zero": (setter("golden.samples", 0), "golden.samples"),
    "golden samples float": (setter("golden.samples", 21.5), "golden.samples must be an integer"),
    "golden file in a subfolder": (setter("golden.file", "sub/golden.npz"), "golden.file"),
    "golden file backslash": (setter("golden.file", "..\\golden.npz"), "golden.file"),
    "golden a list": (setter("golden", []), "golden must be an object"),
    "int8 samples negative": (setter("int8", {"method": "minmax", "samples": -3, "calibration_source": None,
                                              "cache_key": None, "calibration": None, "trt_calibration_cache": None,
                                              "int8_ops": {}, "float_ops": {}, "mixed_precision": None}),
                              "int8.samples"),
    "fp16_range count a string": (setter("fp16_range", {"overflowing_count": "7"}),
                                  "fp16_range.overflowing_count must be an integer"),
}


def golden_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _real(source: Path) -> dict:
    with np.load(source / "golden.npz") as z:
        return {k: z[k] for k in z.files}


def _lying_header(source: Path) -> bytes:
    """A small golden.npz whose images header declares 21 x 16384 x 16384 x 3 bytes (~16 GiB)."""
    real = _real(source)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False,
                                                       "shape": (SAMPLES, 16384, 16384, 3)})
        zf.writestr("images.npy", member.getvalue() + b"\0" * 1024)
        for key in ("outputs", "names"):
            member = io.BytesIO()
            np.save(member, real[key])
            zf.writestr(f"{key}.npy", member.getvalue())
    return buf.getvalue()


def _with(source: Path, **changes) -> bytes:
    arrays = _real(source)
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v(arrays[k]) if callable(v) else v
    return golden_bytes(**arrays)


GOLDEN_CASES = {
    "outputs float64": (lambda s: _with(s, outputs=lambda a: a.astype(np.float64)), "array 'outputs' is <f8"),
    "outputs one class short": (lambda s: _with(s, outputs=lambda a: a[:, :9]), "array 'outputs'"),
    "images float": (lambda s: _with(s, images=lambda a: a.astype(np.float32)), "array 'images'"),
    "one sample more": (lambda s: _with(s, outputs=lambda a: np.concatenate([a, a[:1]])), "array 'outputs'"),
    "an extra output": (lambda s: _with(s, outputs_1=lambda_zero()), "unexpected ['outputs_1']"),
    "no names": (lambda s: _with(s, names=None), "'names' must hold 21 strings"),
    "names as numbers": (lambda s: _with(s, names=np.arange(SAMPLES)), "'names' must hold 21 strings"),
    "no images": (lambda s: _with(s, images=None), "missing ['inputs']"),
    "pickled outputs": (lambda s: _with(s, outputs=lambda a: a.astype(object)), "pickled data"),
    "NaN reference": (lambda s: _with(s, outputs=lambda a: np.where(np.arange(10) == 3, np.nan, a).astype(np.float32)),
                      "holds 21 non-finite values"),
    "header declares 16 GiB": (_lying_header, "array 'images' is |u1 [21, 16384, 16384, 3]"),
    "not a zip file": (lambda s: b"PK\x03\x04 not really a zip archive" * 10, "is not a readable golden set"),
}


def lambda_zero():
    return np.zeros((SAMPLES, 10), np.float32)


def _assert_refused(bundle: Path, field: str) -> None:
    result = invoke("-q", "verify", bundle)
    err = result.stderr
    assert result.exit_code == 3, (result.exit_code, result.output)
    assert field in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeport: error: "), err  # one paragraph
    assert "bug" not in err and "Traceback" not in result.output and "unexpected" not in err.split("manifest")[0], err


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_a_malformed_manifest_is_refused_naming_the_field(source, tmp_path, case):
    change, field = MANIFEST_CASES[case]
    _assert_refused(make_case(source, tmp_path / "b", change), field)


@pytest.mark.parametrize("case", list(GOLDEN_CASES))
def test_a_malformed_golden_set_is_refused_naming_the_array(source, tmp_path, case):
    make, field = GOLDEN_CASES[case]
    _assert_refused(make_case(source, tmp_path / "b", golden=make(source)), field)


@pytest.mark.parametrize("change, field", [
    (setter("input.name", "pixels"), "input.name \"pixels\" is not the input of model.onnx"),
    (setter("outputs.0.name", "scores"), "outputs names \"scores\", but model.onnx outputs \"logits\""),
], ids=["input name", "output name"])
def test_a_manifest_that_does_not_describe_the_graph_is_refused(source, tmp_path, change, field):
    _assert_refused(make_case(source, tmp_path / "b", change), field)


def test_the_unchanged_copy_verifies(source, tmp_path):
    """The battery's copies are sound apart from their mutation (the seal and the links work)."""
    result = invoke("-q", "verify", make_case(source, tmp_path / "b", golden=golden_bytes(**_real(source))))
    assert result.exit_code == 0, result.output
