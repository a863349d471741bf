"""The OpenVINO INT8 artifact: ``model.int8-ov.onnx`` (``export --int8 --int8-openvino``).

model.int8-cpu.onnx is built for ONNX Runtime's CPU kernels: every tensor uint8, and
DenseNet's pre-activation BatchNorms rewritten as depthwise convolutions so that whole dense
blocks stay int8. OpenVINO reads that graph correctly but slowly (densenet121: 1.4x the CPU
time of OpenVINO's own INT8, measured with one thread; the all-uint8 concatenations and
the depthwise convolutions are what its CPU plugin handles worst). OpenVINO's own
post-training quantization (NNCF, ``nncf.quantize``) places Q/DQ only at the inputs of the
layers its CPU plugin runs in int8 and leaves the BatchNorm/Concat paths in its float
precision. NNCF quantizes ONNX models too: this artifact is NNCF's Q/DQ ONNX graph,
calibrated on the same calibration set as the other INT8 artifacts (the same samples, one
per call), so ``--backend openvino`` runs exactly what an OpenVINO user would deploy, from
the bundle, signed and verified like every artifact. ONNX Runtime runs it too (the export
verifies it there, and tests/exporter/test_int8_agreement.py checks both runtimes and ONNX's
reference evaluator agree on it).

Needs ``edgeport[openvino]`` (nncf) at export time only; the runtime needs openvino, or ONNX
Runtime, to run it.
"""

from __future__ import annotations

import time

from runtime import console
from runtime.errors import EdgeportError, require

INT8_OV_FILE = "model.int8-ov.onnx"


def quantize_openvino(model, calib, input_name: str):
    """FP32 ModelProto -> NNCF's INT8 Q/DQ ModelProto, calibrated on every sample of ``calib``."""
    require("nncf", purpose="export --int8-openvino (NNCF post-training quantization)",
            install="pip install 'edgeport[openvino]'")
    import nncf

    samples = calib.inputs()
    dataset = nncf.Dataset([{input_name: samples[i:i + 1]} for i in range(len(samples))])
    try:
        return nncf.quantize(model, dataset, subset_size=len(samples))
    except Exception as exc:  # noqa: BLE001 - NNCF raises many types
        raise EdgeportError(f"NNCF could not quantize the model for OpenVINO: {type(exc).__name__}: {str(exc)[:400]}",
                            hint="Export without --int8-openvino, or report the model; rerun with --debug for the "
                                 "traceback.") from exc


def add_int8_openvino(staged, manifest, model, built, config):
    """Write model.int8-ov.onnx; returns its FileEntry."""
    from exporter.bundle_writer import guard_disk
    from exporter.int8.cpu_int8 import calibration_loader
    from exporter.onnx_export import save

    calib = calibration_loader(built, manifest, config)()
    console.log(f"int8-ov: NNCF post-training quantization for OpenVINO on the calibration set ({len(calib)} samples)")
    t0 = time.perf_counter()
    qmodel = quantize_openvino(model, calib, manifest.input.name)
    console.log(f"int8-ov: quantized in {time.perf_counter() - t0:.1f} s")
    with guard_disk(staged.staging):
        save(qmodel, staged.path(INT8_OV_FILE))
    return staged.entry(INT8_OV_FILE)
