"""TensorRT build decisions on CPU: versions, build paths, DLA rules, profiles, workspace, names."""

from __future__ import annotations

import re

import numpy as np
import pytest

from runtime.errors import BundleError, DependencyError, EdgeportError, UsageError
from runtime.engines import calibration, policy
from runtime.engines import timing_cache as tc
from runtime.engines import tensorrt, tensorrt_rtx
from runtime.engines.policy import DLA_IMPLICIT, FLAGS, STRONGLY_TYPED, TrtVersion
from runtime.engines.registry import ENGINE_RUNTIMES, engine_runtime
from runtime.engines.tensorrt import plan_build

ALL = {"fp32", "fp16", "int8"}
V86, V103, V1012, V110, V1141 = (TrtVersion.parse(v) for v in ("8.6.1", "10.3.0.30", "10.12.0", "11.0.0", "11.4.1"))


# -- versions ---------------------------------------------------------------------------------
def test_version_parsing_and_order():
    v = TrtVersion.parse("10.3.0.30")
    assert (v.major, v.minor, v.patch, v.build) == (10, 3, 0, 30)
    assert str(v) == "10.3.0.30" and v.short == "10.3.0"
    assert str(TrtVersion.parse("8.6.1")) == "8.6.1"
    assert TrtVersion.parse("10.12") == TrtVersion(10, 12, 0, 0)
    assert TrtVersion.parse("8.6.1") < TrtVersion.parse("10.0.0") < TrtVersion.parse("10.12.0")
    assert TrtVersion.parse("11.4.1").at_least(11, 4, 1) and not TrtVersion.parse("11.4.0").at_least(11, 4, 1)
    with pytest.raises(EdgeportError, match="Cannot read the TensorRT version"):
        TrtVersion.parse("dev")


def test_capabilities_per_version():
    c86, c103, c1012, c110, c1141 = (tensorrt.capabilities(v) for v in (V86, V103, V1012, V110, V1141))
    assert (c86.strongly_typed, c86.precision_flags, c86.explicit_batch_flag, c86.dla) == (False, True, True, "flags")
    assert (c103.dla, c1012.dla) == ("flags", "none")  # DLA ended with 10.7 on 10.x
    assert (c103.strongly_typed, c103.explicit_batch_flag, c103.flags_deprecated, c103.implicit_int8_deprecated) == \
        (True, False, False, True)
    assert c1012.flags_deprecated and c1012.precision_flags
    assert (c110.precision_flags, c110.implicit_int8, c110.dla) == (False, False, "none")
    assert c1141.dla == "strongly-typed"
    assert not tensorrt.capabilities(TrtVersion.parse("8.5.2")).supported
    with pytest.raises(DependencyError, match="older than 8.6"):
        plan_build(TrtVersion.parse("8.5.2"), "fp16", ALL)


# -- build paths ------------------------------------------------------------------------------
def test_trt86_uses_flags_for_everything():
    fp32 = plan_build(V86, "fp32", ALL)
    fp16 = plan_build(V86, "fp16", ALL)
    int8 = plan_build(V86, "int8", ALL)
    assert (fp32.path, fp32.source, fp32.builder_flags, fp32.clear_flags) == (FLAGS, "fp32", (), ("TF32",))
    assert (fp16.path, fp16.source, fp16.builder_flags) == (FLAGS, "fp32", ("FP16",))
    # The Q/DQ graph, with FP16 allowed for its float regions (FP16-typed since the FP16-region recipe).
    assert (int8.path, int8.source, int8.builder_flags) == (FLAGS, "int8", ("INT8", "FP16"))
    assert all(p.network_flags == ("EXPLICIT_BATCH",) for p in (fp32, fp16, int8))
    assert not int8.calibration_cache
    with pytest.raises(UsageError, match="no strongly typed networks"):
        plan_build(V86, "fp16", ALL, requested_path=STRONGLY_TYPED)
    with pytest.raises(BundleError, match="no int8 graph") as err:
        plan_build(V86, "int8", {"fp32", "fp16"})
    assert "--int8" in err.value.render()


