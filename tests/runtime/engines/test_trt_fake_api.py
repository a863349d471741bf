"""edgeport's TensorRT calls against a fake `tensorrt` (tests/trt_fake.py) for 8.6, 10.x and 11.x.

These check which API calls and flags each version gets, that engines + sidecars land in
the bundle, and that the runner drives the I/O tensor API correctly (shapes, addresses,
chunking). They prove the plumbing, not TensorRT's numerics: that needs `make gpu-check`.
The fake's enums and members are NVIDIA's (tests/data/trt_api.json, checked in
test_trt_api_pinned.py), so expected flag bits below are read from that file.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from runtime.bundle import Bundle
from runtime.errors import BundleError, EdgeportError, UsageError
from runtime.engines.build import BuildOptions, build_engines
from runtime.engines.builder import build_serialized
from runtime.engines.registry import ENGINE_RUNTIMES
from runtime.engines.device import GpuInfo, TargetEnv
from runtime.engines.policy import TrtVersion
from runtime.engines.tensorrt import plan_build
from runtime.engines.sidecar import list_engines, resolve_engine
from trt_fake import FakeMemory, FakeTRT, load_api, make_bundle, onnx_logits

TENSORRT = ENGINE_RUNTIMES["tensorrt"]

ORIN = GpuInfo("Orin", "8.7", total_memory=8 << 30, integrated=True, source="test")
A10 = GpuInfo("NVIDIA A10", "8.6", total_memory=24 << 30, integrated=False, source="test")
SHAPES = ((1, 3, 4, 4), (2, 3, 4, 4), (4, 3, 4, 4))


def env_for(trt, gpu=ORIN, jetson=True, dla_cores=None):
    return TargetEnv(tensorrt=trt.__version__, gpu=gpu, cuda_runtime="12.6", cuda_driver="12.6", jetson=jetson,
                     dla_cores=dla_cores)


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    return Bundle.open(make_bundle(tmp_path / "net"))


def _build(trt, plan, bundle, **kw):
    return build_serialized(trt, plan, bundle.artifact_path(plan.source), "input", SHAPES, engine_runtime=TENSORRT, workspace_mib=512, **kw)


def real_flag_bit(release: str, name: str) -> int:
    """1 << NetworkDefinitionCreationFlag.<name> in NVIDIA's bindings of ``release``."""
    return 1 << load_api()[f"tensorrt {release}"]["enums"]["NetworkDefinitionCreationFlag"][name]


# -- builder calls per version -------------------------------------------------------------------
def test_trt86_flag_path_calls(bundle):
    trt = FakeTRT("8.6.1")
    plan = plan_build(TrtVersion.parse(trt.__version__), "fp16", bundle.precisions)
    out = _build(trt, plan, bundle, builder_level=5)
    assert trt.called("builder.create_network") == [("builder.create_network", real_flag_bit("8.6.1", "EXPLICIT_BATCH"))]
    assert trt.called("parser.parse_from_file") == [("parser.parse_from_file", "model.onnx")]  # the FP32 graph
    assert ("config.set_flag", "FP16") in trt.calls
    assert ("config.set_memory_pool_limit", "WORKSPACE", 512 << 20) in trt.calls
    assert ("config.builder_optimization_level", 5) in trt.calls
    assert ("profile.set_shape", "input", *SHAPES) in trt.calls
    assert out.plan.startswith(b"FAKEPLAN") and out.timing_cache == b"|timed"


def test_trt10_strongly_typed_calls(bundle):
    trt = FakeTRT("10.3.0.30")
    plan = plan_build(TrtVersion.parse(trt.__version__), "int8", bundle.precisions)
    _build(trt, plan, bundle)
    # STRONGLY_TYPED only (value 1 in 10.x: bit 2)
    assert trt.called("builder.create_network") == [("builder.create_network", real_flag_bit("10.13.0.35", "STRONGLY_TYPED"))]
    assert trt.called("parser.parse_from_file") == [("parser.parse_from_file", "model.int8.onnx")]
    assert not [c for c in trt.called("config.set_flag") if c[1] in ("FP16", "INT8")]
    assert trt.called("builder.build_serialized_network") == [("builder.build_serialized_network", [])]


def test_trt10_fp32_clears_tf32(bundle):
    trt = FakeTRT("10.3.0")
    _build(trt, plan_build(TrtVersion.parse("10.3.0"), "fp32", bundle.precisions), bundle)
    assert ("config.clear_flag", "TF32") in trt.calls


