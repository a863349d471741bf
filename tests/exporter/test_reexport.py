"""Exporting over an existing bundle (exporter/reexport.py): never nest, refuse another model
without --force, carry over what byte-identical files still support, say what is dropped.

The seed ResNet at 32 px with random weights keeps each export at a few seconds. Engines are
written with runtime.engines.sidecar.write_engine (what `edgeport build` calls after TensorRT), so
their sidecars are the real format; the checks that they stay valid are runtime's own
(sidecar.integrity_problems), run on the new bundle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from conftest import invoke

BASE = ("--model", "seed_resnet", "--weights", "none", "--engine", "no")


def _export(out: Path, *extra):
    return invoke("export", *BASE, "--output", out, *extra)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _fake_engines(bundle: Path, precisions) -> list[str]:
    """One engine per precision, as `edgeport build` records them (source artifact and its sha256)."""
    from runtime.bundle import Bundle
    from runtime.engines.sidecar import EngineSidecar, SourceArtifact, write_engine
    from trt_fake import sidecar_dict

    b = Bundle.open(bundle)
    names = []
    for p in precisions:
        entry = b.artifact(p)
        name = f"model.{p}.sm89.trt10.3.0.engine"
        sidecar = EngineSidecar.from_dict(sidecar_dict(precision=p, version="10.3.0", build_options={"precision": p}))
        write_engine(bundle, name, f"plan of {p}".encode(), dataclasses.replace(
            sidecar, source=SourceArtifact(artifact=p, file=entry.file, sha256=entry.sha256)))
        names.append(name)
    return names


def _bench(bundle: Path, precisions: str):
    result = invoke("bench", bundle, "--precision", precisions, "--iterations", "3", "--warmup", "0", "-q")
    assert result.exit_code == 0, result.output


def _benchmarked(bundle: Path) -> set[str]:
    return {r["precision"] for r in _json(bundle / "report.json").get("benchmarks", {}).get("results", [])}


# -- where the bundle goes -------------------------------------------------------------------------
def test_output_that_is_a_bundle_is_refused_not_nested(exported, tmp_path):
    bundle = tmp_path / "seed_resnet"
    shutil.copytree(exported(*BASE[:4]), bundle)
    before = sorted(p.name for p in bundle.iterdir())
    result = _export(bundle)
    assert result.exit_code == 2, result.output
    assert "is itself a bundle" in result.output and "parent folder" in result.output
    assert f"-o {tmp_path} --name seed_resnet" in result.output
    assert sorted(p.name for p in bundle.iterdir()) == before  # nothing nested, nothing touched


def test_another_model_or_a_foreign_folder_needs_force(exported, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(exported(*BASE[:4]), out / "net")
    manifest = _sha(out / "net" / "manifest.json")
    # Another registry architecture: refused before the model is loaded.
    result = invoke("export", "--model", "seed_densenet", "--weights", "none", "--engine", "no", "--output", out,
                    "--name", "net")
    assert result.exit_code == 2, result.output
    assert "another model, seed_resnet (seed, 10 classes)" in result.output and "--force" in result.output
    # Same architecture, another class count: refused once the model is built.
    result = _export(out, "--name", "net", "--num-classes", "4")
    assert result.exit_code == 2, result.output
    assert "another model" in result.output and "4 classes" in result.output
    assert _sha(out / "net" / "manifest.json") == manifest
    # A folder that is not a bundle is not deleted silently either.
    (out / "notes").mkdir()
    (out / "notes" / "todo.txt").write_text("keep me")
    result = _export(out, "--name", "notes")
    assert result.exit_code == 2 and "not a readable edgeport bundle" in result.output, result.output
    assert (out / "notes" / "todo.txt").read_text() == "keep me"
    # --force replaces, and says what it replaced.
    result = invoke("export", "--model", "seed_densenet", "--weights", "none", "--engine", "no", "--output", out,
                    "--name", "net", "--force", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "a bundle of another model: seed_resnet (seed, 10 classes) -> seed_densenet" in result.output
    assert _json(out / "net" / "manifest.json")["model"]["architecture"] == "seed_densenet"


# -- what a re-export keeps and drops ---------------------------------------------------------------
def test_reexport_keeps_what_is_unchanged_and_lists_what_it_drops(tmp_path):
    out = tmp_path / "out"
    bundle = out / "seed_resnet"
    assert _export(out, "--fp16").exit_code == 0
    shas = {f: _sha(bundle / f) for f in ("model.onnx", "model.fp16.onnx")}
    engines = _fake_engines(bundle, ("fp32", "fp16"))
    _bench(bundle, "fp32,fp16")

    # Adding INT8: FP32/FP16 come out byte-identical, so their engines and benchmarks stay.
    result = _export(out, "--fp16", "--int8", "--calib-samples", "8")
    assert result.exit_code == 0, result.output
    assert {f: _sha(bundle / f) for f in shas} == shas
    assert all((bundle / e).is_file() and (bundle / (e + ".json")).is_file() for e in engines)
    assert _benchmarked(bundle) == {"fp32", "fp16"}
    assert "kept from the previous bundle" in result.output and "2 TensorRT engine(s)" in result.output
    assert "drops" not in result.output
    from runtime.bundle import Bundle
    from runtime.engines.sidecar import integrity_problems, list_engines

    b = Bundle.open(bundle)
    assert [r.engine_path.name for r in list_engines(b)] == sorted(engines)
    assert all(integrity_problems(r, b) == [] for r in list_engines(b))
    _fake_engines(bundle, ("int8",))
    _bench(bundle, "int8-cpu")
    assert _benchmarked(bundle) == {"fp32", "fp16", "int8-cpu"}

    # Without --int8: the INT8 files, their engine and benchmarks go, and one warning says so.
    result = _export(out, "--fp16")
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if "the re-export drops" in line)
    for text in ("the int8, int8-cpu artifacts", "model.int8.onnx", "calibration.json", "re-export with --int8",
                 "model.int8.sm89.trt10.3.0.engine", "edgeport build", "1 benchmark result (int8-cpu"):
        assert text in warning, (text, warning)
    assert not any((bundle / f).exists() for f in ("model.int8.onnx", "model.int8-cpu.onnx", "calib.cache",
                                                   "model.int8.sm89.trt10.3.0.engine"))
    assert _benchmarked(bundle) == {"fp32", "fp16"} and all((bundle / e).is_file() for e in engines)

    # Another input size changes every artifact: nothing derived from the old ones survives.
    result = _export(out, "--fp16", "--input-size", "48")
    assert result.exit_code == 0, result.output
    assert "input 3x32x32 -> 3x48x48" in result.output
    assert "2 TensorRT engine(s) built from files that changed" in result.output
    assert not any((bundle / e).exists() for e in engines) and _benchmarked(bundle) == set()


def test_reexport_keeps_only_regular_engines_whose_sha256_matches(tmp_path):
    """An "engine" that is a link to a secret (its sidecar claiming the secret's sha256), or a
    regular file the sidecar's sha256 does not describe, never survives a re-export."""
    out = tmp_path / "out"
    bundle = out / "seed_resnet"
    assert _export(out).exit_code == 0
    good, = _fake_engines(bundle, ("fp32",))
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"PRIVATE KEY MATERIAL")
    # A second fp32 "engine": a link to the secret, its sidecar forged to claim the secret's sha256.
    planted = "model.fp32.sm86.trt10.3.0.engine"
    sidecar = _json(bundle / (good + ".json"))
    sidecar["engine"] = {"file": planted, "sha256": _sha(secret), "bytes": secret.stat().st_size}
    (bundle / (planted + ".json")).write_text(json.dumps(sidecar))
    (bundle / planted).symlink_to(secret)
    # A third: a regular file whose sidecar records another sha256 (the file was swapped).
    swapped = "model.fp32.sm80.trt10.3.0.engine"
    sidecar["engine"] = {"file": swapped, "sha256": _sha(bundle / good), "bytes": 10}
    (bundle / (swapped + ".json")).write_text(json.dumps(sidecar))
    (bundle / swapped).write_bytes(b"not the plan the sidecar describes")

    result = _export(out)
    assert result.exit_code == 0, result.output
    assert (bundle / good).is_file() and (bundle / (good + ".json")).is_file()
    for name in (planted, swapped):
        assert not (bundle / name).exists() and not (bundle / name).is_symlink(), name
        assert not (bundle / (name + ".json")).exists(), name
        assert name in result.output  # listed as dropped, with the reason
    assert "1 TensorRT engine(s)" in result.output
    assert not any(p.is_symlink() for p in bundle.iterdir())
    assert secret.read_bytes() == b"PRIVATE KEY MATERIAL"
