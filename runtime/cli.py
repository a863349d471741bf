"""The `edgeport` command group and the runtime commands (no torch, no exporter imports).

Every command parses options into a config, calls one library function and prints a
summary. Errors become one paragraph on stderr and an exit code (see errors.py).
"""

from __future__ import annotations

import functools
import sys
import traceback

import click

from . import console
from .errors import EXIT_CHECK_FAILED, EXIT_ERROR, EdgeportError

PRECISION_CHOICES = ("fp32", "fp16", "int8", "int8-cpu", "all")  # rules: runtime/precision.py


class EdgeportGroup(click.Group):
    """Turns EdgeportError (and anything unexpected) into a message and an exit code."""

    def invoke(self, ctx):
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except EdgeportError as exc:
            if debug or _debug_requested():
                traceback.print_exc()
            click.echo(f"edgeport: error: {exc.render()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgeport: interrupted; nothing half-written was left behind.", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if debug or _debug_requested():
                traceback.print_exc()
            click.echo(
                f"edgeport: error: unexpected {type(exc).__name__}: {exc}. "
                "This is probably a bug in edgeport; rerun with --debug for the traceback and report it.",
                err=True,
            )
            ctx.exit(EXIT_ERROR)


def _debug_requested() -> bool:
    return "--debug" in sys.argv


def common_options(fn):
    """--debug and --quiet on every command (they also work before the command name)."""

    @click.option("--debug", "debug_", is_flag=True, hidden=True, help="Show tracebacks.")
    @click.option("--quiet", "-q", is_flag=True, help="Only print results and errors.")
    @functools.wraps(fn)
    def wrapper(*args, debug_=False, quiet=False, **kwargs):
        if quiet:
            console.set_quiet(True)
        return fn(*args, **kwargs)

    return wrapper


def backend_options(fn):
    """--backend, --provider and --qdq, shared by verify, bench and predict."""
    fn = click.option("--qdq", is_flag=True,
                      help="With --precision int8 on the CPU provider: run the TensorRT-style Q/DQ graph "
                           "(model.int8.onnx) instead of model.int8-cpu.onnx.")(fn)
    fn = click.option("--provider", type=click.Choice(["cpu", "cuda", "tensorrt"]), default="cpu",
                      show_default=True, help="ONNX Runtime execution provider.")(fn)
    fn = click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt", "tensorrt-rtx"]),
                      default="onnxruntime", show_default=True,
                      help="tensorrt / tensorrt-rtx: run the engines `edgeport build` wrote (on the GPU).")(fn)
    return fn


@click.group(cls=EdgeportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("--quiet", "-q", is_flag=True, help="Only print results and errors.")
@click.version_option(package_name="edgeport", prog_name="edgeport")
def cli(debug: bool, quiet: bool):
    """edgeport: PyTorch classifiers to verified ONNX, INT8 and TensorRT engines.

    \b
    On the export host:   edgeport export --model densenet121 --int8
    On the device:        edgeport build | verify | bench | predict  BUNDLE
    """
    console.set_quiet(quiet)


def print_comparisons(results) -> None:
    from .report import SUMMARY_HEADER, render_table, summary_rows

    click.echo(render_table(SUMMARY_HEADER, summary_rows([r.to_dict() for r in results])))


@cli.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--precision", "precisions", multiple=True, type=click.Choice(PRECISION_CHOICES),
              default=("all",), show_default=True,
              help="Artifacts to check (repeatable). On the CPU provider int8 means model.int8-cpu.onnx "
                   "(ONNX Runtime's fast U8S8 graph) when the bundle has it; all checks both INT8 graphs.")
@backend_options
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size (default: min(max batch, 8)).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads.")
@click.option("--tol", "tols", multiple=True, metavar="PRECISION.METRIC=VALUE",
              help="Override a tolerance, e.g. fp16.cosine_min=0.995 (metrics: max_rel_diff, cosine_min, top1_agreement).")