@pytest.mark.parametrize("has_flag", [True, False])
def test_trt11_builds_without_removed_apis(bundle, has_flag):
    # 11.4 keeps STRONGLY_TYPED (deprecated, now value 0); a later release may drop it.
    trt = FakeTRT("11.4.0", without=() if has_flag else ("NetworkDefinitionCreationFlag.STRONGLY_TYPED",))
    assert not hasattr(trt.BuilderFlag, "FP16") and not hasattr(trt, "IInt8EntropyCalibrator2")
    plan = plan_build(TrtVersion.parse("11.4.0"), "fp16", bundle.precisions, version_compatible=True)
    out = _build(trt, plan, bundle)
    expected = real_flag_bit("11.4.0.106", "STRONGLY_TYPED") if has_flag else 0
    assert expected == (1 if has_flag else 0)  # bit 0 here, not bit 1 as in 10.x
    assert trt.called("builder.create_network") == [("builder.create_network", expected)]
    assert ("config.set_flag", "VERSION_COMPATIBLE") in trt.calls
    assert not trt.called("config.set_calibration_profile")
    assert out.plan.startswith(b"FAKEPLAN")


def test_hardware_compat_and_dla_config(bundle):
    trt = FakeTRT("10.3.0", dla_cores=2)
    v = TrtVersion.parse("10.3.0")
    _build(trt, plan_build(v, "fp16", bundle.precisions, hardware_compat="ampere+", compute_capability="8.7"), bundle)
    assert ("config.hardware_compatibility_level", trt.HardwareCompatibilityLevel.AMPERE_PLUS) in trt.calls
    trt = FakeTRT("10.3.0", dla_cores=2)
    _build(trt, plan_build(v, "fp16", bundle.precisions, dla_core=1, gpu_fallback=True), bundle)
    assert ("config.default_device_type", trt.DeviceType.DLA) in trt.calls
    assert ("config.DLA_core", 1) in trt.calls
    assert {"FP16", "GPU_FALLBACK"} <= {c[1] for c in trt.called("config.set_flag")}
    with pytest.raises(EdgeportError, match="TensorRT sees 0 DLA core"):
        _build(FakeTRT("10.3.0", dla_cores=0), plan_build(v, "fp16", bundle.precisions, dla_core=0), bundle)


def test_dla_implicit_int8_replays_the_calibration_cache(bundle):
    trt = FakeTRT("8.6.1", dla_cores=1)
    cache = b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n"
    plan = plan_build(TrtVersion.parse("8.6.1"), "int8", bundle.precisions, dla_core=0)
    out = _build(trt, plan, bundle, calibration_cache=cache, calibrator_class="IInt8EntropyCalibrator2")
    desc = json.loads(out.plan[len(b"FAKEPLAN"):])
    assert desc["calib"] == cache.decode() and desc["flags"] == ["FP16", "INT8"] and desc["dla_core"] == 0
    assert trt.called("config.set_calibration_profile")
    assert trt.called("parser.parse_from_file") == [("parser.parse_from_file", "model.onnx")]


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_dla_implicit_int8_replays_a_legacy_calibration_cache(bundle, version):
    # IInt8LegacyCalibrator has four more pure virtual hooks than the other calibrators.
    trt = FakeTRT(version, dla_cores=1)
    cache = b"TRT-8601-LegacyCalibration\ninput: 3c010a14\n"
    plan = plan_build(TrtVersion.parse(version), "int8", bundle.precisions, dla_core=0)
    out = _build(trt, plan, bundle, calibration_cache=cache, calibrator_class="IInt8LegacyCalibrator")
    assert json.loads(out.plan[len(b"FAKEPLAN"):])["calib"] == cache.decode()
    assert not [m for m in out.messages if "pure virtual" in m]


def test_refused_optimization_profile_is_a_clear_error(bundle):
    trt = FakeTRT("10.3.0")
    plan = plan_build(TrtVersion.parse("10.3.0"), "fp16", bundle.precisions)
    backwards = ((4, 3, 4, 4), (2, 3, 4, 4), (1, 3, 4, 4))  # min > max: TensorRT marks the profile invalid
    with pytest.raises(EdgeportError, match="refused the optimization profile for 'input'.*\\[4, 3, 4, 4\\]"):
        build_serialized(trt, plan, bundle.artifact_path("fp16"), "input", backwards, engine_runtime=TENSORRT, workspace_mib=64)
    assert trt.called("config.add_optimization_profile") == [("config.add_optimization_profile", False)]
    assert not trt.called("builder.build_serialized_network")


