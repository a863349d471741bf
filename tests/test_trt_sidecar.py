"""Engine sidecars and the refusal of mismatched engines, with fabricated sidecars (no TensorRT)."""

from __future__ import annotations

import json

import pytest

from runtime.bundle import Bundle
from runtime.errors import BundleError, EdgeportError
from runtime.trt.device import GpuInfo, TargetEnv
from runtime.trt.sidecar import (compatibility_notes, compatibility_problems, engine_precisions, list_engines,
                                 resolve_engine, write_engine)
from conftest import edit_manifest
from trt_fake import make_bundle

ORIN = GpuInfo("Orin", "8.7", 8 << 30, True)
A10 = GpuInfo("NVIDIA A10", "8.6", 24 << 30, False)
A100 = GpuInfo("NVIDIA A100-SXM4-40GB", "8.0", 40 << 30, False)
L4 = GpuInfo("NVIDIA L4", "8.9", 24 << 30, False)
T4 = GpuInfo("Tesla T4", "7.5", 16 << 30, False)
H100 = GpuInfo("NVIDIA H100", "9.0", 80 << 30, False)


def env(trt="10.3.0.30", gpu=ORIN, dla_cores=None, cuda="12.6"):
    return TargetEnv(tensorrt=trt, gpu=gpu, cuda_runtime=cuda, jetson=gpu is ORIN, dla_cores=dla_cores)


def sidecar(**over):
    sc = {"precision": "fp16", "tensorrt": "10.3.0.30", "gpu": {"name": "Orin", "compute_capability": "8.7"},
          "cuda": {"runtime": "12.6"}, "dla_core": None, "hardware_compat": "none", "version_compatible": False,
          "build_options": {"precision": "fp16", "min_batch": 1, "opt_batch": 8, "max_batch": 32}}
    sc.update(over)
    return sc


# -- the rules -------------------------------------------------------------------------------------
def test_exact_match_loads():
    assert compatibility_problems(sidecar(), env()) == []


def test_other_gpu_refused_and_named():
    problems = compatibility_problems(sidecar(), env(gpu=A10))
    assert problems == ["it was built for compute capability 8.7 (Orin), and this GPU has compute capability 8.6 "
                        "(NVIDIA A10)"]


def test_other_tensorrt_refused_even_for_a_patch_or_build_number():
    assert "TensorRT 10.3.0.30 built it, this machine has TensorRT 10.4.0" in \
        compatibility_problems(sidecar(), env(trt="10.4.0"))[0]
    assert compatibility_problems(sidecar(), env(trt="10.3.1"))
    assert compatibility_problems(sidecar(), env(trt="10.3.0.26"))  # build numbers must match too
    assert compatibility_problems(sidecar(), env(trt="10.3.0")) == []  # one side without a build number
    assert compatibility_problems(sidecar(tensorrt="8.6.2"), env(trt="10.3.0"))


def test_version_compatible_engines_run_on_later_releases():
    vc = sidecar(version_compatible=True, tensorrt="10.3.0")
    assert compatibility_problems(vc, env(trt="10.8.1")) == []
    assert compatibility_problems(vc, env(trt="10.3.0")) == []
    assert compatibility_problems(vc, env(trt="11.1.0")) == []  # NVIDIA: 10 VC engines run on 11
    assert "not on TensorRT 10.2.0" in compatibility_problems(vc, env(trt="10.2.0"))[0]  # never older
    assert compatibility_problems(sidecar(version_compatible=True, tensorrt="8.6.1"), env(trt="10.3.0")) == []
    assert compatibility_problems(sidecar(version_compatible=True, tensorrt="8.6.1"), env(trt="11.0.0"))


def test_hardware_compatible_engines_run_on_any_ampere_or_newer():
    hc = sidecar(hardware_compat="ampere+", gpu={"name": "NVIDIA A10", "compute_capability": "8.6"})
    for gpu in (A10, A100, L4, H100, ORIN):
        assert compatibility_problems(hc, env(gpu=gpu)) == [], gpu
    assert "needs compute capability >= 8.0, and this GPU has compute capability 7.5 (Tesla T4)" in \
        compatibility_problems(hc, env(gpu=T4))[0]
    assert compatibility_notes(hc, env(gpu=L4)) == []  # other models are the point of ampere+
    # Hardware compatibility does not extend a DLA engine to other devices.
    dla_hc = sidecar(hardware_compat="ampere+", dla_core=0)
    assert compatibility_problems(dla_hc, env(gpu=A100))


def test_both_mismatches_are_listed_and_dla_cores_checked():
    problems = compatibility_problems(sidecar(), env(trt="10.8.0", gpu=H100))
    assert len(problems) == 2
    assert compatibility_problems(sidecar(dla_core=1), env(dla_cores=1)) == \
        ["it runs on DLA core 1, and TensorRT sees 1 DLA core(s) here"]
    assert compatibility_problems(sidecar(dla_core=1), env(dla_cores=2)) == []
    assert compatibility_problems(sidecar(), env(gpu=None)) == ["no CUDA GPU is visible here"]
    assert compatibility_problems(sidecar(), env(trt=None)) == ["TensorRT is not installed here"]


