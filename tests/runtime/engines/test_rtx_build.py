"""`edgeport build --runtime tensorrt-rtx` on NVIDIA's real TensorRT-RTX library, on the CPU.

TensorRT-RTX builds engines ahead of time without a GPU, so these tests run edgeport's own
build code (parse, strongly typed network, batch profile, memory pool, compute-capability
targets, timing cache, builder level: runtime/engines/builder.py, the same code TensorRT 10/11
use) against NVIDIA's parser and builder, with no fake in between. A test fails if an artifact
does not parse or build. Expected values come from the files themselves (sha256 computed
here) and from the library's own header check, never from edgeport's code.

Bundles are small (input 32-64, batch profile 1/2/4); the resnet18/densenet121 exports are
the ones other test modules use (same arguments: one export per session). Needs the
`edgeport[rtx]` wheels (x86_64 only; skipped elsewhere by the `rtx` marker, with the reason).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import edit_manifest, invoke, run_cli

pytestmark = pytest.mark.rtx

SMALL = ("--weights", "none", "--input-size", "64")
# Exports only these tests use: few calibration samples, no PyTorch-vs-ONNX verification (built, not judged).
QUICK = ("--weights", "none", "--fp16", "--int8", "--calib-samples", "16", "--no-verify")
SEED = ("--model", "seed_resnet", *QUICK)
PROFILE = ("--min-batch", "1", "--opt-batch", "2", "--max-batch", "4")
GEFORCE_4090 = ("NVIDIA GeForce RTX 4090", "8.9")


@pytest.fixture(scope="module")
def rtx():
    from runtime.engines.rtx import import_tensorrt_rtx

    return import_tensorrt_rtx()


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def short_version(rtx) -> str:
    return ".".join(rtx.__version__.split(".")[:3])


def library_verdict(rtx, data: bytes) -> tuple[str, list[str]]:
    """NVIDIA's own header check (Runtime.get_engine_validity), called directly."""

    class Quiet(rtx.ILogger):
        def __init__(self):
            rtx.ILogger.__init__(self)

        def log(self, severity, msg):
            pass

    validity, bits = rtx.Runtime(Quiet()).get_engine_validity(data)
    return validity.name, [n for n, m in rtx.EngineInvalidityDiagnostics.__members__.items() if int(bits) & int(m)]


def copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


def build(bundle: Path, *extra: str):
    r = invoke("build", bundle, "--runtime", "tensorrt-rtx", *PROFILE, *extra)
    assert r.exit_code == 0, r.output
    return r


ONNX_DTYPES = {1: "Float", 10: "Half"}  # TensorProto.FLOAT / FLOAT16 as the builder spells them


def graph_io(path: Path) -> list[dict]:
    """The I/O an engine of the ONNX graph at ``path`` must have, read from the graph with onnx."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    io = []
    for mode, values in (("Input", [v for v in graph.input if v.name not in inits]), ("Output", graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            io.append({"name": v.name, "mode": mode, "dtype": ONNX_DTYPES[t.elem_type], "dimensions": dims})
    return io


def check_built_io(sc: dict, bundle: Path, source_file: str) -> None:
    """What the engine was built with, as the builder's layer information lists it: the graph's
    I/O names, types and shapes, and the input's min/opt/max profile from PROFILE (1/2/4)."""
    expected = graph_io(bundle / source_file)
    for t in expected:
        if t["mode"] == "Input":
            t.update({k: [b, *t["dimensions"][1:]] for k, b in (("min", 1), ("opt", 2), ("max", 4))})
    assert sc["layers"] is not None, "the build logged no layer information"
    assert sc["layers"]["io_tensors"] == expected