def test_trt10_strongly_typed_from_explicit_precision_graphs():
    for precision in ("fp32", "fp16", "int8"):
        plan = plan_build(V103, precision, ALL)
        assert (plan.path, plan.source, plan.network_flags) == (STRONGLY_TYPED, precision, ("STRONGLY_TYPED",))
        assert "FP16" not in plan.builder_flags and "INT8" not in plan.builder_flags
        assert plan.warnings == ()
    assert plan_build(V103, "fp32", ALL).clear_flags == ("TF32",)
    assert plan_build(V103, "fp16", ALL).clear_flags == ()
    # The flag path is still there on 10.x when asked for (and warned about from 10.12).
    forced = plan_build(V103, "fp16", ALL, requested_path=FLAGS)
    assert (forced.path, forced.source, forced.builder_flags, forced.network_flags) == (FLAGS, "fp32", ("FP16",), ())
    assert forced.warnings == ()
    assert any("deprecated" in w for w in plan_build(V1012, "fp16", ALL, requested_path=FLAGS).warnings)


def test_trt10_without_fp16_graph_falls_back_to_flags_with_a_warning():
    plan = plan_build(V103, "fp16", {"fp32"})
    assert (plan.path, plan.source, plan.builder_flags) == (FLAGS, "fp32", ("FP16",))
    assert any("re-export with --fp16" in w for w in plan.warnings)
    with pytest.raises(BundleError, match="no fp16 graph"):
        plan_build(V103, "fp16", {"fp32"}, requested_path=STRONGLY_TYPED)


def test_trt11_is_strongly_typed_only():
    plan = plan_build(V110, "int8", ALL)
    assert (plan.path, plan.source, plan.network_flags, plan.optional_network_flags) == \
        (STRONGLY_TYPED, "int8", (), ("STRONGLY_TYPED",))
    with pytest.raises(UsageError, match="removed the precision builder flags"):
        plan_build(V110, "fp16", ALL, requested_path=FLAGS)
    with pytest.raises(BundleError, match="no fp16 graph") as err:
        plan_build(V110, "fp16", {"fp32"})  # no flag fallback in 11
    assert "--fp16" in err.value.render() and "--build-path flags" not in err.value.render()


def test_compatibility_options():
    vc = plan_build(V103, "fp16", ALL, version_compatible=True)
    assert "VERSION_COMPATIBLE" in vc.builder_flags and vc.version_compatible
    hc = plan_build(V103, "fp16", ALL, hardware_compat="ampere+", compute_capability="8.6")
    assert hc.hardware_compat == "ampere+"
    with pytest.raises(UsageError, match="compute capability >= 8.0"):
        plan_build(V103, "fp16", ALL, hardware_compat="ampere+", compute_capability="7.5")
    with pytest.raises(UsageError, match="--gpu-fallback only applies"):
        plan_build(V103, "fp16", ALL, gpu_fallback=True)


# -- DLA -----------------------------------------------------------------------------------------
def test_dla_on_trt10_and_86_uses_flags_and_implicit_int8():
    for v in (V86, V103):
        fp16 = plan_build(v, "fp16", ALL, dla_core=0, gpu_fallback=True)
        assert (fp16.path, fp16.source, fp16.dla_core) == (FLAGS, "fp32", 0)
        assert fp16.builder_flags == ("FP16", "GPU_FALLBACK")
        int8 = plan_build(v, "int8", ALL, dla_core=1)
        assert (int8.path, int8.source, int8.calibration_cache) == (DLA_IMPLICIT, "fp32", True)
        assert int8.builder_flags == ("INT8", "FP16")
    assert any("deprecated" in w for w in plan_build(V103, "int8", ALL, dla_core=0).warnings)
    assert plan_build(V86, "int8", ALL, dla_core=0).warnings == ()
    with pytest.raises(UsageError, match="FP16 and INT8 only"):
        plan_build(V103, "fp32", ALL, dla_core=0)
    with pytest.raises(UsageError, match="cannot be combined with --dla-core"):
        plan_build(V103, "fp16", ALL, dla_core=0, hardware_compat="ampere+")
    with pytest.raises(UsageError, match="builder flags"):
        plan_build(V103, "fp16", ALL, dla_core=0, requested_path=STRONGLY_TYPED)


