"""Every option of ``edgeport export`` and ``edgeport.export()``, declared once.

Each field of ``ExportConfig`` (and of ``ModelRequest``, the model half) carries an
``OptionSpec`` in its metadata: its help, its command-line spelling and how the command line
spells its value. ``edgeport export``'s click options are generated from these specs
(edgeport/cli/export.py), ``edgeport.export(model, **options)`` accepts exactly these field
names (exporter.pipeline.make_config), and the pipeline reads the resulting ``ExportConfig``. A new export
option is one field here. No torch, numpy or click: ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime.errors import UsageError
from runtime.precision import PRECISIONS, float_keys

CALIB_METHODS = ("minmax", "entropy", "percentile")
ENGINE_CHOICES = ("auto", "yes", "no")


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How an export option appears on the command line (no flags: Python API only)."""

    help: str
    flags: tuple[str, ...] = ()  # e.g. ("--output", "-o"); the first one names the option in messages
    kind: type = str  # str, int, float, bool or Path: the type of the value on the command line
    low: float | None = None  # inclusive range of an int
    high: float | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    show_default: bool = False
    negate: bool = False  # a bool its flag turns off (--no-verify sets verify=False)
    multiple: bool = False  # the flag may repeat; the values come as a tuple
    cli_value: str | None = None  # how the CLI reads the text first: "input_size", "per_channel", "names_file"


def option(default, help: str, *flags: str, **spec):
    """A dataclass field that is also an export option."""
    return dataclasses.field(default=default, metadata={"option": OptionSpec(help, flags, **spec)})