def check_engines(bundle: Path, rtx, precisions, targets: tuple[str, ...] = ()) -> None:
    """Each precision has an engine that NVIDIA's runtime recognizes as its own, built with the
    source graph's I/O and the batch profile asked for, and a sidecar that matches the engine
    file and the source artifact."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    tag = "." + "_".join("sm" + cc.replace(".", "") for cc in targets) if targets else ""
    for precision in precisions:
        engine = bundle / f"model.{precision}{tag}.rtx{short_version(rtx)}.engine"
        assert engine.is_file(), sorted(p.name for p in bundle.iterdir())
        sc = json.loads((bundle / f"{engine.name}.json").read_text())
        assert (sc["runtime"], sc["version"], sc["precision"]) == ("tensorrt-rtx", rtx.__version__, precision)
        assert sc["engine"] == {"file": engine.name, "sha256": sha256(engine), "bytes": engine.stat().st_size}
        source = manifest["artifacts"][precision]
        assert sc["source"] == {"artifact": precision, "file": source["file"], "sha256": sha256(bundle / source["file"])}
        assert sc["profile"] == {"min": 1, "opt": 2, "max": 4}
        assert [sc["input"][k][0] for k in ("min", "opt", "max")] == [1, 2, 4]
        assert sc["compute_capabilities"] == list(targets)
        check_built_io(sc, bundle, source["file"])
        # Without a GPU the verdict is INVALID, but never "malformed" or "another release".
        _, diagnostics = library_verdict(rtx, engine.read_bytes())
        assert not {"MALFORMED_ENGINE", "VERSION_MISMATCH"} & set(diagnostics), diagnostics


# -- every artifact kind parses and builds ------------------------------------------------------------
@pytest.mark.parametrize("model", ["resnet18", "densenet121"])
def test_fp32_fp16_and_int8_artifacts_build(exported, tmp_path, rtx, model):
    # The bundles test_core and test_int8 export (same arguments: exported once per session).
    fp16 = copy(exported("--model", model, *SMALL, "--fp16", "--max-batch", "8"), tmp_path / "a")
    int8 = copy(exported("--model", model, *SMALL, "--int8"), tmp_path / "b")
    out = build(fp16).output
    build(int8, "--precision", "int8")
    check_engines(fp16, rtx, ["fp32", "fp16"])
    check_engines(int8, rtx, ["int8"])
    assert "| fp16 | strongly-typed | model.fp16.rtx" in out and "--backend tensorrt-rtx" in out


@pytest.mark.parametrize("model", ["seed_resnet", "seed_densenet"])
def test_seed_article_models_build(exported, tmp_path, rtx, model):
    bundle = copy(exported("--model", model, *QUICK), tmp_path)
    build(bundle)
    check_engines(bundle, rtx, ["fp32", "fp16", "int8"])


USER_MODEL = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    """Ops the registry's models lack: depthwise conv, Hardswish, SiLU, a stride-1 MaxPool, a concat."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.SiLU())
        self.pw = nn.Conv2d(16, 16, 1)
        self.branch = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 32), nn.ReLU(),
                                  nn.Linear(32, num_classes))

    def forward(self, x):
        x = self.stem(x)
        y = self.pw(self.dw(x)) + x
        return self.head(torch.cat([y, self.branch(y)], dim=1))


def build(num_classes=5):
    return Net(num_classes)
