"""report.html at 1280 px in headless Chromium, and report.md, read as people read them: numbers
formatted (ms without exponents, GMACs to 3 digits, MiB named), labels in words, badges for every
verdict, a note where a plot pins values. The report is hand-written here, so every expected
string comes from its numbers (a p50 of 1982.029 ms must read "1,982 ms"), not from the formatter."""

from __future__ import annotations

import copy
import json
import re
import subprocess

import numpy as np
import pytest

from test_report_document import REPORT, _latency, _result
from test_report_html import chromium_args, tree


def _report() -> dict:
    data = copy.deepcopy(REPORT)
    fp32 = _result("fp32")
    fp32["per_sample_max_abs"] = [0.0, 0.0, 0.0, 0.002]  # FP32 is exact on 3 images: pinned on a log axis
    fp32["per_sample_cosine"] = [1.0, 1.0, 1.0, 0.9999]
    fp32["samples"] = 4
    int8 = _result("int8", failures=["further output aux_logits failed"])
    int8.update(samples=4, per_sample_max_abs=[0.01, 0.02, 0.03, 0.05], per_sample_cosine=[0.999, 0.998, 0.999, 0.997],
                top1_changed=[1], top1_changed_to=[2],
                tolerance={"max_rel_diff": 0.05, "cosine_min": 0.99, "top1_agreement": None})
    int8["outputs"] = [
        {"name": "aux_logits", "shape": ["batch", 4], "max_abs_diff": 0.5, "mean_abs_diff": 0.1, "max_rel_diff": 0.2,
         "cosine_min": 0.9, "cosine_mean": 0.95, "nonfinite": 0, "failures": ["cosine min 0.9 < 0.99"]},
        {"name": "embedding", "shape": ["batch", 16], "max_abs_diff": 0.01, "mean_abs_diff": 0.001,
         "max_rel_diff": 0.01, "cosine_min": 0.999, "cosine_mean": 0.9995, "nonfinite": 0, "failures": []}]
    data["results"] = [fp32, int8]
    data["golden_names"] = ["a.png", "b.png", "c.png", "d.png"]
    bench = [dict(_latency("fp32"), batch=8, p50_ms=1982.029, p90_ms=2104.5, p99_ms=2299.9, throughput_ips=4.04),
             dict(_latency("fp32"), batch=1, p50_ms=192.4, p90_ms=201.0, p99_ms=230.0, throughput_ips=5.2),
             dict(_latency("int8"), batch=1, p50_ms=6.912, p90_ms=7.5, p99_ms=9.1, throughput_ips=144.7),
             dict(_latency("int8"), batch=4, p50_ms=0.4213, p90_ms=0.5, p99_ms=0.61, throughput_ips=9494.2)]
    data["benchmarks"] = {"machine": {"cpu": "X", "arch": "x86_64", "usable_cores": 2}, "results": bench}
    data["lint"] = {"int8": {"file": "model.int8.onnx", "passed": True, "errors": 0, "warnings": 0,
                             "summary": "clean (212 Q/DQ nodes; 53 layers INT8, 1 float)", "qdq_nodes": 212,
                             "violations": {}, "int8_layers": {"Conv": 52, "Gemm": 1},
                             "float_layers": {}}}
    data["mixed_precision"] = {"budget_points": 1.0, "metric": "top-1", "data": "val", "drop_points": 0.4,
                               "full_int8_drop_points": 2.1, "layers_out_of_int8": 1, "quantized_layers": 54,
                               "int8_macs_share": 0.99973,
                               "kept_float": [{"layer": "/fc/Gemm", "op_type": "Gemm", "precision": "fp32",
                                               "reason": "most sensitive"}]}
    data["engines"] = {"model.int8.engine": {"precision": "int8", "runtime": "tensorrt-rtx", "version": "1.0",
                                             "composition": {"layers": 60, "weights_bytes": 25 * 2 ** 20,
                                                             "activation_bytes": 3 * 2 ** 20}}}
    del data["sensitivity"], data["accuracy"], data["future_section"]
    return data