def specs(cls) -> list[tuple[dataclasses.Field, OptionSpec]]:
    """The option fields of ``cls`` (ExportConfig or ModelRequest), in declaration order."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


_WITH_MAX_DROP = "With --max-drop: "
_INT8 = PRECISIONS["int8"]


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What ``run_export`` does: the model request and every export option."""

    request: "ModelRequest"  # noqa: F821 (exporter.models.registry; not imported: no torch here)
    output: Path = option(Path("exports"), "Parent folder: the bundle is written to OUTPUT/<name>/.",
                          "--output", "-o", kind=Path, show_default=True)
    name: str | None = option(None, "Bundle folder name (default: the model's name).", "--name")
    force: bool = option(False, "Replace OUTPUT/<name> even when it holds a bundle of another model (another "
                                "architecture or class count) or a folder that is not a bundle.", "--force", kind=bool)
    max_batch: int = option(32, "Largest batch the dynamic-batch graph and engines are built for.", "--max-batch",
                            kind=int, low=1, high=4096, show_default=True)
    opset: int | None = option(None, "ONNX opset of the export (default 17; an ONNX --model keeps its own).",
                               "--opset", kind=int, low=7, high=20)
    simplify: bool = option(True, "Skip onnxsim.", "--no-simplify", kind=bool, negate=True)
    fp16: bool = option(False, f"Also write {PRECISIONS['fp16'].artifact} (FP16 graph, FP32 I/O).",
                        PRECISIONS["fp16"].export_flag, kind=bool)
    int8: bool = option(False, f"Also write {_INT8.artifact} (Q/DQ, TensorRT rules), calibrated on --calib-data.",
                        _INT8.export_flag, kind=bool)
    calib_data: Path | None = option(None, "With --int8: folder of images or .npy/.npz of preprocessed tensors "
                                           "(default: the shipped set).", "--calib-data", kind=Path)
    calib_samples: int | None = option(None, "With --int8: calibration samples (default: all, capped at 512).",
                                       "--calib-samples", kind=int, low=1)
    calib_method: str | None = option(None, "With --int8: INT8 range estimation (default: see docs).",
                                      "--calib-method", choices=CALIB_METHODS)
    int8_exclude: tuple[str, ...] = option(
        (), "With --int8: keep out of INT8 (in float) the layer with this node name (e.g. /layer3/conv2/Conv), or "
            "every quantized layer of this op type (e.g. Gemm) or reading this op type's output (Mul: the layers "
            "after an SE block's or SiLU's Sigmoid-gated Mul). Repeatable; `edgeport verify` names the layer to "
            "try when INT8 fails (docs/int8.md).", "--int8-exclude", multiple=True, metavar="NAME_OR_OPTYPE")
    int8_cpu: bool = option(True, "With --int8: skip model.int8-cpu.onnx, ONNX Runtime CPU's U8S8 graph (for "
                                  "TensorRT-only deployments; ONNX Runtime CPU then runs model.int8.onnx, slower "
                                  "than FP32 there).", "--no-int8-cpu", kind=bool, negate=True)
    int8_openvino: bool = option(False, f"With --int8: also write {PRECISIONS['int8-ov'].artifact}, NNCF's INT8 "
                                        "graph for --backend openvino (needs edgeport[openvino]).",
                                 PRECISIONS["int8-ov"].export_flag, kind=bool)
    # --max-drop: INT8 accuracy budget in points; the most sensitive layers leave INT8 until it holds
    # (exporter/int8/mixed_precision.py). --labeled-data: labeled held-out images to judge it on.
    max_drop: float | None = option(None, "With --int8: accuracy budget in percentage points (top-1 agreement "
                                          "loss vs PyTorch FP32 on the held-out golden set, or top-1 drop on "
                                          "--labeled-data). The most sensitive layers leave INT8 until it holds "
                                          "(docs/int8.md).", "--max-drop", kind=float, metavar="POINTS")
    labeled_data: Path | None = option(None, _WITH_MAX_DROP + "labeled held-out images (ImageFolder DIR/<class>/"
                                             "*.jpg) to judge the budget as top-1 accuracy drop.", "--labeled-data",
                                       kind=Path)
    fallback_precision: str | None = option(None, _WITH_MAX_DROP + "precision of the layers kept out of INT8 "
                                                  "(default fp16; TensorRT builds them so).", "--fallback-precision",
                                            choices=float_keys())
    max_float_layers: int | None = option(None, _WITH_MAX_DROP + "at most this many layers may leave INT8 "
                                                "(default: half of them).", "--max-float-layers", kind=int, low=1)
    sensitivity_samples: int = option(32, _WITH_MAX_DROP + "held-out images per per-layer sensitivity run.",
                                      "--sensitivity-samples", kind=int, low=1, show_default=True)
    golden_data: Path | None = option(None, "Folder of images for the golden set, or a .npy/.npz of preprocessed "
                                            "NCHW float tensors (default: the built-in held-out photos).",
                                      "--golden-data", kind=Path)
    golden_samples: int = option(64, "At most this many images from --golden-data.", "--golden-samples", kind=int,
                                 low=1, show_default=True)
    verify: bool = option(True, "Skip the final verification.", "--no-verify", kind=bool, negate=True)
    tolerances: dict | None = option(None, "Override a verification tolerance.", "--tol", multiple=True,
                                     metavar="PRECISION.METRIC=VALUE")
    class_names: tuple[str, ...] | None = option(
        None, "Text file with one class name per line (line N = class N-1), stored in the manifest for `predict` "
              "and labeled accuracy.", "--class-names", kind=Path, metavar="FILE", cli_value="names_file")
    engine: str = option("auto", "Build TensorRT engines right after the export: auto = when TensorRT and a GPU "
                                 "are here (otherwise print the `edgeport build` command for the target), yes = "
                                 "required, no = never.", "--engine", choices=ENGINE_CHOICES, show_default=True)


def check_choices(config: ExportConfig) -> None:
    """Every option with choices holds one of them (the CLI offers the same lists)."""
    for field, spec in specs(type(config)):
        value = getattr(config, field.name)
        if spec.choices is not None and value is not None and value not in spec.choices:
            # Named by its flag alone: edgeport.export() renders it as the parameter (edgeport/wording.py).
            raise UsageError(f"{spec.flags[0]} must be one of {', '.join(spec.choices)}, "
                             f"got {value!r}.")
