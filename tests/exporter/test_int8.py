"""INT8: calibration data, TensorRT-style Q/DQ quantization, the Q/DQ lint, the calibration cache.

Small input sizes keep it fast; the done-when sizes (224, resnet50) are measured by hand
(docs/int8.md). EDGEPORT_CACHE points into the session's tmp dir (conftest.offline_env).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import edit_manifest, invoke

from exporter.int8 import calibration as C
from exporter.int8 import ort_quant, ranges as R
from exporter.int8 import quantize as Q
from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import Preprocessing

RESNET18 = ("--model", "resnet18", "--weights", "none", "--input-size", "64", "--int8")
DENSENET121 = ("--model", "densenet121", "--weights", "none", "--input-size", "64", "--int8")
PRE = Preprocessing(resize=73, crop=64)


def _onnx():
    return pytest.importorskip("onnx")


def _result(bundle: Path, precision: str) -> dict:
    report = json.loads((bundle / "report.json").read_text())
    return next(r for r in report["results"] if r["precision"] == precision)


# -- quantized graphs ----------------------------------------------------------------------------
def test_resnet18_int8_passes_lint_and_quantizes_every_residual_add(exported):
    onnx = _onnx()
    from runtime.graph.qdq_lint import lint_model

    bundle = exported(*RESNET18)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["artifacts"]["int8"]["file"] == "model.int8.onnx"
    assert manifest["int8"]["method"] == R.DEFAULT_METHOD
    assert manifest["int8"]["samples"] == 80  # the shipped calib_data, all of it
    assert Path(manifest["int8"]["calibration_source"]["path"]) == C.DEFAULT_CALIB_DIR

    fp32 = onnx.load(str(bundle / "model.onnx"))
    int8 = onnx.load(str(bundle / "model.int8.onnx"))
    assert int8.opset_import[0].version == fp32.opset_import[0].version == 17  # TensorRT 8.6 parses <= 17
    report = lint_model(int8)
    assert report.passed, report.summary()
    adds = [n.name for n in fp32.graph.node if n.op_type == "Add"]
    assert len(adds) == 8  # resnet18: 8 BasicBlocks, one residual Add each
    assert sorted(report.int8_nodes["Add"]) == sorted(adds)
    assert not any(report.float_nodes.values()), report.float_nodes
    assert len(report.int8_nodes["Conv"]) == 20 and report.int8_nodes["Gemm"] == ["/fc/Gemm"]

    # The TensorRT fusion pattern: one Add input straight from a Conv, the residual one through Q/DQ.
    producer = {o: n for n in int8.graph.node for o in n.output}
    for add in (n for n in int8.graph.node if n.op_type == "Add"):
        kinds = sorted(producer[i].op_type for i in add.input)
        assert kinds == ["Conv", "DequantizeLinear"], (add.name, kinds)
    # Symmetric INT8 everywhere, float biases.
    inits = {i.name: i for i in int8.graph.initializer}
    for n in int8.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = onnx.numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any(), n.name
    assert not [i for i in int8.graph.initializer if i.data_type == onnx.TensorProto.INT32]

    result = _result(bundle, "int8")
    assert result["passed"] and result["cosine_min"] >= 0.99, result
    lint = json.loads((bundle / "report.json").read_text())["lint"]["int8"]
    assert lint["passed"] and lint["int8_layers"]["Add"] == 8


def test_densenet121_int8_concats_share_one_scale(exported):
    onnx = _onnx()
    from runtime.graph.qdq_lint import lint_model

    bundle = exported(*DENSENET121)
    int8 = onnx.load(str(bundle / "model.int8.onnx"))
    report = lint_model(int8)
    assert report.passed, report.summary()
    concats = [n for n in int8.graph.node if n.op_type == "Concat"]
    assert len(concats) == 58  # 6 + 12 + 24 + 16 dense layers
    assert sorted(report.int8_nodes["Concat"]) == sorted(n.name for n in concats)
    assert len(report.int8_nodes["Conv"]) == 120 and not report.float_nodes["Conv"]
    producer = {o: n for n in int8.graph.node for o in n.output}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    for n in concats:
        scales = {float(inits[producer[i].input[1]]) for i in n.input}
        assert len(scales) == 1, (n.name, scales)
    result = _result(bundle, "int8")
    assert result["passed"] and result["cosine_min"] >= 0.99, result


def test_trained_model_int8_agrees_with_fp32(trained_model, tmp_path):
    tm = trained_model
    result = invoke("export", *tm.export_args(), "--int8", "--calib-data", tm.calib, "--engine", "no",
                    "--output", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    bundle = next(p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["int8"]["samples"] == len(list(tm.calib.iterdir()))
    with np.load(bundle / "golden.npz") as z:
        names = [str(n) for n in z["names"]]
        reference = z["outputs"]
    assert len(names) == 70 and all(n.endswith(".png") for n in names)
    labels = np.array([tm.label_of(n) for n in names])
    # The model really learned the task (chance is 1/7), so top-1 agreement means something.
    assert (reference.argmax(1) == labels).mean() >= 0.85
    int8 = _result(bundle, "int8")
    assert int8["top1_agreement"] >= 0.97, int8
    assert int8["cosine_min"] >= 0.99 and int8["passed"], int8


# -- FP16 float regions, quantized pools, and NVIDIA's builder ------------------------------------
def _elem_types(onnx, model) -> dict:
    """Element type of every tensor, from ONNX's own strict shape inference (which also checks the types)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.input, *g.output, *g.value_info]}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


