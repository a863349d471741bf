"""The ``edgeport`` command line: a thin layer over the Python API (edgeport/api.py).

Each command parses options, calls one API function and prints. Errors become one
paragraph on stderr and an exit code (runtime/errors.py): 0 ok, 1 the work ran and a check
failed (results written), 2 what the user typed (checked before heavy work), 3 a failure while
working. With --json, stdout carries one envelope (edgeport/cli/options.py), errors included.
Command modules import only click at top level; the export side (torch) is imported by ``export`` and ``models`` alone, so the device commands run on an install
without torch and never import the ``exporter`` package.
"""

from __future__ import annotations

import sys
import traceback

import click

from runtime.errors import EXIT_ERROR, EdgeportError


class EdgeportGroup(click.Group):
    """Turns EdgeportError (and anything unexpected) into a message and an exit code."""

    def list_commands(self, ctx):
        return list(self.commands)  # the command table's order: export first, tools last

    def parse_args(self, ctx, args):
        # The command's raw arguments: an error before (or while) its options are parsed still
        # knows whether --json was asked for, and answers in JSON on stdout.
        ctx.meta[_RAW_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        from edgeport.wording import cli_speaking

        debug = bool(ctx.params.get("debug"))
        try:
            with cli_speaking():  # the API functions keep the options' spelling for the CLI
                return super().invoke(ctx)
        except click.UsageError as exc:
            # Option errors read like every other error: one paragraph, exit 2.
            where = exc.ctx.command_path if exc.ctx is not None else "edgeport"
            message = _paragraph(exc.format_message())
            click.echo(f"edgeport: error: {message} See `{where} --help`.", err=True)
            _json_error(ctx, exc.exit_code, message, f"See `{where} --help`.")
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except EdgeportError as exc:
            if debug or _debug_requested():
                traceback.print_exc()
            click.echo(f"edgeport: error: {_paragraph(exc.render())}", err=True)
            _json_error(ctx, exc.exit_code, _paragraph(str(exc)), _paragraph(exc.hint) if exc.hint else None)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            from runtime import interrupts

            click.echo(f"edgeport: {interrupts.message()}", err=True)
            ctx.exit(interrupts.exit_code())
        except BrokenPipeError:
            from edgeport.cli.options import drop_stdout

            drop_stdout()  # stdout closed early (`| head`): the work is done, end quietly
            ctx.exit(0)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if debug or _debug_requested():
                traceback.print_exc()
            hint = "This is probably a bug in edgeport; rerun with --debug for the traceback and report it."
            click.echo(f"edgeport: error: unexpected {type(exc).__name__}: {exc}. {hint}", err=True)
            _json_error(ctx, EXIT_ERROR, f"unexpected {type(exc).__name__}: {exc}", hint)
            ctx.exit(EXIT_ERROR)


_RAW_ARGS = "edgeport.raw_args"


def _json_error(ctx, exit_code: int, message: str, hint: str | None) -> None:
    """With --json, the error also goes to stdout in the envelope every command's output has."""
    if "--json" not in ctx.meta.get(_RAW_ARGS, ()):
        return
    from edgeport.cli.options import envelope, out_json

    out_json(envelope(ctx.invoked_subcommand, exit_code=exit_code,
                      error={"message": message, "hint": hint}))


def _paragraph(text: str) -> str:
    """One paragraph: line breaks inside the message (from exceptions) become spaces, and the
    terminal controls a bundle's text may carry are dropped (runtime.console.printable)."""
    from runtime.console import printable

    return " ".join(printable(text).split())


def _debug_requested() -> bool:
    return "--debug" in sys.argv


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
    from runtime import console

    console.install_cli_handler(quiet)


def _register() -> None:
    """The command table: every command, in the order --help lists them."""
    from edgeport.cli.bench import bench
    from edgeport.cli.build import build
    from edgeport.cli.export import export, models
    from edgeport.cli.lint import lint
    from edgeport.cli.report import predict, report
    from edgeport.cli.sensitivity import sensitivity
    from edgeport.cli.sign import sign
    from edgeport.cli.triton import triton
    from edgeport.cli.verify import verify

    for command in (export, models, verify, build, bench, predict, report, triton, sign, lint, sensitivity):
        cli.add_command(command)


_register()


def main(argv=None):
    """The console script ``edgeport``. SIGTERM behaves like Ctrl-C, and neither can be lost
    (runtime/interrupts.py): cleanup runs and nothing half-written stays."""
    from runtime import interrupts

    interrupts.install()
    try:
        code = cli.main(args=argv, prog_name="edgeport", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # also a signal outside the command's own handler
        code = interrupts.exit_code() if interrupts.requested() else 130
        click.echo(f"edgeport: {interrupts.message()}", err=True)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    import signal

    from runtime import interrupts

    if interrupts.requested() and code == 0:
        # A library swallowed the KeyboardInterrupt after the work was made permanent.
        click.echo(f"edgeport: {interrupts.message()}", err=True)
        code = interrupts.exit_code()
    # The exit code is decided: a signal during interpreter shutdown must not turn it into a
    # death by signal (an uncaught KeyboardInterrupt, or the default action, loses the message).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