'''


def test_user_model_from_a_file_builds(exported, tmp_path_factory, tmp_path, rtx):
    model_file = tmp_path_factory.mktemp("user_model") / "user_net.py"
    model_file.write_text(USER_MODEL)
    bundle = copy(exported("--model", f"{model_file}:build", "--num-classes", "5", "--input-size", "32", *QUICK),
                  tmp_path)
    build(bundle)
    check_engines(bundle, rtx, ["fp32", "fp16", "int8"])


@pytest.mark.parametrize("fallback", ["fp16", "fp32"])
def test_mixed_precision_int8_artifact_builds(trained_model, tmp_path_factory, tmp_path, rtx, fallback):
    """`export --int8 --max-drop` on deliberately poor calibration keeps layers out of INT8
    (FP16 Convs between Casts, or FP32): model.int8.onnx is then a mixed graph."""
    from exporter.int8.calibration import load_calibration
    from runtime.preprocess import Preprocessing

    tm = trained_model
    pre = Preprocessing(resize=round(tm.input_size / 0.875), crop=tm.input_size)
    x = load_calibration(tm.calib, pre, (3, tm.input_size, tm.input_size)).inputs()
    poor = tmp_path_factory.mktemp("poor_calib") / "clipped.npy"
    np.save(poor, np.clip(x, -1.0, 1.0).astype(np.float32))  # ranges too small: the full INT8 graph loses points
    out = tmp_path_factory.mktemp("mixed")
    r = invoke("export", *tm.export_args(), "--int8", "--engine", "no", "--output", out, "--calib-data", poor,
               "--max-drop", "0.5", "--fallback-precision", fallback, "--tol", "int8.cosine_min=0.95",
               "--tol", "int8-cpu.cosine_min=none", "-q")
    assert r.exit_code == 0, r.output
    bundle = copy(next(p for p in out.iterdir() if p.is_dir()), tmp_path)
    mixed = json.loads((bundle / "manifest.json").read_text())["int8"]["mixed_precision"]
    assert mixed["layers_out_of_int8"] >= 1 and {k["precision"] for k in mixed["kept_float"]} >= {fallback}
    build(bundle, "--precision", "int8")
    check_engines(bundle, rtx, ["int8"])


def test_compute_capability_targets_are_what_the_library_holds(exported, tmp_path, rtx):
    bundle = copy(exported(*SEED), tmp_path)
    build(bundle, "--precision", "fp16")  # the library's default targets
    build(bundle, "--precision", "fp16", "--compute-capability", "7.5", "--compute-capability", "sm86,8.9")
    check_engines(bundle, rtx, ["fp16"])
    check_engines(bundle, rtx, ["fp16"], targets=("7.5", "8.6", "8.9"))
    default = json.loads((bundle / f"model.fp16.rtx{short_version(rtx)}.engine.json").read_text())
    assert default["default_compute_capabilities"] == ["8.0", "8.6", "8.9", "12.0"]  # NVIDIA's documented default
    targeted = json.loads((bundle / f"model.fp16.sm75_sm86_sm89.rtx{short_version(rtx)}.engine.json").read_text())
    assert "--runtime tensorrt-rtx --compute-capability 7.5,8.6,8.9 " in targeted["rebuild"]
    r = invoke("build", bundle, "--runtime", "tensorrt-rtx", "--compute-capability", "9.0")
    assert r.exit_code == 2 and "not a TensorRT-RTX target" in r.output


def test_options_tensorrt_rtx_lacks_are_refused_before_building(exported, tmp_path):
    bundle = copy(exported(*SEED), tmp_path)
    for extra, expected in ((("--dla-core", "0"), "no DLA"), (("--hardware-compat", "ampere+"), "hardware compat"),
                            (("--version-compatible",), "version-compatible"), (("--build-path", "flags"), "flags"),
                            (("--timing-cache", str(tmp_path / "t.cache")), "times no kernels")):
        r = invoke("build", bundle, "--runtime", "tensorrt-rtx", *extra)
        assert r.exit_code == 2 and expected in r.output, (extra, r.output)
    assert not list(bundle.glob("*.engine*"))


# -- Turing (7.5): the classifier's Gemm as a 1x1 convolution; what cannot be, refused before building --
def test_turing_builds_fp32_and_int8_with_the_classifier_gemm_as_a_1x1_convolution(exported, tmp_path, rtx):
    bundle = copy(exported(*SEED), tmp_path)
    before = {p.name: sha256(p) for p in bundle.glob("*.onnx")}
    out = build(bundle, "--precision", "fp32,int8", "--compute-capability", "7.5,8.6").output
    check_engines(bundle, rtx, ["fp32", "int8"], targets=("7.5", "8.6"))
    assert "built as 1x1 convolutions" in out, out
    for sidecar in bundle.glob("model.*.sm75_sm86.rtx*.engine.json"):
        assert json.loads(sidecar.read_text())["graph_rewrites"] == ["gemm-as-conv1x1"], sidecar.name
    assert {p.name: sha256(p) for p in bundle.glob("*.onnx")} == before  # a copy was rewritten, not the bundle
    build(bundle, "--precision", "fp32", "--compute-capability", "8.6")  # no Turing target: no rewrite
    (ampere,) = bundle.glob("model.fp32.sm86.rtx*.engine.json")
    assert json.loads(ampere.read_text())["graph_rewrites"] == []


def test_an_int8_engine_mostly_in_float_is_named_with_its_layer_counts(exported, tmp_path, rtx):
    # NVIDIA's support matrix lists no INT8 for Turing: its int8 engine runs the layers in FP32,
    # as the engine's own layer information (the sidecar) records; Ampere's runs them in INT8.
    bundle = copy(exported(*SEED), tmp_path)
    turing = build(bundle, "--precision", "int8", "--compute-capability", "7.5").output
    (sidecar,) = bundle.glob("model.int8.sm75.rtx*.engine.json")
    counts = json.loads(sidecar.read_text())["layers"]["compute_layers_by_precision"]
    total = sum(counts.values())
    assert 2 * counts.get("int8", 0) < total, counts
    assert f"runs {counts.get('int8', 0)} of {total} compute layers in INT8" in turing, turing
    assert "no INT8 for Turing" in turing and "Build --precision fp16 for Turing" in turing, turing
    ampere = build(bundle, "--precision", "int8", "--compute-capability", "8.6").output
    (sidecar,) = bundle.glob("model.int8.sm86.rtx*.engine.json")
    counts = json.loads(sidecar.read_text())["layers"]["compute_layers_by_precision"]
    assert 2 * counts["int8"] >= sum(counts.values()) and "compute layers in INT8" not in ampere, (counts, ampere)


def test_without_the_rewrite_the_library_refuses_the_gemm_with_no_jetson_hint(exported, tmp_path, monkeypatch):
    # The rewrite answers NVIDIA's builder, not a guess: with it switched off, TensorRT-RTX itself
    # stops on the GEMM; and an ahead-of-time build's error carries no Jetson memory hint.
    from runtime.engines import turing

    monkeypatch.setattr(turing, "with_turing_rewrite", lambda bundle, plan, targets, log: plan)
    bundle = copy(exported(*SEED), tmp_path)
    for precision in ("fp32", "int8"):
        r = invoke("build", bundle, "--runtime", "tensorrt-rtx", "--compute-capability", "7.5",
                   "--precision", precision, *PROFILE)
        assert r.exit_code == 3, r.output
        assert "for Turing (SM75): FP32 GEMM is not supported" in r.output, r.output
        assert "Jetson" not in r.output and "--workspace" not in r.output, r.output


WIDE_HEAD = '''
from torch import nn


