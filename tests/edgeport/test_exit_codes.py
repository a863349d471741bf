"""One exit-code rule across every command (runtime/errors.py, README "Exit status"), and one
--json envelope for every command's output, success and failure.

2: what the user typed (unknown names, paths that do not exist or are of the wrong kind,
options the bundle cannot satisfy), checked before any heavy work; 3: a failure while
working (bad content of a bundle, image, checkpoint or calibration set); 1: the work ran, a
check failed and its results are written. Each row runs the same mistake through every
command that can make it; the expected codes are the rule's, written out here.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from conftest import _rtx_missing_reason, invoke, run_cli

SEED = ("--model", "seed_resnet", "--no-verify")
USAGE, WORKING, CHECK_FAILED = 2, 3, 1
ENVELOPE = {"command", "ok", "exit_code", "bundle", "result", "error"}


@pytest.fixture(scope="module")
def bundle(exported):
    return exported("--model", "seed_resnet")  # FP32 only: no fp16, no int8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths of each kind of mistake: missing, a file where a folder goes, bad content."""
    root = tmp_path_factory.mktemp("mistakes")
    (root / "a_file.txt").write_text("not a bundle\n")
    (root / "only_text").mkdir()
    (root / "only_text" / "notes.txt").write_text("no images here\n")
    (root / "corrupt").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        (root / "corrupt" / name).write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "bad.pth").write_bytes(b"this is no checkpoint")
    (root / "bad.jpg").write_bytes(b"this is no image")
    return root


def _bundle_commands(bundle_path, image):
    """Every command that takes a bundle, with that bundle path."""
    b = str(bundle_path)
    return {
        "verify": ("verify", b),
        "bench": ("bench", b, "--iterations", "1", "--warmup", "0"),
        "predict": ("predict", b, str(image)),
        "report": ("report", b),
        "sensitivity": ("sensitivity", b, "--no-report"),
        "build": ("build", b, "--runtime", "tensorrt-rtx"),
        "triton": ("triton", b, "--repository", str(image.parent / "repo"), "--no-schema-check"),
        "lint": ("lint", b),
    }


def _code(args) -> int:
    return invoke(*args).exit_code


def test_a_bundle_path_that_does_not_exist_is_a_usage_error(tmp_path, files):
    image = files / "bad.jpg"
    codes = {name: _code(args) for name, args in _bundle_commands(tmp_path / "missing", image).items()}
    codes["sign"] = _code(("sign", tmp_path / "missing", "--key", files / "a_file.txt"))
    assert codes == dict.fromkeys(codes, USAGE)


def test_a_file_where_a_bundle_folder_goes_is_a_usage_error(files):
    image = files / "bad.jpg"
    codes = {name: _code(args) for name, args in _bundle_commands(files / "a_file.txt", image).items()
             if name != "lint"}  # lint takes a file: an ONNX graph
    assert codes == dict.fromkeys(codes, USAGE)


def test_a_precision_the_bundle_lacks_is_a_usage_error(bundle, tmp_path):
    image = tmp_path / "x.jpg"
    rows = {
        "verify": ("verify", bundle, "--precision", "int8"),
        "bench": ("bench", bundle, "--precision", "int8", "--iterations", "1"),
        "predict": ("predict", bundle, image, "--precision", "int8"),
        "triton": ("triton", bundle, "-r", tmp_path / "repo", "--precision", "int8", "--no-schema-check"),
    }
    if _rtx_missing_reason() is None:  # the engine runtime refuses it; without one, its absence comes first (3)
        rows["build"] = ("build", bundle, "--precision", "int8", "--runtime", "tensorrt-rtx")
    codes = {name: _code(args) for name, args in rows.items()}
    assert codes == dict.fromkeys(rows, USAGE)


def test_export_paths_that_do_not_exist_are_usage_errors(tmp_path, files):
    out = ("-o", tmp_path / "out")
    rows = {
        "factory file": ("export", "--model", tmp_path / "missing.py:build", *out),
        "onnx file": ("export", "--model", tmp_path / "missing.onnx", *out),
        "weights": ("export", "--model", "seed_resnet", "--weights", tmp_path / "missing.pth", *out),
        "weights folder": ("export", "--model", "seed_resnet", "--weights", f"{files}/", *out),
        "calib-data": ("export", *SEED, "--int8", "--calib-data", tmp_path / "missing", *out),
        "calib-data no images": ("export", *SEED, "--int8", "--calib-data", files / "only_text", *out),
        "golden-data": ("export", *SEED, "--golden-data", tmp_path / "missing", *out),
        "golden-data wrong file": ("export", *SEED, "--golden-data", files / "a_file.txt", *out),
        "labeled-data": ("export", *SEED, "--int8", "--max-drop", "1", "--labeled-data", tmp_path / "missing", *out),
        "class-names": ("export", *SEED, "--class-names", tmp_path / "missing.txt", *out),
        "output is a file": ("export", *SEED, "-o", files / "a_file.txt"),
    }
    codes = {name: _code(args) for name, args in rows.items()}
    assert codes == dict.fromkeys(rows, USAGE)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_device_data_paths_that_do_not_exist_are_usage_errors(bundle, tmp_path):
    rows = {
        "verify --labeled-data": ("verify", bundle, "--labeled-data", tmp_path / "missing"),
        "predict image": ("predict", bundle, tmp_path / "missing.jpg"),
        "lint file": ("lint", tmp_path / "missing.onnx"),
    }
    codes = {name: _code(args) for name, args in rows.items()}
    assert codes == dict.fromkeys(rows, USAGE)


