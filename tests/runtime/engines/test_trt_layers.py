"""runtime/engines/layers.py on layer information recorded from NVIDIA's builder.

tests/data/rtx_layer_info.log holds lines of a real TensorRT-RTX 1.7.1.116 build log
(densenet121 model.int8.onnx at 224 px, CPU-only AOT, VERBOSE logger, DETAILED profiling
verbosity): 13 of its 252 layer lines, the memory totals and the start of the I/O block, as
a file logger writes them ("[SEVERITY] message", continuation lines bare). The expected
numbers below were counted by hand from that file (grep), not by the code under test.
The end-to-end check on a real build is in tests/exporter/test_int8.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from runtime.engines.layers import parse_io_line, parse_layer_line, summarize_build_log

RECORDED = Path(__file__).resolve().parents[2] / "data" / "rtx_layer_info.log"


def _as_messages(lines: list[str]) -> list[str]:
    """The same log as the messages an ILogger receives, "SEVERITY: message" (multi-line messages)."""
    messages = []
    for line in lines:
        m = re.match(r"\[(\w+)\] (.*)", line)
        if m:
            messages.append(f"{m.group(1)}: {m.group(2)}")
        elif messages:
            messages[-1] += "\n" + line
    return messages


def test_recorded_layer_information_in_both_log_forms():
    lines = RECORDED.read_text().splitlines()
    for log in (lines, _as_messages(lines)):
        s = summarize_build_log(log)
        assert s is not None and len(s.layers) == 13
        d = s.to_dict()
        assert d["layer_types"] == {"kgen": 6, "correlation": 3, "shape_call": 1, "maxpool": 1, "avgpool": 1, "gemm": 1}
        assert d["tensors"] == {"Float": 41, "Int8": 20}  # every Datatype the 13 lines list
        assert d["activation_tensors"] == {"Float": 6, "Int8": 10}  # distinct input/output names
        assert d["layers_by_precision"] == {"int8": 8, "fp32": 4, "none": 1}
        assert d["compute_layers_by_precision"] == {"int8": 6}
        assert d["weights_bytes"] == 8101640 and d["activation_bytes"] == 166547456
        assert not d["other_compute_layers"]
        conv0 = next(x for x in d["int8_compute_layers"] if x["layer"] == "/features/conv0/Conv_myl0_2")
        assert conv0 == {"layer": "/features/conv0/Conv_myl0_2", "type": "correlation", "reads": "int8",
                         "writes": "fp32", "onnx": ["/features/conv0/Conv"]}
        concat = next(la for la in s.layers if "/features/denseblock1/denselayer2/Concat" in la.onnx_layers)
        assert [t.dtype for t in concat.inputs] == ["Int8", "Float"] and [t.dtype for t in concat.outputs] == ["Int8"] * 2
        assert concat.precision == "int8" and concat.kind == "kgen" and not concat.compute


def test_recorded_io_tensors_and_profile():
    """Lines 23-24 of the recorded log, read by eye: the input with its 1/8/32 profile, the 1000-class output."""
    s = summarize_build_log(RECORDED.read_text().splitlines())
    assert s.to_dict()["io_tensors"] == [
        {"name": "input", "mode": "Input", "dtype": "Float", "dimensions": [-1, 3, 224, 224],
         "min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]},
        {"name": "logits", "mode": "Output", "dtype": "Float", "dimensions": [-1, 1000]}]
    assert parse_io_line("Name: /features/conv0/Conv_myl0_2, LayerType: correlation, Inputs: []") is None


def test_no_layer_block_and_a_second_build():
    lines = RECORDED.read_text().splitlines()
    assert summarize_build_log([ln for ln in lines if "Layers:" not in ln]) is None
    assert summarize_build_log(["WARNING: something", "INFO: Total Activation Memory: 5 bytes"]) is None
    one_layer = next(ln for ln in lines if ln.startswith("Name: /classifier/Gemm"))
    twice = lines + ["[INFO] Total Activation Memory: 1000 bytes", "[VERBOSE] Layers:", one_layer, ""]
    s = summarize_build_log(twice)
    assert len(s.layers) == 1 and s.layers[0].kind == "gemm" and s.activation_bytes == 1000
    assert s.weights_bytes == 8101640  # the last value the log gave


def test_layer_line_parsing_details():
    assert parse_layer_line("Name: x, LayerType: kgen") is None  # no sections
    assert parse_layer_line("I/O Tensors:") is None
    line = ("Name: a, b, LayerType: gemm, Inputs: [ { Name: t[0], Dimensions: [-1,4], Strides: [4,1], "
            "StrideOrder: [1,0], Datatype: Half, Format: (Linear) Row major linear format }], Constants: [], "
            "Outputs: [ { Name: u, Dimensions: [-1,2], Strides: [2,1], StrideOrder: [1,0], Datatype: Float, "
            "Format: (Linear) Row major linear format }], TacticName: x, StreamId: 0, "
            "Metadata: [ONNX Layer: fc][ONNX Layer: fc_in_DequantizeLinear]")
    layer = parse_layer_line(line)
    assert layer.name == "a, b" and layer.kind == "gemm" and layer.compute
    assert [t.name for t in layer.inputs] == ["t[0]"] and layer.precision == "fp16" and layer.output_precision == "fp32"
    assert layer.onnx_layers == ("fc", "fc_in_DequantizeLinear") and layer.onnx_ops() == ["fc"]


def test_engine_composition_in_report_md_and_html():
    from runtime.report.engines import engine_entry, engines_html, engines_markdown
    from runtime.report.sections import EnginesSection

    summary = summarize_build_log(RECORDED.read_text().splitlines())
    entry = engine_entry("int8", "tensorrt-rtx", "1.7.1.116", summary.to_dict())
    report = EnginesSection({"int8.rtx.engine": entry})
    md = "\n".join(engines_markdown(report))
    # layers 13; tensors Float 41 / Half 0 / Int8 20; compute 6 INT8; 8101640 and 166547456 bytes,
    # in MiB (/ 2**20): 7.73 and 158.83.
    assert "| int8.rtx.engine | int8 | tensorrt-rtx 1.7.1.116 | 13 | 41 / 0 / 20 | 6 / 0 / 0 | 7.7 | 158.8 |" in md
    assert "not reading INT8" not in md  # every compute layer of the excerpt reads INT8
    page = engines_html(report)
    assert page.startswith('<section id="engines">') and "6 compute layers run INT8, 0 do not" in page
    assert "/features/conv0/Conv" in page
    # A compute layer reading FP32 is named, in both.
    fp32_conv = next(ln for ln in RECORDED.read_text().splitlines() if ln.startswith("Name: /features/conv0/Conv"))
    fp32_conv = fp32_conv.replace("Datatype: Int8", "Datatype: Float")
    other = summarize_build_log(["VERBOSE: Layers:\n" + fp32_conv])
    report.entries["b.engine"] = engine_entry("int8", "tensorrt-rtx", "1.7.1.116", other.to_dict())
    assert "b.engine: compute layers not reading INT8: `/features/conv0/Conv_myl0_2` (correlation, fp32)" in \
        "\n".join(engines_markdown(report))
    assert "0 compute layers run INT8, 1 do not" in engines_html(report)
    assert engines_markdown(None) == [] and engines_html(EnginesSection({})) == ""