def test_timing_cache_reuse_and_mismatch(bundle):
    trt = FakeTRT("10.3.0")
    plan = plan_build(TrtVersion.parse("10.3.0"), "fp16", bundle.precisions)
    out = _build(trt, plan, bundle, timing_cache=b"previous")
    assert out.timing_cache_reused and out.timing_cache == b"previous|timed"
    trt = FakeTRT("10.3.0")
    out = _build(trt, plan, bundle, timing_cache=b"other-gpu")  # rejected by TensorRT: start a fresh cache
    assert not out.timing_cache_reused and out.timing_cache == b"|timed"
    assert any("timing cache does not match" in m for m in out.messages)
    trt = FakeTRT("10.3.0")
    assert _build(trt, plan, bundle, timing_cache=None).timing_cache is None
    assert not trt.called("config.create_timing_cache")


def test_parse_and_build_failures_are_one_paragraph(bundle):
    (bundle.root / "model.fp16.onnx").write_bytes(b"BROKEN")
    trt = FakeTRT("10.3.0")
    plan = plan_build(TrtVersion.parse("10.3.0"), "fp16", bundle.precisions)
    with pytest.raises(EdgeportError, match="could not parse model.fp16.onnx: In node 0"):
        build_serialized(trt, plan, bundle.root / "model.fp16.onnx", "input", SHAPES, engine_runtime=TENSORRT, workspace_mib=64)
    trt = FakeTRT("10.3.0", build_fails=True)
    with pytest.raises(EdgeportError, match="failed to build the fp32 engine.*could not be allocated") as err:
        _build(trt, plan_build(TrtVersion.parse("10.3.0"), "fp32", bundle.precisions), bundle)
    assert "--workspace" in err.value.render()


# -- edgeport build end to end (fake TensorRT, fabricated bundle) --------------------------------
def test_build_engines_writes_engines_sidecars_and_timing_cache(bundle, tmp_path):
    trt = FakeTRT("10.3.0.30")
    built = build_engines(bundle, BuildOptions(max_batch=4, opt_batch=2), trt=trt, env=env_for(trt))
    assert [b.precision for b in built] == ["fp32", "fp16", "int8"]
    names = sorted(p.name for p in bundle.root.glob("*.engine"))
    assert names == ["model.fp16.sm87.trt10.3.0.engine", "model.fp32.sm87.trt10.3.0.engine",
                     "model.int8.sm87.trt10.3.0.engine"]
    sc = json.loads((bundle.root / "model.int8.sm87.trt10.3.0.engine.json").read_text())
    assert sc["build_path"] == "strongly-typed" and sc["runtime"] == "tensorrt" and sc["version"] == "10.3.0.30"
    assert sc["sidecar_version"] == 2
    assert sc["gpu"] == {"name": "Orin", "compute_capability": "8.7", "total_memory": 8 << 30, "jetson": True}
    assert sc["source"] == {"artifact": "int8", "file": "model.int8.onnx",
                            "sha256": bundle.manifest.artifacts["int8"].sha256}
    assert sc["profile"] == {"min": 1, "opt": 2, "max": 4} and sc["input"]["max"] == [4, 3, 4, 4]
    assert sc["workspace_mib"] == 2048  # Jetson with 8 GB: a quarter
    assert sc["engine"]["sha256"] and sc["build_seconds"] >= 0 and sc["built_at"]
    assert sc["rebuild"].startswith(f"edgeport build {bundle.root} --precision int8 --min-batch 1 --opt-batch 2")
    assert sc["dla_core"] is None and sc["hardware_compat"] == "none" and sc["version_compatible"] is False
    # manifest.json is untouched; the timing cache is keyed by version and GPU and was reused.
    assert "engines" not in json.loads((bundle.root / "manifest.json").read_text())
    cache = tmp_path / "cache" / "timing" / "trt10.3.0.30-sm87-orin.cache"
    assert cache.read_bytes() == b"|timed|timed|timed"
    assert [r.precision for r in list_engines(bundle)] == ["fp16", "fp32", "int8"]


