"""Every failure names the next step and the missing part (issue 20, "Next steps"), and the CLI's
lines are in an order that reads: the two report paths together, last.

(--backend tensorrt without TensorRT: tests/runtime/engines/test_trt_cli.py; the missing
onnxruntime-gpu: tests/exporter/test_core.py; option vs parameter wording: test_wording.py.)
"""

from __future__ import annotations

import pytest

from conftest import invoke
from runtime.errors import DependencyError, EdgeportError

TINY = '''
import torch.nn as nn


def build(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))
'''


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """A tiny factory exported with --int8 (and --engine auto: no TensorRT here prints its hint)."""
    root = tmp_path_factory.mktemp("next")
    (root / "tiny.py").write_text(TINY)
    result = invoke("export", "--model", f"{root / 'tiny.py'}:build", "--input-size", "32", "--int8",
                    "--output", str(root / "out"))
    assert result.exit_code in (0, 1), result.output  # an INT8 row of random weights may fail: both print
    return root / "out" / "tiny_build", result


def test_export_prints_both_report_paths_together_last(int8_export):
    bundle, result = int8_export
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [f"report: {bundle / 'report.md'}", f"report: {bundle / 'report.html'}"], lines


def test_failing_int8_row_names_the_next_step(int8_export):
    bundle, _ = int8_export
    result = invoke("verify", str(bundle), "--precision", "int8", "--tol", "int8.cosine_min=1.5")
    assert result.exit_code == 1, result.output
    step = [line for line in result.stdout.splitlines() if line.startswith("next:")]
    assert len(step) == 1, result.stdout
    assert f"`edgeport sensitivity {bundle}`" in step[0]
    assert "--max-drop" in step[0] and "--calib-data" in step[0]


def test_failing_fp32_row_gets_no_int8_hint(int8_export):
    bundle, _ = int8_export
    result = invoke("verify", str(bundle), "--precision", "fp32", "--tol", "fp32.cosine_min=1.5")
    assert result.exit_code == 1, result.output
    assert "edgeport sensitivity" not in result.output


def test_report_html_into_a_new_folder_is_created(int8_export, tmp_path):
    bundle, _ = int8_export
    target = tmp_path / "pages" / "today" / "report.html"
    result = invoke("report", str(bundle), "--html", str(target))
    assert result.exit_code == 0, result.output
    assert target.is_file() and "<html" in target.read_text()[:500].lower()


def test_report_html_under_a_file_is_a_usage_error(int8_export, tmp_path):
    bundle, _ = int8_export
    (tmp_path / "notes.txt").write_text("x")
    result = invoke("report", str(bundle), "--html", str(tmp_path / "notes.txt" / "report.html"))
    assert result.exit_code == 2, result.output
    assert "exists and is not a folder" in result.output and "bug" not in result.output


def test_gpu_provider_that_fell_back_to_cpu_is_refused(int8_export, monkeypatch):
    # ONNX Runtime runs on the CPU, logging a warning, when the CUDA provider cannot start (no GPU
    # visible, CUDA init failed): the numbers would be the CPU's. Simulated by a CPU-only build that
    # lists CUDA, as onnxruntime-gpu does on a machine whose GPU is not visible.
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is here: it may start")
    from runtime.runners.onnxruntime import OnnxRuntimeRunner

    bundle, _ = int8_export
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    with pytest.raises(DependencyError) as err:
        OnnxRuntimeRunner(bundle / "model.onnx", provider="cuda")
    text = err.value.render()
    assert "could not start" in text and "no NVIDIA GPU is visible" in text and "--provider cpu" in text


class _Err(int):
    """A cudaError_t as cuda-python returns it: an int with a name."""

    def __new__(cls, value, name):
        obj = super().__new__(cls, value)
        obj.name = name
        return obj


class _NoDeviceCudart:
    """cuda-python's answer on a machine with the driver and no device (cudaErrorNoDevice = 100)."""

    @staticmethod
    def cudaGetDeviceCount():
        return _Err(100, "cudaErrorNoDevice"), 0


def test_no_visible_gpu_is_named_not_an_install(monkeypatch):
    from runtime.engines import cuda_mem, device

    monkeypatch.setattr(device, "import_cudart", lambda: _NoDeviceCudart)
    monkeypatch.setattr(device, "optional_import", lambda name: None)  # no PyTorch with CUDA either
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(EdgeportError) as err:
        cuda_mem.default_memory()
    text = err.value.render()
    assert "needs an NVIDIA GPU, and CUDA sees none here (cudaGetDeviceCount: cudaErrorNoDevice" in text
    assert "CUDA_VISIBLE_DEVICES=)" in text and "--backend onnxruntime" in text
    assert "pip install" not in text  # installing cuda-python would not help