@pytest.mark.parametrize("args", [RESNET18, DENSENET121], ids=["resnet18", "densenet121"])
def test_int8_float_regions_are_fp16_and_pools_quantized(exported, args):
    onnx = _onnx()
    TP = onnx.TensorProto
    bundle = exported(*args)
    int8 = onnx.load(str(bundle / "model.int8.onnx"))
    assert int8.opset_import[0].version == 17  # FP16 regions by Casts: TensorRT 8.6 still parses it
    types = _elem_types(onnx, int8)
    assert [types[i.name] for i in int8.graph.input] == [TP.FLOAT] == [types[o.name] for o in int8.graph.output]
    producer = {o: n for n in int8.graph.node for o in n.output}
    reads_dq = [n for n in int8.graph.node if any(producer.get(i) is not None
                                                  and producer[i].op_type == "DequantizeLinear" for i in n.input)]
    # Q/DQ stay FP32 (opset 17), and so does every layer that reads a DequantizeLinear (the INT8 layers).
    for n in int8.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert types[n.input[1]] == TP.FLOAT and types[(n.input if n.op_type == "QuantizeLinear" else n.output)[0]] \
                == TP.FLOAT, n.name
    for n in reads_dq:
        floats = [t for t in [*n.input, *n.output] if types.get(t) in (TP.FLOAT, TP.FLOAT16)]
        assert {types[t] for t in floats} == {TP.FLOAT}, n.name
    # What is neither: FP16. Every ReLU and every pre-activation BatchNorm (DenseNet) computes in FP16,
    # except the first BatchNorm of each dense block, which reads the block input's DequantizeLinear.
    relus = [n for n in int8.graph.node if n.op_type == "Relu"]
    assert relus and all(types[n.input[0]] == types[n.output[0]] == TP.FLOAT16 for n in relus)
    bns = [n for n in int8.graph.node if n.op_type == "BatchNormalization" and n not in reads_dq]
    assert all(types[n.input[0]] == types[n.output[0]] == TP.FLOAT16 for n in bns)
    if args is DENSENET121:
        assert len(bns) == 62 - 4
    # Every pool reads its input through Q/DQ (TensorRT pools INT8 data).
    pools = [n for n in int8.graph.node if n.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool")]
    assert len(pools) == (2 if args is RESNET18 else 5)
    assert all(producer[n.input[0]].op_type == "DequantizeLinear" for n in pools)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["int8"]["rules"]["float_regions"] == "fp16" and manifest["int8"]["rules"]["pools"]
    result = _result(bundle, "int8")
    assert result["passed"] and result["cosine_min"] >= 0.99, result


def test_fp32_regions_reads_the_fp16_graph_back_exactly(exported, tmp_path):
    """sensitivity.fp32_regions(model.int8.onnx) is the graph quantize_qdq builds before the FP16 pass:
    compared with an independent re-quantization of model.onnx from calibration.json, bit for bit."""
    onnx = _onnx()
    from exporter.graph.qdq_graph import fp32_regions
    from exporter.int8.sensitivity import run_model

    bundle = exported(*RESNET18)
    fp32 = onnx.load(str(bundle / "model.onnx"))
    ranges = {t: [v["min"], v["max"]] for t, v in json.loads((bundle / "calibration.json").read_text())["tensors"].items()}
    pre = ort_quant.prepare_for_quantization((bundle / "model.onnx").read_bytes(), tmp_path)
    reference, _ = Q.quantize_qdq(pre, ranges, tmp_path / "q.onnx", tmp_path)
    back = fp32_regions(onnx.load(str(bundle / "model.int8.onnx")), fp32)
    assert not [n for n in back.graph.node if n.op_type == "Cast"]
    assert sorted(n.name for n in back.graph.node) == sorted(n.name for n in reference.graph.node)
    x = C.load_calibration(C.DEFAULT_CALIB_DIR, PRE, (3, 64, 64), samples=8).inputs()
    np.testing.assert_array_equal(run_model(back, x, input_name="input"), run_model(reference, x, input_name="input"))


def _rtx():
    from qdq_cases import import_rtx

    trt, why = import_rtx()
    if trt is None:
        pytest.skip(f"needs NVIDIA TensorRT-RTX (x86_64 wheels only; none for aarch64/Jetson): {why}")
    return trt


def test_rtx_build_records_every_compute_layer_int8(exported, copy_bundle, tmp_path):
    """End to end on NVIDIA's real builder (CPU-only AOT): `edgeport build --runtime tensorrt-rtx` on
    densenet121 (64 px) records the engine's layer information in the sidecar, report.json, report.md
    and report.html: every convolution, pool and the classifier read INT8. The same graph without pool
    Q/DQ and FP16 regions (the previous recipe) pools in FP32."""
    onnx = _onnx()
    from qdq_cases import aot_probe

    from exporter.graph.qdq_graph import fp32_regions
    from runtime.engines.layers import summarize_build_log

    trt = _rtx()
    bundle = copy_bundle(exported(*DENSENET121))
    result = invoke("build", bundle, "--runtime", "tensorrt-rtx", "--precision", "int8", "--opt-batch", "4",
                    "--max-batch", "8")
    assert result.exit_code == 0, result.output
    assert "125 compute layers (125 INT8)" in result.output
    engine = next(bundle.glob("model.int8.*.engine"))
    layers = json.loads(Path(f"{engine}.json").read_text())["layers"]
    assert layers["compute_layers_by_precision"] == {"int8": 125} and not layers["other_compute_layers"]
    kinds = {x["type"] for x in layers["int8_compute_layers"]}
    assert kinds == {"correlation", "gemm", "maxpool", "avgpool"}
    assert len([x for x in layers["int8_compute_layers"] if x["type"] == "correlation"]) == 120
    assert layers["weights_bytes"] > 0 and layers["activation_bytes"] > 0
    recorded = json.loads((bundle / "report.json").read_text())["engines"][engine.name]
    assert recorded["composition"] == layers and recorded["runtime"] == "tensorrt-rtx"
    assert _result(bundle, "int8")["passed"]  # verify's results are kept
    assert "| 125 / 0 / 0 |" in (bundle / "report.md").read_text()
    assert "125 compute layers run INT8, 0 do not" in (bundle / "report.html").read_text()
    # The previous recipe: FP32 regions, pools read float.
    old = fp32_regions(onnx.load(str(bundle / "model.int8.onnx")), onnx.load(str(bundle / "model.onnx")))
    producer = {o: n for n in old.graph.node for o in n.output}
    for n in old.graph.node:
        if n.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool"):
            n.input[0] = producer[producer[n.input[0]].input[0]].input[0]  # DQ <- Q <- the float tensor
    onnx.save(old, str(tmp_path / "old.onnx"))
    verdict, errors, log = aot_probe(trt, tmp_path / "old.onnx", batches=(1, 4, 8))
    assert verdict == "builds", errors
    before = summarize_build_log(log)
    assert {la.precision for la in before.compute_layers() if la.kind == "avgpool"} == {"fp32"}
    # (At 224 px, batch 32, that costs 197 MB of activations against 166.5 MB: docs/int8.md. At 64 px
    # the peak comes before the transitions, so both report the same total.)


# -- the lint on foreign graphs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ort_quantized(exported, tmp_path_factory):
    """resnet18 quantized by ONNX Runtime with its defaults and with the classic uint8 defaults."""
    pytest.importorskip("onnxruntime.quantization")
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    bundle = exported(*RESNET18)
    calib = C.load_calibration(C.DEFAULT_CALIB_DIR, PRE, (3, 64, 64), samples=8)
    out = tmp_path_factory.mktemp("ortq")
    paths = {}
    for name, kwargs in (("default", {}), ("uint8", {"activation_type": QuantType.QUInt8})):
        paths[name] = out / f"{name}.onnx"
        with ort_quant.quiet_ort():
            quantize_static(str(bundle / "model.onnx"), str(paths[name]), C.CalibrationReader(calib, "input"),
                            quant_format=QuantFormat.QDQ, **kwargs)
    return paths


def test_lint_rejects_ort_default_quantization_naming_nodes(ort_quantized):
    onnx = _onnx()
    from runtime.graph.qdq_lint import lint_model

    for kind, path in ort_quantized.items():
        report = lint_model(path)
        assert not report.passed
        names = {n.name for n in onnx.load(str(path)).graph.node}
        rules = report.by_rule()
        assert rules["zero-point"], kind  # asymmetric activations
        assert rules["int32-bias"] and all(v.node in names for v in rules["int32-bias"])
        assert rules["weight-per-channel"]  # ORT's default is per-tensor weights
        assert all(v.node in names for v in rules["zero-point"])
        assert "input_QuantizeLinear" in {v.node for v in rules["zero-point"]}
    uint8 = lint_model(ort_quantized["uint8"]).by_rule()["int8"]
    assert uint8 and "uint8" in uint8[0].message and "input_QuantizeLinear" in {v.node for v in uint8}


def test_lint_cli_exit_codes(exported, ort_quantized):
    bundle = exported(*RESNET18)
    ok = invoke("lint", bundle / "model.int8.onnx")
    assert ok.exit_code == 0, ok.output
    assert "clean" in ok.output and "Add 8 INT8 / 0 float" in ok.output
    bad = invoke("lint", ort_quantized["uint8"])
    assert bad.exit_code == 1
    assert "FAIL zero-point" in bad.output and "input_QuantizeLinear" in bad.output
    assert "FAIL int32-bias" in bad.output
    as_json = json.loads(invoke("lint", ort_quantized["default"], "--json").stdout)["result"]
    assert as_json["passed"] is False and as_json["rules"]["int32-bias"]["violations"]
    fp32 = invoke("lint", bundle / "model.onnx")
    assert fp32.exit_code == 1 and "has-qdq" in fp32.output
    missing = invoke("lint", bundle / "nope.onnx")
    assert missing.exit_code == 2  # a path that does not exist: what the user typed


def test_verify_fails_on_a_lint_violation(exported, ort_quantized, copy_bundle):
    from runtime.bundle import sha256_file

    bundle = copy_bundle(exported(*RESNET18))
    shutil.copy(ort_quantized["default"], bundle / "model.int8.onnx")
    edit_manifest(bundle, lambda m: m["artifacts"]["int8"].update(sha256=sha256_file(bundle / "model.int8.onnx")))
    result = invoke("verify", bundle)  # every artifact, the Q/DQ one included
    assert result.exit_code == 1, result.output
    report = json.loads((bundle / "report.json").read_text())
    assert report["lint"]["int8"]["passed"] is False and report["lint"]["int8"]["violations"]["zero-point"]
    int8 = _result(bundle, "int8")
    assert not int8["passed"] and any(f.startswith("Q/DQ lint") for f in int8["failures"])
    assert int8["cosine_min"] >= 0.99  # accurate on CPU, still refused: TensorRT could not build it
    assert "Q/DQ lint" in (bundle / "report.md").read_text()


def _tiny_qdq(tmp_path: Path, act_dtype=3, act_zp=0, weight_scales=4, weight_axis=0, bias_int32=False) -> Path:
    """input -> Q/DQ -> Conv(weight through DQ) -> output, with the given quantization parameters."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    np_types = {3: np.int8, 2: np.uint8, 5: np.int16}
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    ws = numpy_helper.from_array(np.full((weight_scales,), 0.01, np.float32), "w_s")
    wz = numpy_helper.from_array(np.zeros((weight_scales,), np.int8), "w_z")
    xs = numpy_helper.from_array(np.array(0.02, np.float32), "x_s")
    xz = numpy_helper.from_array(np.array(act_zp, np_types[act_dtype]), "x_z")
    inits = [w, ws, wz, xs, xz]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"], name="x_Q"),
        helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"], name="x_DQ"),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_dq"], name="w_DQ", axis=weight_axis),
    ]
    conv_inputs = ["x_dq", "w_dq"]
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(4, np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 2e-4, np.float32), "b_s"),
                  numpy_helper.from_array(np.zeros(4, np.int32), "b_z")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b_dq"], name="bias_DQ", axis=0))
        conv_inputs.append("b_dq")
    nodes.append(helper.make_node("Conv", conv_inputs, ["y"], name="conv"))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_lint_rules_on_handmade_graphs(tmp_path):
    from runtime.graph.qdq_lint import lint_model

    assert lint_model(_tiny_qdq(tmp_path)).passed
    v = lint_model(_tiny_qdq(tmp_path, act_dtype=5)).by_rule()  # 16-bit activations
    assert [x.node for x in v["int8"]] == ["x_Q", "x_DQ"]
    v = lint_model(_tiny_qdq(tmp_path, act_zp=3)).by_rule()
    assert [x.node for x in v["zero-point"]] == ["x_Q", "x_DQ"]
    v = lint_model(_tiny_qdq(tmp_path, weight_scales=1)).by_rule()
    assert [x.node for x in v["weight-per-channel"]] == ["w_DQ"]
    v = lint_model(_tiny_qdq(tmp_path, weight_axis=1, weight_scales=3)).by_rule()
    assert [x.node for x in v["weight-per-channel"]] == ["w_DQ"] and "axis 1" in v["weight-per-channel"][0].message
    v = lint_model(_tiny_qdq(tmp_path, bias_int32=True)).by_rule()
    assert [x.node for x in v["int32-bias"]] == ["bias_DQ"] and not v["int8"]


# -- calibration data ----------------------------------------------------------------------------
def _save_images(folder: Path) -> dict[str, str]:
    """One image per mode PIL can hand us, plus two unreadable files; returns {relpath: kind}."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    (folder / "sub" / "deeper").mkdir(parents=True)
    files = {
        "rgb.jpg": (rgb, "JPEG"),
        "gray.png": (rgb.convert("L"), "PNG"),
        "rgba.png": (rgb.convert("RGBA"), "PNG"),
        "sub/palette.png": (rgb.convert("P"), "PNG"),
        "sub/cmyk.jpg": (rgb.convert("CMYK"), "JPEG"),
        "sub/deeper/pic.bmp": (rgb, "BMP"),
        "sub/deeper/pic.webp": (rgb, "WEBP"),
    }
    for rel, (img, fmt) in files.items():
        img.save(folder / rel, fmt)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    (folder / "sub" / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    return {rel: "ok" for rel in files} | {"broken.jpg": "bad", "sub/empty.png": "bad"}


def test_calibration_folder_modes_recursive_and_corrupt_files_counted(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader

    kinds = _save_images(tmp_path)
    calib = C.load_calibration(tmp_path, PRE, (3, 64, 64))
    assert sorted(calib.names) == sorted(k for k, v in kinds.items() if v == "ok")
    assert sorted(s[0] for s in calib.skipped) == ["broken.jpg", "sub/empty.png"]
    x = calib.inputs()
    assert x.shape == (7, 3, 64, 64) and x.dtype == np.float32 and np.isfinite(x).all()

    reader = C.CalibrationReader(calib, "input", batch=3)
    assert isinstance(reader, CalibrationDataReader)
    batches = [feed["input"].shape[0] for feed in reader]
    assert batches == [3, 3, 1] and len(reader) == 7
    assert reader.get_next() is None
    reader.set_range(2, 5)
    assert [f["input"].shape[0] for f in reader] == [3]
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["input"], x[2:5])


def test_calibration_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    (tmp_path / "b.png").write_bytes(b"")
    with pytest.raises(EdgeportError, match=r"None of the 2 image files"):
        C.load_calibration(tmp_path, PRE, (3, 64, 64))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdgeportError, match="no image files"):
        C.load_calibration(empty, PRE, (3, 64, 64))
    with pytest.raises(EdgeportError, match="does not exist"):
        C.load_calibration(tmp_path / "missing", PRE, (3, 64, 64))


def test_calibration_samples_cap_and_deterministic_order(tmp_path, monkeypatch):
    from PIL import Image

    for i in range(12):
        Image.new("RGB", (30, 30), (i * 20, 0, 0)).save(tmp_path / f"img{i:02d}.png")
    (tmp_path / "zz_broken.png").write_bytes(b"x")
    full = C.load_calibration(tmp_path, PRE, (3, 64, 64))
    again = C.load_calibration(tmp_path, PRE, (3, 64, 64))
    assert full.names == again.names and len(full) == 12 and full.digest == again.digest
    assert full.names != sorted(full.names)  # a fixed shuffle, so class-sorted folders mix
    three = C.load_calibration(tmp_path, PRE, (3, 64, 64), samples=3)
    readable = [n for n in full.names]
    assert three.names == readable[:3] and three.digest != full.digest
    monkeypatch.setattr(C, "MAX_DEFAULT_SAMPLES", 5)
    assert len(C.load_calibration(tmp_path, PRE, (3, 64, 64))) == 5
    with pytest.raises(UsageError):
        C.load_calibration(tmp_path, PRE, (3, 64, 64), samples=0)


def test_calibration_arrays_npy_and_npz(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    calib = C.load_calibration(tmp_path / "calib.npy", PRE, (3, 64, 64), samples=4)
    assert calib.source == "array" and len(calib) == 4
    np.testing.assert_array_equal(calib.inputs(), x[:4])
    np.savez(tmp_path / "one.npz", anything=x)
    assert len(C.load_calibration(tmp_path / "one.npz", PRE, (3, 64, 64))) == 6
    np.savez(tmp_path / "named.npz", inputs=x, labels=np.arange(6))
    assert len(C.load_calibration(tmp_path / "named.npz", PRE, (3, 64, 64))) == 6
    np.savez(tmp_path / "ambiguous.npz", a=x, b=x)
    with pytest.raises(UsageError, match="cannot tell which"):
        C.load_calibration(tmp_path / "ambiguous.npz", PRE, (3, 64, 64))
    with pytest.raises(UsageError, match=r"shape \[6, 3, 64, 64\].*\[N, 3, 32, 32\]"):
        C.load_calibration(tmp_path / "calib.npy", PRE, (3, 32, 32))
    np.save(tmp_path / "ints.npy", (x * 10).astype(np.int32))
    with pytest.raises(UsageError, match="float"):
        C.load_calibration(tmp_path / "ints.npy", PRE, (3, 64, 64))
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(EdgeportError, match="NaN"):
        C.load_calibration(tmp_path / "nan.npy", PRE, (3, 64, 64))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UsageError, match=r"\.npy or \.npz"):
        C.load_calibration(tmp_path / "x.txt", PRE, (3, 64, 64))


def test_calibration_overlap_with_golden_is_refused(tmp_path):
    from exporter.golden import BUILTIN_DIR
    from runtime.preprocess import list_images

    shutil.copy(C.DEFAULT_CALIB_DIR / "brick_00.jpg", tmp_path / "brick.jpg")
    shutil.copy(BUILTIN_DIR / "coffee.jpg", tmp_path / "renamed.jpg")
    calib = C.load_calibration(tmp_path, PRE, (3, 64, 64))
    with pytest.raises(UsageError, match=r"renamed\.jpg = coffee\.jpg"):
        C.check_overlap(calib, list_images(BUILTIN_DIR), "the golden photos")
    # The shipped sets never overlap.
    C.check_overlap(C.load_calibration(C.DEFAULT_CALIB_DIR, PRE, (3, 64, 64)), list_images(BUILTIN_DIR), "golden")


def test_default_calibration_folder_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "DEFAULT_CALIB_DIR", tmp_path / "gone")
    with pytest.raises(EdgeportError, match="calibration images are missing") as err:
        C.default_calib_dir()
    assert "--calib-data" in err.value.render() and "gone" in err.value.render()