def test_out_of_memory_doubles_the_default_workspace_within_the_gpus_half_never_on_a_jetson(bundle):
    from runtime.engines.builder import BuildOutOfMemory

    def workspaces(trt):
        return [c[2] >> 20 for c in trt.calls if c[0] == "config.set_memory_pool_limit" and c[1] == "WORKSPACE"]

    # A10, 24 GB: default 4096 MiB, retried at 8192 (within half its memory, 12288).
    trt = FakeTRT("10.3.0.30", needs_workspace_mib=6000)
    lines = []
    (built,) = build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=4), trt=trt,
                             env=env_for(trt, gpu=A10, jetson=False), log=lines.append)
    assert workspaces(trt) == [4096, 8192] and built.sidecar.workspace_mib == 8192
    assert any("4096 MiB workspace; building again with 8192 MiB" in line for line in lines), lines
    # Past the ceiling: the error, with a larger --workspace to try.
    trt = FakeTRT("10.3.0.30", needs_workspace_mib=12289)
    with pytest.raises(BuildOutOfMemory, match="OutOfMemory") as err:
        build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=4), trt=trt,
                      env=env_for(trt, gpu=A10, jetson=False))
    assert workspaces(trt) == [4096, 8192] and "--workspace (e.g. 16384)" in err.value.render()
    # A Jetson keeps its default (shared memory); a --workspace the user gave is kept anywhere.
    for env_kw, options, tried in (({"gpu": ORIN, "jetson": True}, {}, [2048]),
                                   ({"gpu": A10, "jetson": False}, {"workspace_mib": 1024}, [1024])):
        trt = FakeTRT("10.3.0.30", needs_workspace_mib=3000)
        with pytest.raises(BuildOutOfMemory):
            build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=4, **options), trt=trt,
                          env=env_for(trt, **env_kw))
        assert workspaces(trt) == tried
    assert [p.name for p in bundle.root.glob("*.engine")] == [built.path.name]  # failed builds write nothing


def test_build_engines_validates_everything_before_building(bundle):
    trt = FakeTRT("10.3.0")
    with pytest.raises(UsageError, match="exceeds the bundle's maximum batch 4"):
        build_engines(bundle, BuildOptions(max_batch=8), trt=trt, env=env_for(trt))
    with pytest.raises(EdgeportError, match="needs an NVIDIA GPU"):
        build_engines(bundle, BuildOptions(), trt=trt, env=TargetEnv(tensorrt="10.3.0", gpu=None))
    trt11 = FakeTRT("11.0.0")
    with pytest.raises(EdgeportError, match="has no DLA support"):
        build_engines(bundle, BuildOptions(dla_core=0), trt=trt11, env=env_for(trt11))
    assert not trt.called("builder.build_serialized_network") and not list(bundle.root.glob("*.engine"))


def test_dla_build_skips_fp32_and_needs_the_calibration_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    trt = FakeTRT("10.3.0", dla_cores=2)
    b = Bundle.open(make_bundle(tmp_path / "dla"))
    built = build_engines(b, BuildOptions(dla_core=0, gpu_fallback=True), trt=trt, env=env_for(trt, dla_cores=2))
    assert [(e.precision, e.sidecar.build_path) for e in built] == [("fp16", "flags"), ("int8", "dla-implicit")]
    assert built[1].sidecar.profile == {"min": 4, "opt": 4, "max": 4}  # static: min(8, max batch 4)
    assert built[1].sidecar.calibration_cache == "calib.cache"
    assert built[1].path.name == "model.int8.dla0.sm87.trt10.3.0.engine"
    # The bundle's cache says TRT-8601; TensorRT 10.3 gets it replayed under its own version.
    desc = json.loads(built[1].path.read_bytes()[len(b"FAKEPLAN"):])
    assert desc["calib"] == "TRT-100300-EntropyCalibration2\ninput: 3c010a14\n"
    nocal = Bundle.open(make_bundle(tmp_path / "nocal", calib_cache=None))
    with pytest.raises(BundleError, match="no TensorRT calibration cache"):
        build_engines(nocal, BuildOptions(dla_core=0, precisions=("int8",)), trt=trt, env=env_for(trt, dla_cores=2))


# -- runner ---------------------------------------------------------------------------------------------
def _runner(bundle, precision, trt, mem, env, **kw):
    from runtime.runners.tensorrt import TensorRTRunner

    record = resolve_engine(bundle, precision, env=env)
    return TensorRTRunner(record.engine_path, sidecar=record.sidecar, trt=trt, memory=mem, **kw)


