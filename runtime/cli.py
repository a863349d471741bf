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

PRECISION_CHOICES = ("fp32", "fp16", "int8", "all")


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
              default=("all",), show_default=True, help="Artifacts to check (repeatable).")
@click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt"]), default="onnxruntime", show_default=True)
@click.option("--provider", type=click.Choice(["cpu", "cuda", "tensorrt"]), default="cpu", show_default=True,
              help="ONNX Runtime execution provider.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch size (default: min(max batch, 8)).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads.")
@click.option("--tol", "tols", multiple=True, metavar="PRECISION.METRIC=VALUE",
              help="Override a tolerance, e.g. fp16.cosine_min=0.995 (metrics: max_rel_diff, cosine_min, top1_agreement).")
@common_options
def verify(bundle, precisions, backend, provider, batch, threads, tols):
    """Check every artifact of BUNDLE against the PyTorch reference outputs it carries.

    Exit status: 0 all checks pass, 1 an accuracy check failed (reports still written).
    """
    from .bundle import Bundle
    from .compare import parse_tolerances
    from .report import write_reports
    from .verify import VerifyConfig, verify_bundle

    b = Bundle.open(bundle)
    config = VerifyConfig(precisions=tuple(precisions), backend=backend, provider=provider,
                          batch=batch, threads=threads, tolerances=parse_tolerances(tols))
    results = verify_bundle(b, config, log=console.log)
    write_reports(b, results)
    print_comparisons(results)
    click.echo(f"report: {b.report_path('md')}")
    if not all(r.passed for r in results):
        sys.exit(EXIT_CHECK_FAILED)


# Commands that live in their own modules register themselves on `cli` when imported.
# Each module imports only click and runtime at top level (heavy imports inside commands).
_COMMAND_MODULES = ()


def _register_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name)


_register_commands()


def main(argv=None):  # pragma: no cover - thin entry point (runtime-only installs)
    cli.main(args=argv, prog_name="edgeport")