def test_export_refuses_calib_and_verify_overlap(trained_model, tmp_path):
    tm = trained_model
    calib = tmp_path / "calib"
    shutil.copytree(tm.calib, calib)
    shutil.copy(sorted(tm.heldout.iterdir())[0], calib / "leaked.png")
    result = invoke("export", *tm.export_args(), "--int8", "--calib-data", calib, "--engine", "no",
                    "--output", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "leaked.png" in result.output and "--golden-data" in result.output


# -- calibration cache ---------------------------------------------------------------------------
def _export_int8(tm, out: Path, *extra) -> tuple[dict, str]:
    result = invoke("export", *tm.export_args(), "--int8", "--calib-data", tm.calib, "--no-verify",
                    "--engine", "no", "--output", out, *extra)
    assert result.exit_code == 0, result.output
    bundle = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    return json.loads((bundle / "manifest.json").read_text()), result.output


def test_calibration_cache_reuse_and_invalidation(trained_model, tmp_path, monkeypatch):
    tm = trained_model
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPORT_CACHE", str(cache))
    first, log = _export_int8(tm, tmp_path / "a")
    assert first["int8"]["calibrated"] and "calibration cache miss" in log
    assert len(list((cache / "calibration").glob("*.json"))) == 1
    # Another output folder (no old bundle to read): the cache folder serves the ranges.
    second, log = _export_int8(tm, tmp_path / "b")
    assert not second["int8"]["calibrated"] and "calibration cache hit" in log and str(cache) in log
    assert second["int8"]["cache_key"] == first["int8"]["cache_key"]
    a = json.loads((tmp_path / "a" / "model_build" / "calibration.json").read_text())
    b = json.loads((tmp_path / "b" / "model_build" / "calibration.json").read_text())
    assert a["tensors"] == b["tensors"]
    # The same output folder again, with the cache folder gone: the old bundle's calibration.json.
    shutil.rmtree(cache)
    third, log = _export_int8(tm, tmp_path / "a")
    assert not third["int8"]["calibrated"] and "model_build/calibration.json" in log

    keys = {first["int8"]["cache_key"]}
    for extra in (("--calib-samples", "20"), ("--calib-method", "entropy")):
        m, log = _export_int8(tm, tmp_path / "c", *extra)
        assert m["int8"]["calibrated"] and "calibration cache miss" in log, extra
        keys.add(m["int8"]["cache_key"])
    # Same file names, one image changed: new key.
    changed = tmp_path / "calib_changed"
    shutil.copytree(tm.calib, changed)
    victim = sorted(changed.iterdir())[0]
    from PIL import Image

    Image.open(victim).transpose(Image.FLIP_TOP_BOTTOM).save(victim)
    result = invoke("export", *tm.export_args(), "--int8", "--calib-data", changed, "--no-verify", "--engine", "no",
                    "--output", tmp_path / "d")
    assert result.exit_code == 0 and "calibration cache miss" in result.output
    keys.add(json.loads((tmp_path / "d" / "model_build" / "manifest.json").read_text())["int8"]["cache_key"])
    assert len(keys) == 4


def _calibration_doc(**tensors) -> dict:
    return {"format": "edgeport-calibration", "version": 1, "key": "k" * 64, "recipe_version": 2,
            "method": "minmax", "percentile": None, "samples": 8,
            "source": {"path": "/c", "kind": "folder", "digest": "d", "skipped": 0},
            "tensors": tensors or {"x": {"min": -2.0, "max": 2.0, "amax": 2.0, "observed": [-0.5, 2.0]}}}


def test_calibration_file_round_trip(tmp_path):
    from exporter.int8.calibration_file import CalibrationRanges

    doc = _calibration_doc()
    ranges = CalibrationRanges.from_dict(doc)
    assert ranges.ranges == {"x": (-2.0, 2.0)} and ranges.observed == {"x": (-0.5, 2.0)}
    ranges.write(tmp_path / "c" / "calibration.json")
    assert json.loads((tmp_path / "c" / "calibration.json").read_text()) == doc
    assert CalibrationRanges.read(tmp_path / "c" / "calibration.json") == ranges


@pytest.mark.parametrize("change, field", [
    ({"format": "other"}, "edgeport-calibration"),
    ({"samples": 0}, "samples"),
    ({"samples": True}, "samples"),
    ({"tensors": {}}, "tensors"),
    ({"tensors": {"x": {"min": -1.0, "max": "2"}}}, "tensors.x.min/max"),
    ({"tensors": {"x": {"min": 3.0, "max": 2.0, "observed": [0.0, 1.0]}}}, "tensors.x.min/max"),
    ({"tensors": {"x": {"min": -1.0, "max": 1.0, "observed": [0.0]}}}, "tensors.x.observed"),
    ({"tensors": {"x": {"min": -1.0, "max": 1.0, "observed": [0.0, float("nan")]}}}, "tensors.x.observed"),
])
def test_calibration_file_refuses_malformed_documents_naming_the_field(change, field):
    from exporter.int8.calibration_file import CalibrationFileError, CalibrationRanges

    with pytest.raises(CalibrationFileError, match=re.escape(field)):
        CalibrationRanges.from_dict({**_calibration_doc(), **change})


def test_malformed_cached_ranges_are_a_cache_miss(tmp_path):
    from exporter.int8.ranges import _read_cached

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_calibration_doc()))
    bad.write_text(json.dumps(_calibration_doc(x={"min": -1.0, "max": 1.0})))  # no observed range
    assert _read_cached(good, "k" * 64).ranges == {"x": (-2.0, 2.0)}
    assert _read_cached(good, "other-key") is None
    assert _read_cached(bad, "k" * 64) is None
    assert _read_cached(tmp_path / "absent.json", "k" * 64) is None