def build(num_classes=5):  # a 1024 -> 8192 classifier: 32 MiB of FP32 weights in one Gemm
    return nn.Sequential(nn.Conv2d(3, 64, 8, 8), nn.ReLU(), nn.Flatten(), nn.Linear(1024, 8192), nn.ReLU(),
                         nn.Linear(8192, num_classes))
'''


def test_out_of_memory_build_doubles_the_default_workspace_but_keeps_the_users(exported, tmp_path_factory, tmp_path,
                                                                               rtx, monkeypatch):
    # On Turing, NVIDIA's builder needs a workspace about the FP32 size of the largest Gemm-as-conv
    # weight (VGG's 25088x4096 classifier: more than the 1,024 MiB default). Measured for this head:
    # 16 and 32 MiB fail with "OutOfMemory", 64 MiB builds.
    from runtime.engines import policy

    model_file = tmp_path_factory.mktemp("wide_head") / "wide_head.py"
    model_file.write_text(WIDE_HEAD)
    bundle = copy(exported("--model", f"{model_file}:build", "--num-classes", "5", "--input-size", "32", *QUICK),
                  tmp_path)
    args = ("--runtime", "tensorrt-rtx", "--compute-capability", "7.5", "--precision", "int8", *PROFILE)
    r = invoke("build", bundle, *args, "--workspace", "16")  # the user's cap is kept
    assert r.exit_code == 3, r.output
    assert "OutOfMemory" in r.output and "pass a larger --workspace (e.g. 32)" in r.output, r.output
    assert not list(bundle.glob("*.engine*"))
    monkeypatch.setattr(policy, "default_workspace_mib", lambda total, jetson: 16)
    r = invoke("build", bundle, *args)
    assert r.exit_code == 0, r.output
    assert "16 MiB workspace; building again with 32 MiB" in r.output, r.output
    assert "32 MiB workspace; building again with 64 MiB" in r.output, r.output
    (sidecar,) = bundle.glob("model.int8.sm75.rtx*.engine.json")
    assert json.loads(sidecar.read_text())["workspace_mib"] == 64
    check_engines(bundle, rtx, ["int8"], targets=("7.5",))


TOKEN_MODEL = '''
import torch
from torch import nn


class Mixer(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 8, 8)
        self.tokens = nn.Linear(8, 8)  # on [N, tokens, 8]: ONNX MatMul, not a Gemm
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        t = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.tokens(t).mean(1))


def build(num_classes=5):
    return Mixer(num_classes)
