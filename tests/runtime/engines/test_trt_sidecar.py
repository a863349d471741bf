"""Engine sidecars and the refusal of mismatched engines, with fabricated sidecars (no TensorRT)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from runtime.bundle import Bundle
from runtime.errors import BundleError, EdgeportError
from runtime.engines.device import GpuInfo, TargetEnv
from runtime.engines.sidecar import (EngineSidecar, SourceArtifact, compatibility_notes, compatibility_problems, engine_precisions, list_engines, resolve_engine, write_engine)
from conftest import edit_manifest
from trt_fake import make_bundle, sidecar_dict

ORIN = GpuInfo("Orin", "8.7", 8 << 30, True)
A10 = GpuInfo("NVIDIA A10", "8.6", 24 << 30, False)
A100 = GpuInfo("NVIDIA A100-SXM4-40GB", "8.0", 40 << 30, False)
L4 = GpuInfo("NVIDIA L4", "8.9", 24 << 30, False)
T4 = GpuInfo("Tesla T4", "7.5", 16 << 30, False)
H100 = GpuInfo("NVIDIA H100", "9.0", 80 << 30, False)


def env(trt="10.3.0.30", gpu=ORIN, dla_cores=None, cuda="12.6"):
    return TargetEnv(tensorrt=trt, gpu=gpu, cuda_runtime=cuda, jetson=gpu is ORIN, dla_cores=dla_cores)


def sidecar(**over):
    """That sidecar read back through the strict reader."""
    return EngineSidecar.from_dict(sidecar_dict(**over), "test.engine.json")


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
    assert compatibility_problems(sidecar(version="8.6.2"), env(trt="10.3.0"))


def test_version_compatible_engines_run_on_later_releases():
    vc = sidecar(version_compatible=True, version="10.3.0")
    assert compatibility_problems(vc, env(trt="10.8.1")) == []
    assert compatibility_problems(vc, env(trt="10.3.0")) == []
    assert compatibility_problems(vc, env(trt="11.1.0")) == []  # NVIDIA: 10 VC engines run on 11
    assert "not on TensorRT 10.2.0" in compatibility_problems(vc, env(trt="10.2.0"))[0]  # never older
    assert compatibility_problems(sidecar(version_compatible=True, version="8.6.1"), env(trt="10.3.0")) == []
    assert compatibility_problems(sidecar(version_compatible=True, version="8.6.1"), env(trt="11.0.0"))


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
                         "--opt-batch 2 --max-batch 4")


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


def test_listing_ignores_orphan_engines_and_refuses_malformed_sidecars(bundle):
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    (bundle.root / "model.fp32.sm87.trt10.3.0.engine").write_bytes(b"orphan without sidecar")
    assert [r.engine_path.name for r in list_engines(bundle)] == ["model.fp16.sm87.trt10.3.0.engine"]
    (bundle.root / "broken.engine.json").write_text("{not json")
    with pytest.raises(BundleError, match="engine sidecar broken.engine.json cannot be read as JSON"):
        list_engines(bundle)
    (bundle.root / "broken.engine.json").unlink()
    escape = sidecar_dict(engine={"file": "../escape.engine", "sha256": "ab" * 32, "bytes": 1})
    (bundle.root / "other.engine.json").write_text(json.dumps(escape))
    with pytest.raises(BundleError, match=r"other.engine.json: engine.file must be a file name ending in \.engine, "
                                          r"got '../escape.engine'"):
        list_engines(bundle)
    elsewhere = sidecar_dict(engine={"file": "model.fp16.sm87.trt10.3.0.engine", "sha256": "ab" * 32, "bytes": 1})
    (bundle.root / "other.engine.json").write_text(json.dumps(elsewhere))
    with pytest.raises(BundleError, match="engine.file must name the engine next to it"):
        list_engines(bundle)


def test_rewriting_an_engine_replaces_its_sidecar(bundle):
    first = add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    second = write_engine(bundle.root, "model.fp16.sm87.trt10.3.0.engine", b"new plan", first.sidecar)
    assert second.sidecar.engine.sha256 != first.sidecar.engine.sha256
    assert json.loads(second.sidecar_path.read_text())["engine"]["bytes"] == len(b"new plan")
    assert resolve_engine(bundle, "fp16", env=env()).engine_path.read_bytes() == b"new plan"


# -- the strict reader ---------------------------------------------------------------------------------------
def test_a_written_sidecar_reads_back_equal(bundle):
    record = add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    data = json.loads(record.sidecar_path.read_text())
    assert data["sidecar_version"] == 2 and data["version"] == "10.3.0.30" and "tensorrt" not in data
    (listed,) = list_engines(bundle)
    assert listed.sidecar == record.sidecar
    assert (listed.sidecar.runtime, listed.sidecar.messages, listed.sidecar.gpu.jetson) == \
        ("tensorrt", ("WARNING: x",), True)


@pytest.mark.parametrize("over, message", [
    ({"profile": {"min": 1, "opt": 2, "max": -5}}, "profile.max must be a positive integer <= 4096, got -5"),
    ({"profile": {"min": 1, "opt": 2, "max": 5000}}, "profile.max must be a positive integer <= 4096, got 5000"),
    ({"profile": {"min": 4, "opt": 2, "max": 4}}, "profile must be min <= opt <= max"),
    ({"profile": {"min": 1, "opt": 2, "max": True}}, "profile.max must be a positive integer <= 4096, got True"),
    ({"build_options": {"precision": "fp16", "max_batch": -5}},
     "build_options.max_batch must be a positive integer <= 4096, got -5"),
    ({"build_options": {"precision": "fp16", "runtime": "tensorrt; rm -rf ~"}},
     "build_options.runtime must be one of tensorrt, tensorrt-rtx"),
    ({"build_options": {"precision": "fp16", "dla_core": "0 --evil"}}, "build_options.dla_core must be an integer"),
    ({"input": {"name": "input", "min": [1, 3, 4, 4], "opt": [2, 3, 4, 4], "max": [8, 3, 4, 4]}},
     r"input.max must be a shape of positive integers whose batch is profile.max \(4\)"),
    ({"runtime": "tensorrt-llm"}, "runtime must be one of tensorrt, tensorrt-rtx, got 'tensorrt-llm'"),
    ({"precision": "fp8"}, "precision must be one of fp32, fp16, int8, got 'fp8'"),
    ({"version": 10.3}, "version must be a release number such as 10.3.0.30, got 10.3"),
    ({"dla_core": -1}, "dla_core must be an integer >= 0 and <= 15, got -1"),
    ({"gpu": {"name": "Orin", "compute_capability": "sm87"}}, "gpu.compute_capability must be a compute capability"),
    ({"gpu": {"name": "Orin", "compute_capability": "8.7", "cores": 2}}, "unknown field gpu.cores"),
    ({"compute_capabilities": ["8.6", 9]}, "compute_capabilities must be a list of a compute capability"),
    ({"version_compatible": "yes"}, "version_compatible must be true or false, got 'yes'"),
    ({"source": {"artifact": "fp16", "file": "model.fp16.onnx", "sha256": "xyz"}},
     "source.sha256 must be a sha256 \\(64 hex digits\\), got 'xyz'"),
    ({"engine": {"file": "model.fp16.sm87.trt10.3.0.engine", "sha256": "ab" * 32, "bytes": -1}},
     "engine.bytes must be an integer >= 0, got -1"),
    ({"surprise": 1}, "unknown field surprise"),
    ({"sidecar_version": 1}, "sidecar_version must be 2"),
    ({"sidecar_version": 3}, "sidecar_version must be 2"),
])
def test_malformed_fields_are_refused_naming_the_sidecar_and_the_field(over, message):
    with pytest.raises(BundleError, match="engine sidecar model.int8.x.engine.json: " + message) as err:
        EngineSidecar.from_dict(sidecar_dict(**over), "model.int8.x.engine.json")
    assert "probably a bug" not in err.value.render()


@pytest.mark.parametrize("field", ["precision", "runtime", "version", "source", "engine", "profile", "input"])
def test_missing_required_fields_are_named(field):
    data = sidecar_dict()
    del data[field]
    with pytest.raises(BundleError, match=f"the field {field} is missing"):
        EngineSidecar.from_dict(data, "x.engine.json")


def test_a_malformed_sidecar_stops_resolve_before_anything_loads(bundle):
    record = add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    data = json.loads(record.sidecar_path.read_text())
    data["profile"]["max"] = -5
    record.sidecar_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="model.fp16.sm87.trt10.3.0.engine.json: profile.max must be a positive"):
        resolve_engine(bundle, "fp16", env=env())


# -- TensorRT-RTX engines ---------------------------------------------------------------------------------
RTX_4090 = GpuInfo("NVIDIA GeForce RTX 4090", "8.9", 24 << 30, False)
RTX_3060 = GpuInfo("NVIDIA GeForce RTX 3060", "8.6", 12 << 30, False)
QUADRO_RTX = GpuInfo("Quadro RTX 8000", "7.5", 48 << 30, False)


def rtx_sidecar(**over):
    """A TensorRT-RTX sidecar as `edgeport build --runtime tensorrt-rtx` writes it (no build GPU, default targets)."""
    sc = sidecar(runtime="tensorrt-rtx", version="1.7.1.116", gpu=None, cuda={}, timing_cache={},
                 default_compute_capabilities=["8.0", "8.6", "8.9", "12.0"], runtime_cache={"enabled": True, "path": None},
                 build_options={"precision": "fp16", "runtime": "tensorrt-rtx"})
    return dataclasses.replace(sc, **over)


def rtx_env(gpu=RTX_4090, version="1.7.1.116"):
    return TargetEnv(tensorrt=version, gpu=gpu)


@pytest.mark.parametrize("sidecar_over, env_over, problem", [
    ({}, {}, None),  # default targets, an Ada GPU
    ({}, {"gpu": RTX_3060}, None),
    ({}, {"gpu": H100}, None),  # not refused by edgeport: "8.0 and later" per NVIDIA; the library decides
    ({}, {"gpu": QUADRO_RTX}, "default targets (8.0, 8.6, 8.9, 12.0), which leave out compute capability 7.5"),
    ({"compute_capabilities": ("7.5",)}, {"gpu": QUADRO_RTX}, None),
    ({"compute_capabilities": ("7.5", "8.6")}, {"gpu": RTX_4090}, "built for compute capabilities 7.5, 8.6"),
    ({}, {"version": "1.7.0.50"}, "TensorRT-RTX 1.7.1.116 built it, this machine has TensorRT-RTX 1.7.0.50"),
    ({}, {"version": "1.7.1"}, None),  # one side without a build number
    ({}, {"gpu": None}, "no CUDA GPU is visible here"),
    ({}, {"version": None}, "TensorRT-RTX is not installed here"),
])
def test_rtx_compatibility_rules(sidecar_over, env_over, problem):
    problems = compatibility_problems(rtx_sidecar(**sidecar_over), rtx_env(**env_over))
    assert problems == [] if problem is None else problem in " ".join(problems), problems


def test_rtx_note_for_gpus_outside_the_documented_default_targets():
    assert compatibility_notes(rtx_sidecar(), rtx_env()) == []
    (note,) = compatibility_notes(rtx_sidecar(), rtx_env(gpu=H100))
    assert "9.0 is not among the default targets NVIDIA documents" in note


def test_resolve_keeps_tensorrt_and_rtx_engines_apart(bundle):
    art = bundle.manifest.artifacts["fp16"]
    source = {"artifact": "fp16", "file": art.file, "sha256": art.sha256}
    add_engine(bundle, "model.fp16.sm87.trt10.3.0.engine")
    write_engine(bundle.root, "model.fp16.rtx1.7.1.engine", b"rtx plan", rtx_sidecar(source=SourceArtifact(**source)))
    write_engine(bundle.root, "model.fp16.sm89.rtx1.7.1.engine", b"rtx plan 89",
                 rtx_sidecar(source=SourceArtifact(**source), compute_capabilities=("8.9",)))
    assert resolve_engine(bundle, "fp16", env=env()).engine_path.name == "model.fp16.sm87.trt10.3.0.engine"
    # Both RTX engines fit an RTX 4090; the one built for its compute capability is preferred.
    chosen = resolve_engine(bundle, "fp16", runtime="tensorrt-rtx", env=rtx_env())
    assert chosen.engine_path.name == "model.fp16.sm89.rtx1.7.1.engine" and chosen.runtime == "tensorrt-rtx"
    assert resolve_engine(bundle, "fp16", runtime="tensorrt-rtx", env=rtx_env(gpu=RTX_3060)).engine_path.name == \
        "model.fp16.rtx1.7.1.engine"
    assert engine_precisions(bundle, "tensorrt-rtx") == ["fp16"] == engine_precisions(bundle)
    with pytest.raises(BundleError, match="has no int8 TensorRT-RTX engine") as err:
        resolve_engine(bundle, "int8", runtime="tensorrt-rtx", env=rtx_env())
    assert "--precision int8 --runtime tensorrt-rtx" in err.value.render()


# -- TensorRT-RTX's runtime cache plumbing (the IRuntimeConfig/IRuntimeCache objects need a GPU:
#    small stand-ins with the real method names; the GPU test in test_rtx_build.py runs the real ones)
class _Cache:
    def __init__(self, accepts: bool):
        self.accepts, self.loaded = accepts, None

    def deserialize(self, blob):
        self.loaded = bytes(blob) if self.accepts else None
        return self.accepts


class _RuntimeConfig:
    def __init__(self, accepts: bool):
        self.cache, self.attached = _Cache(accepts), None

    def create_runtime_cache(self):
        return self.cache

    def set_runtime_cache(self, cache):
        self.attached = cache
        return True


class _Engine:
    def __init__(self, accepts: bool = True):
        self.config = _RuntimeConfig(accepts)

    def create_runtime_config(self):
        return self.config


@pytest.mark.parametrize("blob, accepts, loaded, warned", [
    (b"", True, False, False),  # first run: an empty cache, nothing to load
    (b"kernels", True, True, False),
    (b"kernels from another GPU", False, False, True),  # IRuntimeCache.deserialize says no: start anew
])
def test_runtime_cache_is_attached_and_loaded_when_it_fits(blob, accepts, loaded, warned):
    from runtime.engines.rtx import runtime_config_with_cache

    engine, messages = _Engine(accepts), []
    config, cache, was_loaded = runtime_config_with_cache(engine, blob, messages)
    assert config is engine.config and config.attached is cache and was_loaded is loaded
    assert cache.loaded == (blob if loaded else None)
    assert bool(messages) is warned and (not warned or "another GPU" in messages[0])