def test_bad_content_is_a_failure_while_working(bundle, copy_bundle, tmp_path, files):
    broken = copy_bundle(bundle)
    (broken / "manifest.json").write_text("{ not json")
    rows = {name: args for name, args in _bundle_commands(broken, files / "bad.jpg").items()}
    rows["checkpoint"] = ("export", "--model", "seed_resnet", "--weights", files / "bad.pth", "-o", tmp_path / "o")
    rows["calibration images"] = ("export", *SEED, "--int8", "--calib-data", files / "corrupt", "-o", tmp_path / "o")
    rows["image"] = ("predict", bundle, files / "bad.jpg")
    codes = {name: _code(args) for name, args in rows.items()}
    assert codes == dict.fromkeys(rows, WORKING)


def test_a_check_that_ran_and_failed_exits_1_with_its_results(bundle):
    r = invoke("lint", bundle / "model.onnx", "--json")  # an FP32 graph: no INT8 graph for TensorRT
    assert r.exit_code == CHECK_FAILED
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == CHECK_FAILED and doc["ok"] is False and doc["result"]["passed"] is False


@pytest.mark.parametrize("folder", ["missing", "only_text", "corrupt"])
def test_unusable_calibration_data_fails_within_3_seconds(tmp_path, files, folder):
    start = time.monotonic()
    r = run_cli("export", "--model", "resnet18", "--weights", "none", "--int8", "--calib-data", files / folder,
                "-o", tmp_path / "out", timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode == (WORKING if folder == "corrupt" else USAGE), r.stderr
    assert "--calib-data" in r.stderr or "calibration folder" in r.stderr
    assert elapsed < 3.0, f"took {elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


# -- one JSON envelope ------------------------------------------------------------------------------
def _json(*args):
    r = invoke(*args, "--json")
    doc = json.loads(r.stdout)  # stdout holds the envelope alone (logs go to stderr)
    assert set(doc) == ENVELOPE, doc
    assert doc["exit_code"] == r.exit_code and doc["ok"] is (r.exit_code == 0)
    return doc


def test_every_command_answers_in_one_envelope(bundle, copy_bundle, tmp_path):
    from PIL import Image

    work = copy_bundle(bundle)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(image)
    docs = {
        "models": _json("models"),
        "verify": _json("verify", work),
        "bench": _json("bench", work, "--iterations", "2", "--warmup", "0"),
        "predict": _json("predict", work, image),
        "report": _json("report", work),
        "triton": _json("triton", work, "-r", tmp_path / "repo", "--no-schema-check"),
        "lint": _json("lint", work / "model.onnx"),
    }
    for name, doc in docs.items():
        assert doc["command"] == name and doc["error"] is None and isinstance(doc["result"], dict), doc
    for name in ("verify", "bench", "predict", "report", "triton"):
        assert docs[name]["bundle"] == str(work), (name, docs[name]["bundle"])
    assert docs["models"]["bundle"] is None
    row = docs["models"]["result"]["models"][0]  # resnet18: torchvision's IMAGENET1K_V1 is its default
    assert row["weights"] == ["none", "IMAGENET1K_V1"] and row["default_weights"] == "IMAGENET1K_V1"


def test_every_command_fails_in_the_same_envelope(tmp_path, files):
    image = files / "bad.jpg"
    rows = dict(_bundle_commands(tmp_path / "missing", image))
    rows["export"] = ("export", "--model", "no_such_model", "-o", tmp_path / "o")
    rows["sign"] = ("sign", tmp_path / "missing", "--key", files / "a_file.txt")
    rows["unknown option"] = ("verify", tmp_path / "missing", "--no-such-option")
    for name, args in rows.items():
        doc = _json(*args)
        assert doc["ok"] is False and doc["exit_code"] == USAGE and doc["result"] is None, (name, doc)
        assert doc["command"] == args[0], (name, doc)
        assert doc["error"]["message"] and "hint" in doc["error"], (name, doc)
