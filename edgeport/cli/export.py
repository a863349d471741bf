"""``edgeport export`` and ``edgeport models``: the two commands that need the export side (torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgeport.cli.options import common_options, comparisons_table, json_option, out, out_envelope
from edgeport.cli.options import trusted_key_option


def _per_channel(value):
    """--mean/--std: one number per channel (0.485,0.456,0.406), or one for every channel (0.5)."""
    parts = [p for p in value.replace(",", " ").split() if p]
    try:
        floats = tuple(float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"expected numbers like 0.485,0.456,0.406 (one per channel) or 0.5, "
                                 f"got '{value}'") from None
    if not floats:
        raise click.BadParameter("expected at least one number")
    return floats


def _input_size(value):
    """--input-size N (square) or HxW (height x width)."""
    from runtime.errors import UsageError
    from runtime.preprocess import input_hw

    try:
        h, w = input_hw(value)
    except UsageError:
        raise click.BadParameter(f"expected N or HxW (e.g. 224 or 224x160), got '{value}'") from None
    if min(h, w) < 8 or max(h, w) > 4096:
        raise click.BadParameter(f"each side must be 8..4096 pixels, got {h}x{w}")
    return h if h == w else (h, w)


_CLI_VALUES = {"per_channel": _per_channel, "input_size": _input_size}  # read at parse time (exit 2)


def _click_option(field, spec):
    """The click option of one declared export option (exporter/options.py)."""
    kwargs = {"help": spec.help, "show_default": spec.show_default, "metavar": spec.metavar}
    if spec.kind is bool:
        kwargs.update(is_flag=True, flag_value=not spec.negate, default=field.default)
    elif spec.multiple:
        kwargs.update(multiple=True)
    else:
        kwargs["default"] = field.default
        if spec.choices is not None:
            kwargs["type"] = click.Choice(spec.choices)
        elif spec.kind is int:
            kwargs["type"] = click.IntRange(min=spec.low, max=spec.high)
        elif spec.kind is Path:
            kwargs["type"] = click.Path(path_type=Path)
        elif spec.kind is float:
            kwargs["type"] = float
    if spec.cli_value in _CLI_VALUES:
        parse = _CLI_VALUES[spec.cli_value]
        kwargs["callback"] = lambda ctx, param, value: None if value is None else parse(value)
    if spec.kind is bool and spec.negate:
        kwargs.pop("show_default")
    return click.option(*spec.flags, field.name, **kwargs)


def export_options(fn):
    """Every declared export option with a flag, in declaration order (model first, then the export)."""
    from exporter.models.registry import ModelRequest
    from exporter.options import ExportConfig, specs

    declared = [(f, s) for cls in (ModelRequest, ExportConfig) for f, s in specs(cls) if s.flags]
    for field, spec in reversed(declared):
        fn = _click_option(field, spec)(fn)
    return fn


@click.command()
@click.option("--model", "-m", required=True, metavar="NAME|FILE.py:FACTORY|MODULE:FACTORY|FILE.onnx",
              help="A registry name (see `edgeport models`), a factory returning an nn.Module, or an ONNX file "
                   "(exported without PyTorch; the reference is ONNX Runtime FP32 of that graph).")
@export_options
@json_option
@trusted_key_option
@common_options
def export(model, as_json, **options):
    """Export a model to a verified bundle: ONNX (+FP16, +INT8) and its reference outputs."""
    from runtime.labeled import read_class_names

    from edgeport.api import export as run_export

    if options["class_names"] is not None:  # --class-names FILE: the API takes the names
        options["class_names"] = read_class_names(options["class_names"])
    result = run_export(model, **options)
    if as_json:
        out_envelope({"passed": result.passed, "results": [c.to_dict() for c in result.comparisons],
                      "timings_s": result.timings,
                      "engines": [{"precision": e.precision, "path": str(e.path)} for e in result.engines],
                      "engine_hint": result.engine_hint,
                      "int8_diagnosis": {p: d.to_dict() for p, d in result.int8_diagnosis().items()}},
                     bundle=result.bundle, exit_code=_exit_code(result))
        return _exit(result)
    _print_result(result)
    return _exit(result)


def _print_result(result) -> None:
    from edgeport.cli.options import int8_next_step

    if result.comparisons:
        out(comparisons_table(result.comparisons))
        step = int8_next_step(result.comparisons, result.bundle)
        if step:
            out(step)
    out(f"bundle: {result.bundle}")
    for built in result.engines:
        out(f"engine: {built.path}")
    if result.engine_hint:
        out(result.engine_hint)
    if result.comparisons:
        # The two report paths together, last on purpose: `make demo` ends by saying where the page to open is.
        out(f"report: {result.bundle / 'report.md'}")
        out(f"report: {result.bundle / 'report.html'}")


def _exit_code(result) -> int:
    from runtime.errors import EXIT_CHECK_FAILED

    return 0 if result.passed else EXIT_CHECK_FAILED


def _exit(result) -> None:
    if not result.passed:
        sys.exit(_exit_code(result))


def _model_row(row: dict) -> dict:
    """A `models` row for machines: weight names without the display suffix, the default apart."""
    names = [w.removesuffix(" (DEFAULT)") for w in row["weights"]]
    default = next((n for n, w in zip(names, row["weights"]) if w.endswith(" (DEFAULT)")), None)
    return {**row, "weights": names, "default_weights": default}


@click.command()
@json_option
@common_options
def models(as_json):
    """List the built-in models: parameters, GMACs, input size and weights."""
    from exporter.models.registry import list_models  # a precomputed table: no torch import

    rows = list_models()
    if as_json:
        out_envelope({"models": [_model_row(r) for r in rows]})
        return
    out(f"{'model':<18} {'params':>9} {'GMACs':>7} {'input':>9}  weights")
    for r in rows:
        size = f"{r['resize']}/{r['input_size']}"
        out(f"{r['name']:<18} {r['params_m']:>8.2f}M {r['gmacs']:>7.3f} {size:>9}  {', '.join(r['weights'])}")
    out("\ninput = resize/crop of the default weights. Your own model: --model path/to/file.py:factory "
        "(or package.module:factory, with --factory-arg KEY=VALUE) or --model path/to/model.onnx, with "
        "--num-classes, --input-size N|HxW, --channels, --mean/--std.")