def test_calibration_key_covers_every_input():
    base = dict(graph_bytes=b"graph", preprocessing={"resize": 73}, calib_digest="d", method="minmax", samples=8)
    key = R.calibration_key(**base)
    assert key == R.calibration_key(**base) and re.fullmatch(r"[0-9a-f]{64}", key)
    for field, value in (("graph_bytes", b"graph2"), ("preprocessing", {"resize": 74}), ("calib_digest", "e"),
                         ("method", "entropy"), ("samples", 9)):
        assert R.calibration_key(**{**base, field: value}) != key, field


# -- TensorRT calibration cache --------------------------------------------------------------------
def test_trt_calibration_cache_format(exported):
    from runtime.engines.calibration import TABLE_VERSION, parse_table, write_table

    onnx = _onnx()
    # 0.01 as a big-endian float32 is 3c23d70a; a zero range is left out.
    assert write_table({"x": [-1.27, 0.5], "z": [0.0, 0.0]}, ["x", "z"], version="8601") == \
        "TRT-8601-EntropyCalibration2\nx: 3c23d70a\n"

    bundle = exported(*RESNET18)
    text = (bundle / "calib.cache").read_text()
    lines = text.splitlines()
    assert lines[0] == f"TRT-{TABLE_VERSION}-EntropyCalibration2"
    assert all(re.fullmatch(r"\S+: [0-9a-f]{8}", ln) for ln in lines[1:]), lines[:5]
    header, scales = parse_table(text)
    fp32 = onnx.load(str(bundle / "model.onnx"))
    names = {i.name for i in fp32.graph.input} | {o for n in fp32.graph.node for o in n.output}
    assert "input" in scales and set(scales) <= names
    assert len(scales) >= 45  # every activation of resnet18 (50 calibrated tensors)
    ranges = json.loads((bundle / "calibration.json").read_text())["tensors"]
    for name, scale in scales.items():
        expected = np.float32(ranges[name]["amax"] / 127.0)
        assert struct.pack(">f", scale) == struct.pack(">f", expected), name
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["int8"]["trt_calibration_cache"]["file"] == "calib.cache"
    assert manifest["int8"]["calibration"]["file"] == "calibration.json"
