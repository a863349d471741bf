"""The typed bundle contract (runtime/manifest.py): round trip, digest, refusals.

These tests build manifests by hand (no export), so they run in milliseconds.
"""

from __future__ import annotations

import copy
import json

import pytest

from runtime.bundle import Bundle
from runtime.errors import BundleError
from runtime.manifest import SCHEMA_VERSION, FileEntry, Int8Info, Manifest

V2 = {
    "schema_version": 2,
    "created": "2026-11-01T00:00:00+00:00",
    "model": {"name": "net", "architecture": "net", "source": "user", "spec": "net.py:build", "num_classes": 4,
              "class_names": None, "params": 100, "gmacs": 0.001},
    "weights": {"spec": "none", "random_init": True, "description": "random init (seed 0)", "note": "x"},
    "input": {"name": "input", "shape": ["batch", 3, 8, 8], "dtype": "float32", "min_batch": 1, "max_batch": 4},
    "outputs": [{"name": "logits", "shape": ["batch", 4], "dtype": "float32"}],
    "reference": "pytorch",
    "preprocessing": {"resize": 9, "crop": 8, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "channels": 3,
                      "interpolation": "bilinear"},
    "opset": 17,
    "artifacts": {"fp32": {"file": "model.onnx", "sha256": "a" * 64, "bytes": 10}},
    "int8": {"method": "minmax", "samples": 80, "format": "QDQ", "recipe_version": 3,
             "trt_calibration_cache": {"file": "calib.cache", "sha256": "b" * 64, "header": "TRT-8601-EntropyCalibration2",
                                       "note": "n"}},
    "golden": {"file": "golden.npz", "sha256": "c" * 64, "bytes": 5, "samples": 21, "source": "builtin",
               "skipped": 0},
}


def test_manifest_parses_into_typed_sections():
    m = Manifest.parse(copy.deepcopy(V2))
    assert m.schema_version == SCHEMA_VERSION == 2
    assert [o.name for o in m.outputs] == ["logits"] and m.output.shape == ["batch", 4]
    assert m.reference == "pytorch" and m.digest is None
    assert m.input.chw == (3, 8, 8) and m.input.max_batch == 4
    assert isinstance(m.artifacts["fp32"], FileEntry) and m.artifacts["fp32"].sha256 == "a" * 64
    assert isinstance(m.int8, Int8Info) and m.int8.trt_calibration_cache.header.startswith("TRT-8601")
    # descriptive keys are kept, not dropped
    assert m.int8.extra["recipe_version"] == 3 and m.weights.extra["note"] == "x"
    assert m.golden.samples == 21 and m.num_classes == 4


def test_a_schema_1_manifest_is_refused_with_re_export(tmp_path):
    data = copy.deepcopy(V2)
    data["schema_version"] = 1
    data["output"] = data.pop("outputs")[0]  # the layout development builds wrote
    with pytest.raises(BundleError) as exc:
        Bundle.open(_write_bundle(tmp_path, data))
    assert "schema version 1" in str(exc.value) and "Re-export" in exc.value.render()


def test_round_trip_keeps_every_key_and_the_digest_seals_the_content():
    m = Manifest.parse(copy.deepcopy(V2)).sealed()
    data = json.loads(m.to_json())
    assert next(iter(data)) == "schema_version"  # readers see the version first
    again = Manifest.parse(data)
    assert again.to_dict() == m.to_dict()
    assert again.digest == again.content_digest()
    # every key the file had survives
    assert set(V2) <= set(data)
    assert set(V2["int8"]) <= set(data["int8"])
    data["preprocessing"]["mean"] = [0.4, 0.5, 0.5]
    assert Manifest.parse(data).content_digest() != m.digest


def _write_bundle(tmp_path, data) -> object:
    root = tmp_path / "b"
    root.mkdir(exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(data))
    return root


def test_an_edited_manifest_is_refused_as_edited_not_as_a_corrupt_artifact(tmp_path):
    sealed = Manifest.parse(copy.deepcopy(V2)).sealed().to_dict()
    root = _write_bundle(tmp_path, sealed)
    assert Bundle.open(root).manifest.digest == sealed["digest"]  # untouched: opens
    sealed["input"]["max_batch"] = 64  # a hand edit
    _write_bundle(tmp_path, sealed)
    with pytest.raises(BundleError) as exc:
        Bundle.open(root)
    assert "manifest.json was edited after export" in str(exc.value)
    assert "sha256" not in exc.value.render().split("so its")[0]  # not blamed on an artifact


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=99), "schema version 99"),
    (lambda d: d.update(schema_version="2"), "no integer schema_version"),
    (lambda d: d.pop("artifacts"), "lacks the 'artifacts' section"),
    (lambda d: d.pop("outputs"), "lacks the 'outputs' section"),
    (lambda d: d["input"].pop("name"), "input lacks name"),
    (lambda d: d.update(int8={"samples": 3}), "int8 lacks method"),
    (lambda d: d.update(artifacts={"fp32": "model.onnx"}), "artifacts.fp32 must be an object"),
])
def test_malformed_manifests_are_refused_with_the_reason(tmp_path, change, message):
    data = copy.deepcopy(V2)
    change(data)
    root = _write_bundle(tmp_path, data)
    with pytest.raises(BundleError) as exc:
        Bundle.open(root)
    assert message in str(exc.value)


def test_a_parent_folder_names_the_bundles_inside(tmp_path):
    sealed = Manifest.parse(copy.deepcopy(V2)).sealed().to_dict()
    for name in ("resnet18", "densenet121"):
        (tmp_path / "exports" / name).mkdir(parents=True)
        (tmp_path / "exports" / name / "manifest.json").write_text(json.dumps(sealed))
    with pytest.raises(BundleError) as exc:
        Bundle.open(tmp_path / "exports")
    assert "holds 2: densenet121, resnet18" in str(exc.value) and "Re-export" not in exc.value.render()