'''


def test_turing_refuses_a_matmul_it_cannot_run_before_building_with_the_reason(exported, tmp_path_factory, tmp_path):
    model_file = tmp_path_factory.mktemp("token_model") / "token_net.py"
    model_file.write_text(TOKEN_MODEL)
    bundle = copy(exported("--model", f"{model_file}:build", "--num-classes", "5", "--input-size", "32", *QUICK),
                  tmp_path)
    for precision in ("fp32", "int8"):
        r = run_cli("build", bundle, "--runtime", "tensorrt-rtx", "--compute-capability", "7.5,8.6",
                    "--precision", precision, *PROFILE, env={"EDGEPORT_CACHE": str(tmp_path / "cache")})
        assert r.returncode == 2, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("edgeport: error:")]
        assert errors == lines[-1:] and "Traceback" not in r.stderr, r.stderr
        assert f"cannot build {precision} for Turing (compute capability 7.5)" in errors[0]
        assert "'/tokens/MatMul'" in errors[0] and "1x1 convolution" in errors[0]
        assert "--precision fp16 --compute-capability 7.5" in errors[0] and "--compute-capability 8.6" in errors[0]
        assert f"building {precision}" not in r.stderr  # refused before any build started
    assert not list(bundle.glob("*.engine*"))


def test_turing_builds_what_it_can_run(exported, tmp_path, rtx):
    # The control: no GEMM (a Q/DQ Conv graph) builds INT8 for 7.5; FP16 GEMMs build for 7.5.
    bundle = copy(exported(*SEED), tmp_path)
    with_int8_graph(bundle)
    build(bundle, "--precision", "int8,fp16", "--compute-capability", "7.5")
    check_engines(bundle, rtx, ["int8", "fp16"], targets=("7.5",))


# -- NVIDIA's parser refuses broken Q/DQ graphs, and edgeport says so -------------------------------
def qdq_graph(path: Path, input_name: str, output_name: str, size: int, classes: int, *, zero_point: int = 0,
              zero_point_type: str = "int8", int32_bias: bool = False) -> None:
    """Q/DQ input -> Conv (INT8 weights via DequantizeLinear) -> GlobalAveragePool -> Flatten."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    zp_type = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[zero_point_type]
    inits = [helper.make_tensor("x_scale", TensorProto.FLOAT, [], [0.02]),
             helper.make_tensor("x_zero", zp_type, [], [zero_point]),
             numpy_helper.from_array(rng.integers(-100, 100, (classes, 3, 3, 3)).astype(np.int8), "w_q"),
             numpy_helper.from_array(np.full(classes, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(classes, np.int8), "w_zero")]
    nodes = [helper.make_node("QuantizeLinear", [input_name, "x_scale", "x_zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=0)]
    if int32_bias:  # ONNX Runtime's QOperator-style bias: INT32 through a DequantizeLinear
        inits += [numpy_helper.from_array(np.arange(classes, dtype=np.int32), "b_q"),
                  numpy_helper.from_array(np.full(classes, 2e-4, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(classes, np.int32), "b_zero")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zero"], ["bias"], axis=0))
    else:
        inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "bias"))
    nodes += [helper.make_node("Conv", ["x_dq", "w_dq", "bias"], ["conv"], pads=[1, 1, 1, 1]),
              helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], [output_name])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        input_name, TensorProto.FLOAT, ["batch", 3, size, size])], [helper.make_tensor_value_info(
            output_name, TensorProto.FLOAT, ["batch", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def with_int8_graph(bundle: Path, **graph) -> None:
    """Replace the bundle's model.int8.onnx (and its manifest sha256, re-sealed) with a hand-made graph."""
    from runtime.bundle import Bundle

    b = Bundle.open(bundle)
    path = bundle / "model.int8.onnx"
    qdq_graph(path, b.input_name, b.output_name, b.input.shape[-1], b.num_classes, **graph)
    edit_manifest(bundle, lambda m: m["artifacts"]["int8"].update(sha256=sha256(path), bytes=path.stat().st_size))


@pytest.mark.parametrize("case, graph, parser_says", [
    ("zero point 5", {"zero_point": 5}, "Non-zero zero point is not supported"),
    ("uint8 zero point 5", {"zero_point": 5, "zero_point_type": "uint8"}, "Non-zero zero point is not supported"),
    ("int32 bias", {"int32_bias": True}, "input has type Int32 but must have type"),
])
def test_broken_qdq_graph_is_refused_with_the_parsers_own_words(exported, tmp_path, case, graph, parser_says):
    bundle = copy(exported(*SEED), tmp_path)
    with_int8_graph(bundle, **graph)
    r = run_cli("build", bundle, "--runtime", "tensorrt-rtx", "--precision", "int8", *PROFILE,
                env={"EDGEPORT_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()  # progress lines, then the error
    errors = [line for line in lines if line.startswith("edgeport: error:")]
    assert errors == lines[-1:] and "Traceback" not in r.stderr, r.stderr  # one paragraph, last
    assert errors[0].startswith("edgeport: error: TensorRT-RTX ") and "could not parse model.int8.onnx" in errors[0]
    assert parser_says in errors[0] and "cudaError" not in errors[0] and "edgeport lint" in errors[0]
    assert not list(bundle.glob("*.engine")) and not list(bundle.glob("*.engine.json"))


def test_the_same_graph_with_zero_points_0_and_a_float_bias_builds(exported, tmp_path, rtx):
    bundle = copy(exported(*SEED), tmp_path)
    with_int8_graph(bundle)  # the control: a broken case differs from this graph in one field only
    build(bundle, "--precision", "int8")
    check_engines(bundle, rtx, ["int8"])


# -- mismatched and tampered engines are refused before deserializing ----------------------------------
@pytest.fixture
def built_seed(exported, tmp_path, rtx):
    bundle = copy(exported(*SEED), tmp_path)
    build(bundle, "--precision", "fp16")
    return bundle, bundle / f"model.fp16.rtx{short_version(rtx)}.engine"


def rtx_env(rtx, gpu=GEFORCE_4090, version=None):
    from runtime.engines.device import GpuInfo, TargetEnv

    return TargetEnv(tensorrt=version or rtx.__version__, gpu=GpuInfo(*gpu) if gpu else None)


def test_sidecar_check_refuses_tampered_and_mismatched_engines(built_seed, rtx):
    from runtime.bundle import Bundle
    from runtime.errors import BundleError, EdgeportError
    from runtime.engines.sidecar import resolve_engine

    bundle, engine = built_seed
    b = Bundle.open(bundle)
    assert resolve_engine(b, "fp16", runtime="tensorrt-rtx", env=rtx_env(rtx)).engine_path == engine
    with pytest.raises(BundleError, match="has no fp16 TensorRT engine"):
        resolve_engine(b, "fp16", env=rtx_env(rtx))  # TensorRT never picks a TensorRT-RTX engine
    sidecar_path = Path(f"{engine}.json")
    original = sidecar_path.read_text()
    for change, expected in (({"version": "1.6.0.0"}, "TensorRT-RTX 1.6.0.0 built it, this machine has TensorRT-RTX"),
                             ({"compute_capabilities": ["7.5"]}, "built for compute capabilities 7.5, and this GPU "
                                                                 "has compute capability 8.9")):
        sidecar_path.write_text(json.dumps({**json.loads(original), **change}))
        with pytest.raises(EdgeportError, match=expected) as err:
            resolve_engine(b, "fp16", runtime="tensorrt-rtx", env=rtx_env(rtx))
        assert "--runtime tensorrt-rtx" in err.value.render()
    sidecar_path.write_text(original)
    with pytest.raises(EdgeportError, match="default targets .* leave out compute capability 7.5"):
        resolve_engine(b, "fp16", runtime="tensorrt-rtx", env=rtx_env(rtx, gpu=("NVIDIA Quadro RTX 8000", "7.5")))
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the body: the header check alone would not notice
    engine.write_bytes(bytes(data))
    assert "MALFORMED_ENGINE" not in library_verdict(rtx, bytes(data))[1]  # why the sha256 check is needed too
    with pytest.raises(BundleError, match="refused before loading: the engine's sha256 is"):
        resolve_engine(b, "fp16", runtime="tensorrt-rtx", env=rtx_env(rtx))


def test_library_check_refuses_a_malformed_engine_before_deserializing(built_seed, rtx):
    """A damaged header with a matching (forged) sidecar passes the sha256 check, and
    TensorRT-RTX's own get_engine_validity refuses it; deserialize_cuda_engine is never called."""
    from runtime.errors import EdgeportError
    from runtime.runners.tensorrt_rtx import TensorRTRXRunner
    from runtime.engines.sidecar import read_sidecar

    _, engine = built_seed
    data = bytearray(engine.read_bytes())
    data[0] ^= 0xFF
    engine.write_bytes(bytes(data))
    assert library_verdict(rtx, bytes(data)) == ("INVALID", ["MALFORMED_ENGINE"])
    calls = []

    class SpyRuntime(rtx.Runtime):
        def deserialize_cuda_engine(self, plan):
            calls.append(len(plan))
            return super().deserialize_cuda_engine(plan)

    spy = types.ModuleType("tensorrt_rtx_spy")
    spy.__dict__.update({k: v for k, v in vars(rtx).items() if not k.startswith("__")}, __version__=rtx.__version__)
    spy.Runtime = SpyRuntime
    with pytest.raises(EdgeportError, match="own check refuses .* INVALID \\(MALFORMED_ENGINE\\)") as err:
        TensorRTRXRunner(engine, sidecar=read_sidecar(Path(f"{engine}.json")), trt=spy, runtime_cache=False)
    assert "damaged" in err.value.render() and calls == []


def test_verify_without_a_gpu_refuses_in_one_paragraph(built_seed, tmp_path):
    bundle, engine = built_seed
    r = run_cli("verify", bundle, "--backend", "tensorrt-rtx", env={"EDGEPORT_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 3 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{engine.name}: no CUDA GPU is visible here" in r.stderr
    from runtime.bundle import Bundle
    from runtime.errors import BundleError
    from runtime.engines.sidecar import engine_precisions

    assert engine_precisions(Bundle.open(bundle), "tensorrt-rtx") == ["fp16"]
    with pytest.raises(BundleError, match="no TensorRT engines yet \\(it has TensorRT-RTX engines: --backend tensorrt-rtx"):
        engine_precisions(Bundle.open(bundle), "tensorrt")


# -- the runtime (JIT) cache -------------------------------------------------------------------------
def test_runtime_cache_default_path_and_options(exported, tmp_path, rtx, monkeypatch):
    from runtime.engines.device import GpuInfo
    from runtime.engines.rtx import load_runtime_cache, runtime_cache_path, save_runtime_cache

    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    gpu = GpuInfo(*GEFORCE_4090)
    sha = "0123456789abcdef" * 4
    default = tmp_path / "cache" / "rtx-runtime" / "rtx1.7.1.116-sm89-nvidia-geforce-rtx-4090-0123456789abcdef.cache"
    assert runtime_cache_path({"enabled": True, "path": None}, "1.7.1.116", gpu, sha) == default
    assert runtime_cache_path(None, "1.7.1.116", gpu, sha) == default
    # A path in the sidecar (bundle data) is never where the cache goes.
    assert runtime_cache_path({"enabled": True, "path": str(tmp_path / "x.cache")}, "1.7.1.116", gpu, sha) == default
    assert runtime_cache_path({"enabled": False, "path": None}, "1.7.1.116", gpu, sha) is None
    assert load_runtime_cache(default) == b""
    save_runtime_cache(default, b"jit kernels")
    assert load_runtime_cache(default) == b"jit kernels"

    bundle = copy(exported(*SEED), tmp_path / "b")
    name = f"model.fp16.rtx{short_version(rtx)}.engine.json"
    build(bundle, "--precision", "fp16")
    assert json.loads((bundle / name).read_text())["runtime_cache"] == {"enabled": True, "path": None}
    build(bundle, "--precision", "fp16", "--runtime-cache", str(tmp_path / "jit.cache"))
    sc = json.loads((bundle / name).read_text())
    assert sc["runtime_cache"] == {"enabled": True, "path": str(tmp_path / "jit.cache")}
    assert f"--runtime-cache {tmp_path / 'jit.cache'}" in sc["rebuild"]
    build(bundle, "--precision", "fp16", "--no-runtime-cache")
    assert json.loads((bundle / name).read_text())["runtime_cache"] == {"enabled": False, "path": None}
    r = invoke("build", bundle, "--runtime", "tensorrt-rtx", "--runtime-cache", "x", "--no-runtime-cache")
    assert r.exit_code == 2 and "contradict" in r.output


# -- edgeport's builder code against the real library ---------------------------------------------------
def test_builder_timing_cache_level_and_log_hook_on_the_real_library(tmp_path, rtx):
    from runtime.engines.builder import build_serialized
    from runtime.engines.policy import TrtVersion
    from runtime.engines.registry import ENGINE_RUNTIMES
    from runtime.engines.tensorrt_rtx import plan_build as plan_rtx_build

    rt = ENGINE_RUNTIMES["tensorrt-rtx"]

    onnx_path = tmp_path / "qdq.onnx"
    qdq_graph(onnx_path, "x", "y", 16, 4)
    plan = plan_rtx_build(TrtVersion.parse(rtx.__version__), "int8", {"int8"})
    shapes = ((1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    first = build_serialized(rtx, plan, onnx_path, "x", shapes, engine_runtime=rt, workspace_mib=64, builder_level=0, timing_cache=b"")
    assert first.timing_cache and not first.timing_cache_reused and first.plan
    # Bytes that are no timing cache (or, on a CPU, any cache: reading one needs a GPU) are not "reused".
    junk = build_serialized(rtx, plan, onnx_path, "x", shapes, engine_runtime=rt, workspace_mib=64, timing_cache=b"not a cache")
    assert not junk.timing_cache_reused and any("timing cache does not match" in m for m in junk.messages)
    # The hook for readers of the layer information: a verbose, DETAILED build logs the engine's layers.
    detailed = build_serialized(rtx, plan, onnx_path, "x", shapes, engine_runtime=rt, workspace_mib=64, timing_cache=None,
                                log_severity="VERBOSE", profiling_verbosity="DETAILED")
    assert any("LayerType" in line for line in detailed.log) and any("Total Activation Memory" in line
                                                                     for line in detailed.log)
    assert first.log == []  # nothing kept unless asked


def test_import_prefers_the_metapackage_module_and_explains_a_missing_wheel(monkeypatch, rtx):
    from runtime.errors import DependencyError
    from runtime.engines import rtx as rtx_mod

    fake = types.ModuleType("tensorrt_rtx")
    fake.__version__ = "9.9.9"
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", fake)
    assert rtx_mod.import_tensorrt_rtx() is fake  # NVIDIA's metapackage re-exports the bindings
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    assert rtx_mod.import_tensorrt_rtx() is rtx  # the bindings wheel edgeport[rtx] installs
    monkeypatch.setitem(sys.modules, "tensorrt_rtx_bindings", None)
    with pytest.raises(DependencyError) as err:
        rtx_mod.import_tensorrt_rtx()
    assert "pip install 'edgeport[rtx]'" in err.value.render()
    monkeypatch.setattr(rtx_mod.platform, "machine", lambda: "aarch64")
    with pytest.raises(DependencyError) as err:
        rtx_mod.import_tensorrt_rtx()
    assert "x86_64 Linux and Windows only (there is none for Jetson)" in err.value.render()


# -- on an RTX-class GPU only ------------------------------------------------------------------------------
@pytest.mark.gpu
def test_build_verify_and_bench_on_a_gpu(exported, tmp_path):
    """Runs the engines (JIT, runtime cache) on a GPU; skipped without one."""
    bundle = copy(exported("--model", "resnet18", *SMALL, "--fp16", "--max-batch", "8"), tmp_path)
    env = {"EDGEPORT_CACHE": str(tmp_path / "cache")}
    assert run_cli("build", bundle, "--runtime", "tensorrt-rtx", *PROFILE, env=env).returncode == 0
    r = run_cli("verify", bundle, "--backend", "tensorrt-rtx", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| fp16 | tensorrt-rtx/gpu |" in r.stdout
    assert list((tmp_path / "cache" / "rtx-runtime").glob("rtx*.cache"))  # the JIT cache was saved
    r = run_cli("bench", bundle, "--backend", "tensorrt-rtx", "--batch", "1", "--iterations", "5", env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_nvidia_parser_takes_the_lowercased_einsum_and_refuses_torchvisions_spelling(rtx):
    # exporter/graph/rewrites.py lowercase_einsum: why it exists, checked against NVIDIA's parser.
    from onnx import TensorProto, helper

    from exporter.graph.rewrites import lowercase_einsum

    node = helper.make_node("Einsum", ["q", "k"], ["y"], equation="B H I D, B H J D -> B H I J")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [-1, 3, 4, 5])
                                            for n in ("q", "k")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    def parse_errors(m) -> list[str]:
        logger = rtx.Logger(rtx.Logger.ERROR)
        builder = rtx.Builder(logger)  # kept alive while the parser fills its network
        network = builder.create_network(0)
        parser = rtx.OnnxParser(network, logger)
        parser.parse(m.SerializeToString())
        return [parser.get_error(i).desc() for i in range(parser.num_errors)]

    assert any("Invalid character" in e for e in parse_errors(model))
    lowercase_einsum(model)
    assert parse_errors(model) == []