def test_notes_for_same_cc_other_model_and_cuda_major():
    sc = sidecar(gpu={"name": "NVIDIA A10G", "compute_capability": "8.6"}, cuda={"runtime": "11.8"})
    notes = compatibility_notes(sc, env(gpu=A10, cuda="12.2"))
    assert compatibility_problems(sc, env(gpu=A10)) == []
    assert any("built on NVIDIA A10G, running on NVIDIA A10" in n for n in notes)
    assert any("CUDA 11.8" in n for n in notes)


# -- resolve_engine on a bundle --------------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path):
    return Bundle.open(make_bundle(tmp_path / "net"))


def add_engine(bundle, name, precision="fp16", source="fp16", **over):
    art = bundle.manifest.artifacts[source]
    over.setdefault("built_at", "2026-01-01T00:00:00+00:00")
    sc = sidecar(precision=precision, source={"artifact": source, "file": art.file, "sha256": art.sha256},
                 **over)
    return write_engine(bundle.root, name, b"plan bytes of " + name.encode(), sc)


def test_resolve_picks_the_fitting_engine(bundle):
    add_engine(bundle, "model.fp16.sm86.trt10.3.0.engine", gpu={"name": "NVIDIA A10", "compute_capability": "8.6"})
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    add_engine(bundle, "model.fp16.dla0.sm87.trt10.3.0.engine", dla_core=0, source="fp32")
    assert resolve_engine(bundle, "fp16", env=env()).engine_path.name == "model.fp16.sm87.trt10.3.0.engine"
    assert resolve_engine(bundle, "fp16", env=env(gpu=A10)).engine_path.name == "model.fp16.sm86.trt10.3.0.engine"
    dla = resolve_engine(bundle, "fp16", env=env(dla_cores=2), dla_core=0)
    assert dla.engine_path.name == "model.fp16.dla0.sm87.trt10.3.0.engine" and dla.target_label == "dla0"
    assert engine_precisions(bundle) == ["fp16"]


def test_resolve_prefers_device_specific_over_portable(bundle):
    add_engine(bundle, "model.fp16.ampere_plus.sm87.trt10.3.0.engine", hardware_compat="ampere+",
               built_at="2026-06-01T00:00:00+00:00")
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    assert resolve_engine(bundle, "fp16", env=env()).engine_path.name == "model.fp16.sm87.trt10.3.0.engine"
    assert resolve_engine(bundle, "fp16", env=env(gpu=L4)).engine_path.name == \
        "model.fp16.ampere_plus.sm87.trt10.3.0.engine"


def test_resolve_refuses_a_mismatch_with_the_rebuild_command(bundle):
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    with pytest.raises(EdgeportError) as err:
        resolve_engine(bundle, "fp16", env=env(trt="10.7.0", gpu=L4))
    text = err.value.render()
    assert "No fp16 engine in bundle" in text and "none is loaded" in text
    assert "TensorRT 10.3.0.30 built it, this machine has TensorRT 10.7.0" in text
    assert "compute capability 8.9 (NVIDIA L4)" in text
    assert text.endswith(f"Rebuild it on this machine: edgeport build {bundle.root} --precision fp16 --min-batch 1 "
                         "--opt-batch 8 --max-batch 32")


def test_resolve_refuses_a_tampered_engine(bundle):
    rec = add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    rec.engine_path.write_bytes(b"plan bytes of something else")
    with pytest.raises(BundleError, match="refused before loading: the engine's sha256 is") as err:
        resolve_engine(bundle, "fp16", env=env())
    assert "edgeport build" in err.value.render()
    rec.engine_path.unlink()
    with pytest.raises(BundleError, match="engine file model.fp16.sm87.trt10.3.0.engine is missing"):
        resolve_engine(bundle, "fp16", env=env())


def test_resolve_refuses_an_engine_from_an_older_export(bundle):
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    edit_manifest(bundle.root, lambda m: m["artifacts"]["fp16"].update(sha256="f" * 64))  # re-exported: new graph
    with pytest.raises(BundleError, match="the bundle was re-exported"):
        resolve_engine(Bundle.open(bundle.root), "fp16", env=env())


def test_missing_engines_say_how_to_build(bundle):
    with pytest.raises(BundleError, match="has no int8 TensorRT engine") as err:
        resolve_engine(bundle, "int8", env=env())
    assert f"edgeport build {bundle.root} --precision int8" in err.value.render()
    with pytest.raises(BundleError, match="has no TensorRT engines yet"):
        engine_precisions(bundle)


def test_listing_ignores_junk_and_orphans(bundle):
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    (bundle.root / "model.fp32.sm87.trt10.3.0.engine").write_bytes(b"orphan without sidecar")
    (bundle.root / "broken.engine.json").write_text("{not json")
    (bundle.root / "other.engine.json").write_text(json.dumps({"engine": {"file": "../escape.engine"}}))
    assert [r.engine_path.name for r in list_engines(bundle)] == ["model.fp16.sm87.trt10.3.0.engine"]


def test_rewriting_an_engine_replaces_its_sidecar(bundle):
    first = add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    second = write_engine(bundle.root, "model.fp16.sm87.trt10.3.0.engine", b"new plan", dict(first.sidecar))
    assert second.sidecar["engine"]["sha256"] != first.sidecar["engine"]["sha256"]
    assert json.loads(second.sidecar_path.read_text())["engine"]["bytes"] == len(b"new plan")
    assert resolve_engine(bundle, "fp16", env=env()).engine_path.read_bytes() == b"new plan"