# NVIDIA, "Working with DLA" (TensorRT 11.4.1 documentation): "TensorRT 10.7 was the last 10.x release
# that supported DLA"; "DLA was unavailable in TensorRT 11.0 through 11.3"; 11.4.0 only on Windows on
# ARM; 11.4.1 on Jetson AGX Orin with JetPack 7.2.2+, strongly typed.
DLA_BY_VERSION = [("8.6.1", "flags"), ("10.0.1", "flags"), ("10.3.0.30", "flags"), ("10.7.0", "flags"),
                  ("10.8.0", "none"), ("10.12.0", "none"), ("10.13.0.35", "none"), ("11.0.0", "none"),
                  ("11.4.0", "none"), ("11.4.1", "strongly-typed"), ("11.5.0", "strongly-typed")]


@pytest.mark.parametrize("version,dla", DLA_BY_VERSION)
def test_dla_support_per_version_follows_nvidias_dla_documentation(version, dla):
    v = TrtVersion.parse(version)
    assert tensorrt.capabilities(v).dla == dla
    if dla == "none":
        with pytest.raises(EdgeportError, match=f"TensorRT {re.escape(version)} has no DLA support"):
            plan_build(v, "fp16", ALL, dla_core=0)
    else:
        assert plan_build(v, "fp16", ALL, dla_core=0).dla_core == 0


def test_dla_refused_on_trt10_8_and_later_citing_10_7():
    for v in ("10.8.0", "10.13.0.35"):
        with pytest.raises(EdgeportError) as err:
            plan_build(TrtVersion.parse(v), "int8", ALL, dla_core=0)
        text = err.value.render()
        assert "10.7 was the last TensorRT 10.x release with DLA" in text and "drop --dla-core" in text
        assert "JetPack 6" in text and "11.4.1" in text


def test_dla_refused_on_trt11_with_a_clear_reason():
    for v in ("11.0.0", "11.3.1", "11.4.0"):
        with pytest.raises(EdgeportError) as err:
            plan_build(TrtVersion.parse(v), "fp16", ALL, dla_core=0)
        text = err.value.render()
        assert f"TensorRT {v} has no DLA support" in text and "TensorRT 10.x" in text and "drop --dla-core" in text
    plan = plan_build(V1141, "int8", ALL, dla_core=0)  # back in 11.4.1, strongly typed
    assert (plan.path, plan.source, plan.calibration_cache) == (STRONGLY_TYPED, "int8", False)


# -- profile ---------------------------------------------------------------------------------------
def test_profile_defaults_and_validation():
    p = policy.compute_profile(1, 32)
    assert (p.min, p.opt, p.max) == (1, 8, 32)
    assert policy.compute_profile(1, 4).opt == 4
    assert policy.compute_profile(1, 32, min_batch=16).opt == 16  # default opt kept inside the range
    assert policy.compute_profile(1, 32, opt_batch=2, max_batch=4) == policy.Profile(1, 2, 4)
    assert p.shapes(["batch", 3, 224, 224]) == ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    with pytest.raises(UsageError, match="exceeds the bundle's maximum batch 32"):
        policy.compute_profile(1, 32, max_batch=64)
    with pytest.raises(UsageError, match="min <= opt <= max"):
        policy.compute_profile(1, 32, min_batch=8, opt_batch=4)
    with pytest.raises(UsageError, match="min <= opt <= max"):
        policy.compute_profile(1, 32, opt_batch=16, max_batch=8)
    with pytest.raises(UsageError, match="below the bundle's minimum"):
        policy.compute_profile(2, 32, min_batch=1)
    with pytest.raises(BundleError, match="non-batch dynamic"):
        p.shapes(["batch", 3, "h", "w"])


def test_dla_profile_is_static():
    assert policy.compute_profile(1, 32, dla=True) == policy.Profile(8, 8, 8)
    assert policy.compute_profile(1, 2, dla=True) == policy.Profile(2, 2, 2)
    assert policy.compute_profile(1, 32, max_batch=4, dla=True) == policy.Profile(4, 4, 4)
    assert policy.compute_profile(1, 32, min_batch=4, max_batch=4, dla=True).static
    with pytest.raises(UsageError, match="DLA has no dynamic dimensions"):
        policy.compute_profile(1, 32, min_batch=1, max_batch=4, dla=True)


