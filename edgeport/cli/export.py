"""``edgeport export`` and ``edgeport models``: the two commands that need the export side (torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeport.cli.options import AliasOption, common_options, comparisons_table, json_option, out, out_json
from edgeport.cli.options import trusted_key_option


def _per_channel(ctx, param, value):
    """--mean/--std: one number per channel (0.485,0.456,0.406), or one for every channel (0.5)."""
    if value is None:
        return None
    parts = [p for p in value.replace(",", " ").split() if p]
    try:
        floats = tuple(float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"expected numbers like 0.485,0.456,0.406 (one per channel) or 0.5, "
                                 f"got '{value}'") from None
    if not floats:
        raise click.BadParameter("expected at least one number")
    return floats


def _input_size(ctx, param, value):
    """--input-size N (square) or HxW (height x width)."""
    if value is None:
        return None
    from runtime.errors import UsageError
    from runtime.preprocess import input_hw

    try:
        h, w = input_hw(value)
    except UsageError:
        raise click.BadParameter(f"expected N or HxW (e.g. 224 or 224x160), got '{value}'") from None
    if min(h, w) < 8 or max(h, w) > 4096:
        raise click.BadParameter(f"each side must be 8..4096 pixels, got {h}x{w}")
    return h if h == w else (h, w)


@click.command()
@click.option("--model", "-m", required=True, metavar="NAME|FILE.py:FACTORY|MODULE:FACTORY|FILE.onnx",
              help="A registry name (see `edgeport models`), a factory returning an nn.Module, or an ONNX file "
                   "(exported without PyTorch; the reference is ONNX Runtime FP32 of that graph).")
@click.option("--factory-arg", "factory_args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for a FILE.py:FACTORY (repeatable); VALUE is a Python literal (64, 0.5, True, "
                   "[1, 2]) or else a string. Recorded in the manifest.")
@click.option("--weights", "-w", default=None,
              help="DEFAULT, a torchvision weights name (IMAGENET1K_V2), none (random init), a checkpoint PATH, "
                   "or auto (DEFAULT if already cached in TORCH_HOME, else random init; never downloads). "
                   "Default: DEFAULT for torchvision models, none for seed and user models.")
@click.option("--trust-checkpoint", is_flag=True,
              help="UNSAFE: allow checkpoints that need full unpickling (can execute code). Only for files you trust.")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Classes of the model's head.")
@click.option("--input-size", callback=_input_size, default=None, metavar="N|HxW",
              help="Input size: N (square) or HxW, height x width, e.g. 224x160 (default: the model's own, e.g. 224).")
@click.option("--channels", type=click.IntRange(min=1), default=None,
              help="Input channels, when the model's first nn.Conv2d does not tell them (default: read from it; "
                   "1 = grayscale images, 3 = RGB).")
@click.option("--mean", callback=_per_channel, default=None,
              help="Normalization mean: one value per channel, or one for all (default: ImageNet's for 3 channels).")
@click.option("--std", callback=_per_channel, default=None,
              help="Normalization std: one value per channel, or one for all (default: ImageNet's for 3 channels).")
@click.option("--output-name", default=None, metavar="NAME",
              help="A model with several outputs: the classifier output, by name (default: the first output).")
@click.option("--output-index", type=click.IntRange(min=0), default=None, metavar="I",
              help="A model with several outputs: the classifier output, by position (0 = first).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("exports"), show_default=True,
              help="Parent folder: the bundle is written to OUTPUT/<name>/.")
@click.option("--name", default=None, help="Bundle folder name (default: the model's name).")
@click.option("--force", is_flag=True,
              help="Replace OUTPUT/<name> even when it holds a bundle of another model (another architecture or "
                   "class count) or a folder that is not a bundle.")
@click.option("--max-batch", type=click.IntRange(min=1, max=4096), default=32, show_default=True,
              help="Largest batch the dynamic-batch graph and engines are built for.")
@click.option("--opset", type=click.IntRange(min=7, max=20), default=None,
              help="ONNX opset of the export (default 17; an ONNX --model keeps its own).")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--fp16", is_flag=True, help="Also write model.fp16.onnx (FP16 graph, FP32 I/O).")
@click.option("--int8", is_flag=True, help="Also write model.int8.onnx (Q/DQ, TensorRT rules), calibrated on --calib-data.")
@click.option("--calib-data", type=click.Path(path_type=Path), default=None,
              help="With --int8: folder of images or .npy/.npz of preprocessed tensors (default: the shipped set).")
@click.option("--calib-samples", type=click.IntRange(min=1), default=None,
              help="With --int8: calibration samples (default: all, capped at 512).")
@click.option("--calib-method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None,
              help="With --int8: INT8 range estimation (default: see docs).")
@click.option("--no-int8-cpu", is_flag=True,
              help="With --int8: skip model.int8-cpu.onnx, ONNX Runtime CPU's U8S8 graph (for TensorRT-only "
                   "deployments; ONNX Runtime CPU then runs model.int8.onnx, slower than FP32 there).")
@click.option("--int8-openvino", is_flag=True,
              help="With --int8: also write model.int8-ov.onnx, NNCF's INT8 graph for --backend openvino "
                   "(needs edgeport[openvino]).")
@click.option("--max-drop", type=float, default=None, metavar="POINTS",
              help="With --int8: accuracy budget in percentage points (top-1 agreement loss vs PyTorch FP32 on the "
                   "held-out golden set, or top-1 drop on --labeled-data). The most sensitive layers leave INT8 "
                   "until it holds (docs/int8.md).")
@click.option("--labeled-data", "--budget-data", "budget_data", cls=AliasOption, aliases=("--budget-data",),
              type=click.Path(path_type=Path), default=None,
              help="With --max-drop: labeled held-out images (ImageFolder DIR/<class>/*.jpg) to judge the budget "
                   "as top-1 accuracy drop.")
@click.option("--fallback-precision", type=click.Choice(["fp16", "fp32"]), default=None,
              help="With --max-drop: precision of the layers kept out of INT8 (default fp16; TensorRT builds them so).")
@click.option("--max-float-layers", type=click.IntRange(min=1), default=None,
              help="With --max-drop: at most this many layers may leave INT8 (default: half of them).")
@click.option("--sensitivity-samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="With --max-drop: held-out images per per-layer sensitivity run.")
@click.option("--golden-data", "--verify-data", "verify_data", cls=AliasOption, aliases=("--verify-data",),
              type=click.Path(path_type=Path), default=None,
              help="Folder of images for the golden set, or a .npy/.npz of preprocessed NCHW float tensors "
                   "(default: the built-in held-out photos).")
@click.option("--golden-samples", "--verify-samples", "verify_samples", cls=AliasOption, aliases=("--verify-samples",),
              type=click.IntRange(min=1), default=64, show_default=True,
              help="At most this many images from --golden-data.")
@click.option("--no-verify", is_flag=True, help="Skip the final verification.")
@click.option("--tol", "tols", multiple=True, metavar="PRECISION.METRIC=VALUE", help="Override a verification tolerance.")
@click.option("--class-names", "class_names_file", type=click.Path(path_type=Path), default=None,
              help="Text file with one class name per line (line N = class N-1), stored in the manifest "
                   "for `predict` and labeled accuracy.")
@click.option("--engine", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Build TensorRT engines right after the export: auto = when TensorRT and a GPU are here "
                   "(otherwise print the `edgeport build` command for the target), yes = required, no = never.")
@json_option
@trusted_key_option
@common_options
def export(model, factory_args, weights, trust_checkpoint, num_classes, input_size, channels, mean, std, output_name,
           output_index, output, name, max_batch, opset, no_simplify, fp16, int8, calib_data, calib_samples,
           calib_method, verify_data, verify_samples, no_verify, tols, class_names_file, engine, max_drop, budget_data,
           fallback_precision, max_float_layers, sensitivity_samples, no_int8_cpu, int8_openvino, force, as_json):
    """Export a model to a verified bundle: ONNX (+FP16, +INT8) and its reference outputs."""
    from runtime.errors import EXIT_CHECK_FAILED
    from runtime.labeled import read_class_names

    from exporter.models.factories import parse_factory_args

    from edgeport.api import export as run_export

    class_names = read_class_names(class_names_file) if class_names_file else None
    result = run_export(
        model, output=output, name=name, weights=weights, num_classes=num_classes, input_size=input_size,
        channels=channels, mean=mean, std=std, factory_args=parse_factory_args(factory_args) or None,
        output_name=output_name, output_index=output_index, class_names=class_names, max_batch=max_batch, opset=opset,
        simplify=not no_simplify, fp16=fp16, int8=int8, calib_data=calib_data, calib_samples=calib_samples, calib_method=calib_method, max_drop=max_drop,
        budget_data=budget_data, fallback_precision=fallback_precision, max_float_layers=max_float_layers,
        sensitivity_samples=sensitivity_samples, verify=not no_verify, verify_data=verify_data,
        verify_samples=verify_samples, tolerances=tols, engine=engine, trust_checkpoint=trust_checkpoint,
        int8_cpu=not no_int8_cpu, int8_openvino=int8_openvino, force=force)
    if as_json:
        out_json({"bundle": result.bundle, "passed": result.passed,
                  "results": [c.to_dict() for c in result.comparisons], "timings_s": result.timings,
                  "engines": [{"precision": e.precision, "path": e.path} for e in result.engines],
                  "engine_hint": result.engine_hint})
    else:
        if result.comparisons:
            out(comparisons_table(result.comparisons))
        out(f"bundle: {result.bundle}")
        if result.comparisons:
            out(f"report: {result.bundle / 'report.md'}")
        for built in result.engines:
            out(f"engine: {built.path}")
        if result.engine_hint:
            out(result.engine_hint)
        if result.comparisons:
            # Last line on purpose: `make demo` ends by saying where the page to open is.
            out(f"report: {result.bundle / 'report.html'}")
    if not result.passed:
        sys.exit(EXIT_CHECK_FAILED)


@click.command()
@json_option
@common_options
def models(as_json):
    """List the built-in models: parameters, GMACs, input size and weights."""
    from exporter.models.registry import list_models  # a precomputed table: no torch import

    rows = list_models()
    if as_json:
        out_json(rows)
        return
    out(f"{'model':<18} {'params':>9} {'GMACs':>7} {'input':>9}  weights")
    for r in rows:
        size = f"{r['resize']}/{r['input_size']}"
        out(f"{r['name']:<18} {r['params_m']:>8.2f}M {r['gmacs']:>7.3f} {size:>9}  {', '.join(r['weights'])}")
    out("\ninput = resize/crop of the default weights. Your own model: --model path/to/file.py:factory "
        "(or package.module:factory, with --factory-arg KEY=VALUE) or --model path/to/model.onnx, with "
        "--num-classes, --input-size N|HxW, --channels, --mean/--std.")