def _manifest():
    from runtime.manifest import Manifest

    return Manifest.from_dict({
        "model": {"name": "resnet_like", "architecture": "resnet50", "params": 25_557_032, "gmacs": 14.8866,
                  "num_classes": 5, "class_names": ["tabby cat", "tiger cat", "Egyptian cat", "lynx", "cougar"]},
        "input": {"name": "input", "shape": ["batch", 3, 256, 256], "min_batch": 1, "max_batch": 8},
        "outputs": [{"name": "logits", "shape": ["batch", 5]}], "preprocessing": {},
        "artifacts": {"fp32": {"file": "model.onnx", "bytes": 102_236_160},
                      "int8": {"file": "model.int8.onnx", "bytes": 26_214_400}}})


def _golden():
    rng = np.random.default_rng(0)
    return {"images": rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8),
            "outputs": rng.normal(size=(4, 5)).astype(np.float32),
            "names": ["a.png", "ILSVRC2012_val_00000293_with_a_long_name.JPEG", "c.png", "d.png"],
            "class_names": _manifest().model.class_names}


def _render():
    from runtime.report.document import Report
    from runtime.report.html import render_html
    from runtime.report.markdown import render_markdown

    report = Report.from_dict(_report())
    return render_html(report, _manifest(), _golden()), render_markdown(report, _manifest())


RAW_KEYS = ["int8_layers", "qdq_nodes", "float_layers", "(none)", "cosine_min", "max_rel_diff", "int8_macs_share",
            "budget_points", "layers_out_of_int8", "batchx3x256x256"]