# -- device facts ---------------------------------------------------------------------------------
def test_jetson_detection():
    assert policy.is_jetson(tegra_release=True)
    assert policy.is_jetson(model_text="NVIDIA Jetson AGX Orin Developer Kit")
    assert policy.is_jetson(model_text="NVIDIA Orin Nano Developer Kit")
    assert policy.is_jetson(integrated=True)
    assert policy.is_jetson(compute_capability="8.7")
    assert not policy.is_jetson(model_text="QEMU Virtual Machine", integrated=False, compute_capability="8.6")
    assert not policy.is_jetson()


def test_jetson_facts_from_a_fake_root(tmp_path):
    from runtime.engines.device import jetson_facts

    assert jetson_facts(tmp_path) == (None, False)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    model, tegra = jetson_facts(tmp_path)
    assert model == "NVIDIA Jetson AGX Orin" and tegra


def test_workspace_default_suits_jetson_memory():
    gib = 1 << 30
    assert policy.default_workspace_mib(8 * gib, jetson=True) == 2048  # Orin NX 8 GB: a quarter
    assert policy.default_workspace_mib(4 * gib, jetson=True) == 1024  # Orin Nano 4 GB
    assert policy.default_workspace_mib(64 * gib, jetson=True) == 2048  # AGX Orin 64 GB: capped
    assert policy.default_workspace_mib(int(0.5 * gib), jetson=True) == 256  # floor
    assert policy.default_workspace_mib(24 * gib, jetson=False) == 4096
    assert policy.default_workspace_mib(6 * gib, jetson=False) == 3072
    assert policy.default_workspace_mib(None, jetson=False) == 1024
    policy.validate_workspace(512, 8 * gib)
    # How far an out-of-memory build may double the default: not at all on a Jetson (shared
    # memory), half the memory on a discrete GPU, 4 GiB ahead of time (memory unknown).
    assert policy.workspace_ceiling_mib(8 * gib, jetson=True) == 2048
    assert policy.workspace_ceiling_mib(24 * gib, jetson=False) == 12288
    assert policy.workspace_ceiling_mib(None, jetson=False) == 4096
    with pytest.raises(UsageError, match="exceeds this GPU's memory"):
        policy.validate_workspace(16384, 8 * gib)
    with pytest.raises(UsageError, match="at least 16"):
        policy.validate_workspace(8, None)


def test_nvidia_smi_parsing():
    from runtime.engines.device import parse_nvidia_smi

    info = parse_nvidia_smi("NVIDIA A10G, 8.6, 23028\n")
    assert (info.name, info.compute_capability, info.total_memory) == ("NVIDIA A10G", "8.6", 23028 << 20)
    assert parse_nvidia_smi("No devices were found") is None


# -- names and caches ---------------------------------------------------------------------------------
def test_engine_names():
    assert tensorrt.engine_filename("fp16", "8.7", "10.3.0.30") == "model.fp16.sm87.trt10.3.0.engine"
    assert tensorrt.engine_filename("int8", "8.7", V86, dla_core=1) == "model.int8.dla1.sm87.trt8.6.1.engine"
    assert tensorrt.engine_filename("fp16", "8.6", V103, hardware_compat="ampere+", version_compatible=True) == \
        "model.fp16.ampere_plus.vc.sm86.trt10.3.0.engine"
    assert tensorrt.engine_filename("fp32", "12.0", V110) == "model.fp32.sm120.trt11.0.0.engine"