@click.option("--data", type=click.Path(path_type=str), default=None,
              help="Labeled images for top-1/top-5 accuracy: an ImageFolder tree (DIR/<class>/*.jpg) "
                   "or a flat folder with --labels.")
@click.option("--labels", "labels_file", type=click.Path(path_type=str), default=None,
              help="With a flat --data folder: a file of `file,label` lines (label: class name or index).")
@click.option("--data-samples", type=click.IntRange(min=1), default=None,
              help="Use at most this many --data images (spread evenly over the classes).")
@common_options
def verify(bundle, precisions, qdq, backend, provider, batch, threads, tols, data, labels_file, data_samples):
    """Check every artifact of BUNDLE against the PyTorch reference outputs it carries.

    With --data, also measure top-1/top-5 accuracy of every artifact on labeled images
    (the reference is the bundle's FP32 ONNX graph on ONNX Runtime CPU).

    Exit status: 0 all checks pass, 1 an accuracy check failed (reports still written).
    """
    from .bundle import Bundle
    from .compare import parse_tolerances
    from .report import write_reports
    from .verify import VerifyConfig, verify_bundle

    b = Bundle.open(bundle)
    config = VerifyConfig(precisions=tuple(precisions), backend=backend, provider=provider,
                          batch=batch, threads=threads, tolerances=parse_tolerances(tols), qdq=qdq)
    dataset = _labeled_set(b, data, labels_file, data_samples)  # before the long part: fail early
    results = verify_bundle(b, config, log=console.log)
    sections = {}
    if dataset is not None:
        from .labeled import AccuracyConfig, evaluate_accuracy, merge_accuracy
        from .report import load_report

        acc = evaluate_accuracy(b, dataset, AccuracyConfig(precisions=tuple(precisions), backend=backend,
                                                           provider=provider, batch=batch, threads=threads,
                                                           qdq=qdq),
                                log=console.log)
        sections["accuracy"] = merge_accuracy(load_report(b).get("accuracy"), acc)
    write_reports(b, results, sections=sections)
    print_comparisons(results)
    if dataset is not None:
        from .labeled import ACCURACY_HEADER, accuracy_rows
        from .report import render_table

        click.echo(f"\nlabeled accuracy on {acc['samples']} images ({acc['skipped']} unreadable skipped):")
        click.echo(render_table(ACCURACY_HEADER, accuracy_rows(acc)))
    click.echo(f"report: {b.report_path('md')}")
    click.echo(f"report: {b.report_path('html')}")
    if not all(r.passed for r in results):
        sys.exit(EXIT_CHECK_FAILED)


def _labeled_set(bundle, data, labels_file, limit):
    """The --data set of `verify`, or None; option errors surface before any inference."""
    from .errors import UsageError

    if data is None:
        if labels_file is not None or limit is not None:
            raise UsageError("--labels and --data-samples need --data DIR.")
        return None
    from .labeled import load_labeled_set

    model = bundle.manifest.get("model", {})
    num_classes = model.get("num_classes") or bundle.manifest["output"]["shape"][-1]
    return load_labeled_set(data, labels_file, class_names=bundle.class_names, num_classes=int(num_classes),
                            limit=limit)


# Commands that live in their own modules register themselves on `cli` when imported.
# Each module imports only click and runtime at top level (heavy imports inside commands).
_COMMAND_MODULES = ("runtime.cli_report", "runtime.cli_trt", "runtime.cli_lint", "runtime.cli_bench",
                    "runtime.cli_sensitivity")


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name)


_register_commands()


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: cleanup handlers run, nothing half-written stays."""
    import signal

    def _term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _term)
    except ValueError:  # not in the main thread (embedded use)
        pass


def main(argv=None):  # pragma: no cover - thin entry point (runtime-only installs)
    install_signal_handlers()
    cli.main(args=argv, prog_name="edgeport")