# Layout facts and the rendered text, injected into a copy of the page (the page itself has no scripts).
READ = """<script>
const out = {text: document.body.innerText, svgText: [], labels: [], badges: [], brokenWords: []};
document.querySelectorAll('svg.plot text').forEach(t => out.svgText.push(t.textContent));
document.querySelectorAll('th, dt, h2, h3, footer').forEach(e => out.labels.push(e.innerText));
document.querySelectorAll('#outputs-table tbody tr').forEach(tr => {
  const b = tr.lastElementChild.querySelector('.badge');
  out.badges.push(b ? [b.className, b.textContent, getComputedStyle(b).backgroundColor] : null); });
// A word of a caption or a table cell laid out on two lines is a word broken in the middle (long
// names, the image name and td.long, may break anywhere).
document.querySelectorAll('figcaption, td').forEach(fc => {
  const walk = document.createTreeWalker(fc, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (n.parentElement.closest('.name, td.long')) continue;
    for (const m of n.textContent.matchAll(/\\S+/g)) {
      const r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
      const tops = new Set([...r.getClientRects()].map(c => Math.round(c.top)));
      if (tops.size > 1) out.brokenWords.push(m[0]);
    } } });
const pre = document.createElement('pre'); pre.id = 'read'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


@pytest.fixture(scope="module")
def rendered():
    return _render()


def test_report_html_reads_cleanly_at_1280px_in_headless_chromium(chromium, rendered, tmp_path):
    page, _ = rendered
    probe = tmp_path / "report.html"
    probe.write_text(page.replace("</body>", READ + "</body>"))
    args = chromium_args(chromium, tmp_path / "profile")
    run = subprocess.run([*args, "--window-size=1280,900", "--dump-dom", probe.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(tree(run.stdout).find_id("read").text())
    text, svg = seen["text"], " | ".join(seen["svgText"])
    # Latency: the chart's value labels and the table in milliseconds, never an exponent.
    for label in ("1,982 ms", "192 ms", "6.9 ms", "0.42 ms"):
        assert label in svg, label
    assert not re.search(r"\de[+-]?\d+ ms", svg + text)
    assert "192 ms (batch 1)" in text and "6.9 ms (batch 1)" in text  # the summary: each artifact's smallest batch
    assert "1,982" in text and "1982.029" not in text
    # Model facts: 3 significant digits, the batch axis in words, sizes in MiB.
    assert "14.9 GMACs" in text and "14.8866" not in text
    assert "input N \u00d7 3 \u00d7 256 \u00d7 256 (N: batch 1-8)" in text
    assert "model.onnx (97.5 MiB)" in text and "model.int8.onnx (25.0 MiB)" in text
    assert "weights (MiB)" in text and not re.search(r"\bMB\b", text)
    # Words, not report.json keys; the tolerance footer and every label without snake_case.
    assert not [k for k in RAW_KEYS if k in text], [k for k in RAW_KEYS if k in text]
    assert "Q/DQ nodes" in text and "INT8 layers" in text and "Conv 52, Gemm 1" in text
    assert "int8 onnxruntime/cpu: max rel diff \u2264 0.05, cosine min \u2265 0.99" in text
    assert [lab for lab in seen["labels"] if re.search(r"[a-z]_[a-z]", lab)] == []
    assert "99.97%" in text and "100.0%" not in text.split("INT8 accuracy budget")[1]
    assert "runtime default" in text
    # Further outputs: verdicts as badges, coloured like the summary's.
    assert [b[:2] for b in seen["badges"]] == [["badge fail", "FAIL"], ["badge pass", "PASS"]]
    assert seen["badges"][0][2] != seen["badges"][1][2] != "rgba(0, 0, 0, 0)"
    # The max-abs plot's note: FP32 was exactly 0 on 3 of the 8 plotted values.
    assert "3 of 8 values of the max |logit difference| plot are below 1e-12 (exactly 0 for 3)" in text
    assert seen["brokenWords"] == []  # "1.000000" and "model.int8.onnx" stay whole in the summary


def test_report_html_screenshot_at_1280px(chromium, rendered, tmp_path):
    """The page as drawn: 1280 px wide, and the note, the badges and the plots are on screen."""
    page, _ = rendered
    (tmp_path / "report.html").write_text(page)
    shot = tmp_path / "report.png"
    args = chromium_args(chromium, tmp_path / "profile")
    run = subprocess.run([*args, f"--screenshot={shot}", "--window-size=1280,3000", (tmp_path / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        rgb = img.convert("RGB")
    assert rgb.size == (1280, 3000)
    present = {c for _, c in rgb.getcolors(maxcolors=1 << 22)}
    # The badges' pass green and fail red backgrounds, and the note's yellow (report.html's CSS).
    assert {(0xDC, 0xF3, 0xE3), (0xF9, 0xD7, 0xD7), (0xFF, 0xF8, 0xE1)} <= present


def test_report_md_has_the_same_numbers_and_words(rendered):
    _, text = rendered
    assert "| fp32 | onnxruntime/cpu | 8 | runtime default | 1,982 | 2,104 | 2,300 | 4.04 |" in text
    assert "| int8 | onnxruntime/cpu | 4 | runtime default | 0.42 | 0.5 | 0.61 | 9,494 |" in text
    assert "1982.029" not in text and "| - |" not in text
    assert "14.9 GMACs" in text and "input N \u00d7 3 \u00d7 256 \u00d7 256 (N: batch 1-8)" in text
    assert "99.97% of MACs in INT8" in text
    assert "int8 onnxruntime/cpu: max rel diff \u2264 0.05, cosine min \u2265 0.99" in text
    assert "weights (MiB)" in text and "| 25.0 | 3.0 |" in text
    assert not [k for k in RAW_KEYS if k in text]
    assert "### Further outputs" in text and "| FAIL |" in text and "| PASS |" in text


def test_strip_plot_handles_zero_and_nonfinite_values():
    from runtime.report.html import strip_plot

    svg = strip_plot("p", "t", [{"label": "fp32", "color": "#000", "values": [0.0, 1e-7, float("nan")],
                                 "threshold": 1e-5}], "x")
    assert svg.count("<circle") == 2  # zero drawn at the floor (the page's note counts it), NaN as a red cross
    assert ">x</text>" in svg