def test_timing_cache_location_and_roundtrip(tmp_path):
    assert tc.cache_root({"EDGEPORT_CACHE": str(tmp_path / "c")}) == tmp_path / "c"
    assert tc.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "edgeport"
    path = tc.default_path("10.3.0.30", "Orin (nvgpu)", "8.7", root=tmp_path)
    assert path == tmp_path / "timing" / "trt10.3.0.30-sm87-orin-nvgpu.cache"
    assert tc.default_path("8.6.1", "Orin (nvgpu)", "8.7", root=tmp_path) != path  # keyed by version
    assert tc.default_path("10.3.0.30", "NVIDIA A10", "8.6", root=tmp_path) != path  # and by GPU
    assert tc.load(path) == b""
    tc.save(path, b"tactics-1")
    assert tc.load(path) == b"tactics-1"
    tc.save(path, b"tactics-2")
    assert tc.load(path) == b"tactics-2"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_calibration_cache_header():
    h = calibration.parse_header(b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    assert (h.trt_code, h.algorithm, h.calibrator) == (8601, "EntropyCalibration2", "IInt8EntropyCalibrator2")
    assert calibration.parse_header(b"TRT-100300-MinMaxCalibration\n").calibrator == "IInt8MinMaxCalibrator"
    with pytest.raises(BundleError, match="TensorRT header"):
        calibration.parse_header(b"\x00garbage")


def test_calibration_header_is_retargeted_to_the_running_tensorrt():
    data = b"TRT-100300-EntropyCalibration2\ninput: 3c010a14\nconv1: 3d000000\n"
    assert calibration.version_code(V86) == 8601 and calibration.version_code(V103) == 100300
    same, changed = calibration.retarget(data, V103)
    assert same == data and not changed
    moved, changed = calibration.retarget(data, V86)
    assert changed and moved == b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\nconv1: 3d000000\n"


def test_calibration_cache_found_where_the_int8_export_records_it(tmp_path):
    import hashlib

    from conftest import edit_manifest
    from runtime.bundle import Bundle
    from trt_fake import make_bundle

    root = make_bundle(tmp_path / "b", calib_cache=None)
    data = b"TRT-100300-EntropyCalibration2\ninput: 3c010a14\n"
    (root / "calib.cache").write_bytes(data)
    edit_manifest(root, lambda m: m.update(int8={"method": "minmax", "samples": 1, "trt_calibration_cache": {
        "file": "calib.cache", "sha256": hashlib.sha256(data).hexdigest(), "header": "TRT-100300-EntropyCalibration2"}}))
    assert calibration.find_calibration_cache(Bundle.open(root)) == root / "calib.cache"
    (root / "calib.cache").write_bytes(data + b"tampered: 00000000\n")
    with pytest.raises(BundleError, match="does not match the sha256"):
        calibration.find_calibration_cache(Bundle.open(root))


def test_runner_chunking_covers_every_sample_once():
    from runtime.runners.tensorrt import pad_batch, plan_chunks

    assert plan_chunks(10, 1, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert plan_chunks(3, 2, 2) == [(0, 2, 2), (2, 3, 2)]  # static DLA batch: the tail is padded
    assert plan_chunks(1, 8, 8) == [(0, 1, 8)]
    assert plan_chunks(0, 1, 4) == []
    for n, lo, hi in ((17, 1, 5), (9, 4, 4), (2, 1, 32)):
        chunks = plan_chunks(n, lo, hi)
        covered = [i for s, e, _ in chunks for i in range(s, e)]
        assert covered == list(range(n))
        assert all(lo <= run <= hi and run >= e - s for s, e, run in chunks)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    padded = pad_batch(x, 4)
    assert padded.shape == (4, 3) and (padded[2:] == x[1]).all() and (padded[:2] == x).all()
    with pytest.raises(EdgeportError):
        plan_chunks(3, 4, 2)


# -- TensorRT-RTX: a separate product line ------------------------------------------------------------
V171 = TrtVersion.parse("1.7.1.116")  # TensorRT-RTX numbering, not a TensorRT 1.x


def test_rtx_is_its_own_product_line_not_an_old_tensorrt():
    with pytest.raises(DependencyError, match="older than 8.6"):
        plan_build(V171, "fp16", ALL)  # read as TensorRT it would be refused...
    plan = tensorrt_rtx.plan_build(V171, "fp16", ALL)  # ...as TensorRT-RTX it is a supported release
    assert (plan.runtime, plan.path, plan.source) == ("tensorrt-rtx", STRONGLY_TYPED, "fp16")
    assert ENGINE_RUNTIMES["tensorrt"].capabilities(V103) == tensorrt.capabilities(V103)
    assert ENGINE_RUNTIMES["tensorrt-rtx"].capabilities(V171) == tensorrt_rtx.capabilities(V171)
    with pytest.raises(UsageError, match="Unknown runtime"):
        engine_runtime("tensorrt-llm")


@pytest.mark.parametrize("runtime, version, expected", [
    # runtime, version: strongly typed, precision flags, implicit INT8, DLA, GPU needed to build,
    # compute-capability targets, runtime cache, timing cache, hardware compat, version compatible
    ("tensorrt", V86, (False, True, True, "flags", True, False, False, True, True, True)),
    ("tensorrt", V110, (True, False, False, "none", True, False, False, True, True, True)),
    ("tensorrt-rtx", V171, (True, False, False, "none", False, True, True, False, False, False)),
])
def test_capabilities_table_across_product_lines(runtime, version, expected):
    c = engine_runtime(runtime).capabilities(version)
    assert (c.strongly_typed, c.precision_flags, c.implicit_int8, c.dla, c.gpu_to_build, c.compute_capability_targets,
            c.runtime_cache, c.timing_cache, c.hardware_compat, c.version_compatible) == expected
    assert c.runtime == runtime


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_rtx_builds_every_precision_strongly_typed_from_its_own_graph(precision):
    plan = tensorrt_rtx.plan_build(V171, precision, ALL, compute_capabilities=("8.6",))
    assert (plan.path, plan.source, plan.network_flags, plan.optional_network_flags) == \
        (STRONGLY_TYPED, precision, (), ("STRONGLY_TYPED",))
    assert plan.builder_flags == () and not plan.calibration_cache and plan.dla_core is None
    assert plan.clear_flags == (("TF32",) if precision == "fp32" else ())  # FP32 must stay FP32
    assert plan.compute_capabilities == ("8.6",)
    with pytest.raises(BundleError, match=f"no {precision} graph.*on TensorRT-RTX 1.7.1.116"):
        tensorrt_rtx.plan_build(V171, precision, ALL - {precision})  # no flag fallback: no builder flags


@pytest.mark.parametrize("options, refusal", [
    ({"dla_core": 0}, "no DLA"),
    ({"gpu_fallback": True}, "no DLA"),
    ({"hardware_compat": "ampere+"}, "no hardware compatibility levels"),
    ({"version_compatible": True}, "cannot build version-compatible engines"),
    ({"requested_path": FLAGS}, "no precision builder flags"),
    ({"compute_capabilities": ("9.0",)}, "9.0 is not a TensorRT-RTX target"),
])
def test_rtx_refuses_what_it_does_not_have(options, refusal):
    with pytest.raises(UsageError, match=refusal):
        tensorrt_rtx.plan_build(V171, "fp16", ALL, **options)


@pytest.mark.parametrize("values, targets", [
    ((), ()),
    (("8.6",), ("8.6",)),
    (("7.5,8.6", "sm89"), ("7.5", "8.6", "8.9")),
    (("sm_120", "121", "SM80"), ("8.0", "12.0", "12.1")),
    (("8.9", "8.9,89"), ("8.9",)),  # duplicates once
    ((" 8.6 , ",), ("8.6",)),
])
def test_compute_capability_option_forms(values, targets):
    assert tensorrt_rtx.parse_compute_capabilities(values) == targets


@pytest.mark.parametrize("value", ["9.0", "sm90", "10.0", "8.7", "ampere", "7"])
def test_compute_capabilities_rtx_has_no_target_for(value):
    with pytest.raises(UsageError, match="not a TensorRT-RTX target") as err:
        tensorrt_rtx.parse_compute_capabilities((value,))
    assert "7.5, 8.0, 8.6, 8.9, 12.0, 12.1" in err.value.render()


def test_rtx_engine_names_never_collide_with_tensorrt_ones():
    assert tensorrt_rtx.engine_filename("fp16", "1.7.1.116") == "model.fp16.rtx1.7.1.engine"
    assert tensorrt_rtx.engine_filename("int8", V171, ("7.5", "8.6")) == "model.int8.sm75_sm86.rtx1.7.1.engine"
    assert tensorrt_rtx.engine_filename("fp32", V171, ("12.0",)) == "model.fp32.sm120.rtx1.7.1.engine"
    trt = {tensorrt.engine_filename(p, cc, v) for p in ("fp16", "int8") for cc in ("8.6", "7.5") for v in ("10.3.0", "1.7.1")}
    rtx = {tensorrt_rtx.engine_filename(p, V171, t) for p in ("fp16", "int8") for t in ((), ("8.6",), ("7.5",))}
    assert not trt & rtx and all(n.endswith(".engine") for n in rtx)