def test_runner_io_tensor_api_and_chunking(bundle):
    mem = FakeMemory()
    trt = FakeTRT("10.3.0", memory=mem)
    build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=4), trt=trt, env=env_for(trt))
    x = np.random.default_rng(1).normal(size=(6, 3, 4, 4)).astype(np.float32)
    with _runner(bundle, "fp16", trt, mem, env_for(trt)) as runner:
        assert [(t.name, t.shape) for t in runner.inputs] == [("input", (None, 3, 4, 4))]
        assert runner.batch_range == (1, 4) and runner.description == "tensorrt/gpu"
        out = runner.infer({"input": x})
    np.testing.assert_array_equal(out["logits"], onnx_logits(bundle.root / "model.onnx", x))
    # 6 samples through a max-batch-4 profile: two launches, shapes set per launch.
    assert [c[2][0] for c in trt.called("context.set_input_shape")] == [4, 2]
    assert len(trt.called("context.execute_async_v3")) == 2
    assert len(mem.blocks) == 0 and mem.freed  # close() freed the device buffers


def test_runner_pads_to_a_static_dla_batch_and_sets_the_core(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    mem = FakeMemory()
    trt = FakeTRT("10.3.0", dla_cores=2, memory=mem)
    b = Bundle.open(make_bundle(tmp_path / "dla"))
    env = env_for(trt, dla_cores=2)
    build_engines(b, BuildOptions(precisions=("fp16",), dla_core=1, opt_batch=2), trt=trt, env=env)
    x = np.random.default_rng(2).normal(size=(3, 3, 4, 4)).astype(np.float32)
    from runtime.runners.tensorrt import TensorRTRunner

    record = resolve_engine(b, "fp16", env=env, dla_core=1)
    with TensorRTRunner(record.engine_path, sidecar=record.sidecar, trt=trt, memory=mem) as runner:
        out = runner.infer({"input": x})
        assert runner.description == "tensorrt/dla1"
    np.testing.assert_array_equal(out["logits"], onnx_logits(b.root / "model.onnx", x))
    assert [c[2][0] for c in trt.called("context.set_input_shape")] == [2, 2]  # 3 = 2 + (1 padded to 2)
    assert ("runtime.DLA_core", 1) in trt.calls


def test_runner_allows_host_code_only_for_version_compatible_engines_the_user_trusts(bundle):
    mem = FakeMemory()
    trt = FakeTRT("10.3.0", memory=mem)
    build_engines(bundle, BuildOptions(precisions=("fp32",), version_compatible=True), trt=trt, env=env_for(trt))
    with _runner(bundle, "fp32", trt, mem, env_for(trt), trust_engine_host_code=True):
        pass
    assert ("runtime.engine_host_code_allowed", True) in trt.calls
    trt2 = FakeTRT("10.3.0", memory=mem)
    build_engines(bundle, BuildOptions(precisions=("fp16",)), trt=trt2, env=env_for(trt2))
    with _runner(bundle, "fp16", trt2, mem, env_for(trt2)):
        pass
    assert not trt2.called("runtime.engine_host_code_allowed")


def test_a_version_compatible_sidecar_alone_does_not_enable_host_code(bundle, monkeypatch):
    """A sidecar saying "version_compatible": true (written by whoever wrote the bundle) is refused
    before deserializing, in one paragraph naming the option; the option loads it."""
    from runtime.engines import cuda_mem, device
    from runtime.runners import Target
    from runtime.verify import VerifyConfig, verify_bundle

    mem = FakeMemory()
    trt = FakeTRT("10.3.0.30", memory=mem)
    build_engines(bundle, BuildOptions(precisions=("fp32",), version_compatible=True), trt=trt, env=env_for(trt))
    with pytest.raises(EdgeportError, match="version-compatible engine") as err:
        _runner(bundle, "fp32", trt, mem, env_for(trt))
    assert "--trust-engine-host-code" in err.value.render() and "\n" not in str(err.value)
    assert not trt.called("runtime.engine_host_code_allowed")
    assert not trt.called("runtime.deserialize_cuda_engine")
    # Through verify (the path every command takes): refused by default, loaded with the Target's consent.
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(device, "probe_env", lambda trt=None, dla=False: env_for(trt))
    monkeypatch.setattr(cuda_mem, "default_memory", lambda: mem)
    with pytest.raises(EdgeportError, match="--trust-engine-host-code"):
        verify_bundle(bundle, VerifyConfig(target=Target(backend="tensorrt"), precisions=("fp32",)))
    assert not trt.called("runtime.engine_host_code_allowed")
    target = Target(backend="tensorrt", trust_engine_host_code=True)
    results = verify_bundle(bundle, VerifyConfig(target=target, precisions=("fp32",))).comparisons
    assert [r.passed for r in results] == [True]
    assert ("runtime.engine_host_code_allowed", True) in trt.calls


def test_trust_engine_host_code_option_reaches_the_target(monkeypatch, tmp_path):
    """verify/bench/predict take --trust-engine-host-code and hand it to the API as a keyword."""
    import edgeport.api as api
    from conftest import invoke

    seen = {}

    def fake(name):
        def run(*args, **kwargs):
            seen[name] = kwargs.get("trust_engine_host_code")
            raise UsageError("stop here")
        return run

    for name in ("verify", "benchmark", "predict"):
        monkeypatch.setattr(api, name, fake(name))
    b = make_bundle(tmp_path / "net")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    for command, name in (("verify", "verify"), ("bench", "benchmark"), ("predict", "predict")):
        extra = [str(image)] if command == "predict" else []
        invoke(command, b, *extra, "--backend", "tensorrt")
        assert seen.pop(name) is False, command
        invoke(command, b, *extra, "--backend", "tensorrt", "--trust-engine-host-code")
        assert seen.pop(name) is True, command


def test_runner_stops_when_tensorrt_refuses_a_tensor_address(bundle):
    class NullMemory(FakeMemory):
        """A backend whose allocations come back as address 0 (set_tensor_address returns False)."""

        def alloc(self, nbytes):
            ptr = super().alloc(nbytes)
            self.blocks[0] = self.blocks.pop(ptr)
            return 0

    mem = NullMemory()
    trt = FakeTRT("10.3.0", memory=mem)
    build_engines(bundle, BuildOptions(precisions=("fp16",), max_batch=4), trt=trt, env=env_for(trt))
    x = np.zeros((2, 3, 4, 4), np.float32)
    with _runner(bundle, "fp16", trt, mem, env_for(trt)) as runner:
        with pytest.raises(EdgeportError, match="refused the device address 0x0 for tensor 'input'") as err:
            runner.infer({"input": x})
    assert "memory backend (fake)" in err.value.render()
    assert not trt.called("context.execute_async_v3")


def test_runner_reports_a_plan_tensorrt_cannot_read(bundle):
    from runtime.runners.tensorrt import TensorRTRunner

    bad = bundle.root / "x.engine"
    bad.write_bytes(b"not a plan")
    with pytest.raises(EdgeportError, match="could not deserialize x.engine: ERROR: Serialization"):
        TensorRTRunner(bad, trt=FakeTRT("10.3.0"), memory=FakeMemory())


# -- verify --backend tensorrt through the fakes -------------------------------------------------------
def test_verify_backend_tensorrt_uses_resolved_engines(bundle, monkeypatch):
    from runtime.engines import cuda_mem, device
    from runtime.runners import Target
    from runtime.verify import VerifyConfig, verify_bundle

    mem = FakeMemory()
    trt = FakeTRT("10.3.0.30", memory=mem)
    # fp32 + fp16 (the fake engine does not round like INT8, so an int8 engine would not match its Q/DQ graph)
    build_engines(bundle, BuildOptions(precisions=("fp32", "fp16"), max_batch=2), trt=trt, env=env_for(trt))
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(device, "probe_env", lambda trt=None, dla=False: env_for(trt))
    monkeypatch.setattr(cuda_mem, "default_memory", lambda: mem)
    results = verify_bundle(bundle, VerifyConfig(target=Target(backend="tensorrt"))).comparisons
    assert [(r.precision, r.backend, r.provider, r.passed) for r in results] == \
        [("fp32", "tensorrt", "gpu", True), ("fp16", "tensorrt", "gpu", True)]
    assert results[0].max_abs_diff < 1e-5
    # Same engines on another GPU: refused before deserializing, with the rebuild command.
    monkeypatch.setattr(device, "probe_env", lambda trt=None, dla=False: env_for(trt, gpu=A10, jetson=False))
    before = len(trt.called("runtime.deserialize_cuda_engine"))
    with pytest.raises(EdgeportError, match="built for compute capability 8.7 \\(Orin\\).*this GPU has compute "
                                            "capability 8.6") as err:
        verify_bundle(bundle, VerifyConfig(target=Target(backend="tensorrt"), precisions=("fp16",)))
    assert f"edgeport build {bundle.root} --precision fp16" in err.value.render()
    assert len(trt.called("runtime.deserialize_cuda_engine")) == before
