"""Options shared by the commands, so the same option means the same thing everywhere.

- List options (``--precision``, ``--batch``, ``--preferred-batch``...) take ``1,8``,
  ``1 8`` (quoted) or the option repeated; values are de-duplicated in order.
- ``--json`` always means: print the machine-readable result on stdout (logs stay on stderr).
- ``--backend/--provider/--threads/--qdq`` say where artifacts run (runtime.runners.Target).
- Precision choices come from the registry (runtime/precision.py); renamed options keep no
  old spelling (edgeport is unreleased: one name per option).
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys

import click

from runtime.precision import CPU_INT8, PRECISIONS as _REGISTRY, choices as precision_choices

PRECISIONS = precision_choices()  # every artifact and "all" (rules: runtime/precision.py)


def _split(values) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out += [p for p in str(value).replace(",", " ").split() if p]
    return out


def list_callback(choices: tuple[str, ...] | None = None, kind=str):
    """A callback turning repeated and comma-separated values into one de-duplicated tuple."""

    def callback(ctx, param, values):
        items = _split(values)
        if not items:
            if values:  # given, but empty: `--batch ""`
                raise click.BadParameter("expected at least one value, e.g. 1,8.")
            return ()
        parsed = []
        for item in items:
            if kind is int:
                try:
                    value = int(item)
                except ValueError:
                    raise click.BadParameter(f"'{item}' is not a whole number (expected e.g. 1,8).") from None
                if value < 1:
                    raise click.BadParameter(f"values must be at least 1, got {value}.")
            else:
                value = item
                if choices and value not in choices:
                    raise click.BadParameter(f"'{value}' is not one of {', '.join(choices)}.")
            parsed.append(value)
        return tuple(dict.fromkeys(parsed))

    return callback


def precision_help(choices=PRECISIONS) -> str:
    """The --precision help of verify and bench, from the registry."""
    cpu = _REGISTRY[CPU_INT8]
    return (f"Artifacts (repeat or comma-separate; choices: {', '.join(choices)}). On the CPU provider "
            f"{cpu.cpu_variant_of} means {cpu.artifact} when the bundle has it; all = every artifact there (both INT8 graphs).")


def precision_option(default=("all",), choices=PRECISIONS, help_text=None):
    return click.option(
        "--precision", "precisions", multiple=True, default=default, callback=list_callback(choices),
        metavar="P[,P...]", show_default=True, help=help_text or precision_help(choices))


def batch_option(default=None, help_text="Batch size."):
    return click.option("--batch", "batches", multiple=True, default=default, callback=list_callback(kind=int),
                        metavar="N[,N...]", help=help_text)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print the result as JSON on stdout (messages stay on stderr).")(fn)


def common_options(fn):
    """--debug and --quiet on every command (they also work before the command name)."""

    @click.option("--debug", "debug_", is_flag=True, hidden=True, help="Show tracebacks.")
    @click.option("--quiet", "-q", is_flag=True, help="Only print results and errors.")
    @functools.wraps(fn)
    def wrapper(*args, debug_=False, quiet=False, **kwargs):
        if quiet:
            from runtime import console

            console.set_quiet(True)
        return fn(*args, **kwargs)

    return wrapper


# --trust-engine-host-code, handed from target_options' wrapper to target_kwargs: the commands'
# signatures stay (backend, provider, threads, qdq).
_TRUST_HOST_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("trust_engine_host_code", default=False)


def target_options(fn):
    """--backend, --provider, --threads, --qdq and --trust-engine-host-code (verify, bench, predict):
    a runners.Target."""
    from runtime.runners import BACKEND_CHOICES, PROVIDER_CHOICES, backend_help

    command = fn

    @functools.wraps(command)
    def wrapper(*args, trust_engine_host_code=False, **kwargs):
        token = _TRUST_HOST_CODE.set(trust_engine_host_code)
        try:
            return command(*args, **kwargs)
        finally:
            _TRUST_HOST_CODE.reset(token)

    fn = click.option("--trust-engine-host-code", is_flag=True,
                      help="tensorrt/tensorrt-rtx: load version-compatible engines, whose embedded host code runs "
                           "in this process; only for engines from a builder you trust (docs/security.md).")(wrapper)
    fn = click.option("--qdq", is_flag=True,
                      help="With --precision int8 on the CPU provider: run the TensorRT-style Q/DQ graph "
                           "(model.int8.onnx) instead of model.int8-cpu.onnx.")(fn)
    fn = click.option("--threads", type=click.IntRange(min=1), default=None,
                      help="Intra-op threads (ONNX Runtime, OpenVINO; default: one per physical core).")(fn)
    fn = click.option("--provider", type=click.Choice(PROVIDER_CHOICES), default="cpu", show_default=True,
                      help="ONNX Runtime execution provider.")(fn)
    fn = click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="onnxruntime", show_default=True,
                      help="Where artifacts run: " + backend_help())(fn)
    return fn


def target_kwargs(backend, provider, threads, qdq) -> dict:
    return {"backend": backend, "provider": provider, "threads": threads, "qdq": qdq,
            "trust_engine_host_code": _TRUST_HOST_CODE.get()}


# -- output ------------------------------------------------------------------------------------------
def out(text: str = "") -> None:
    """Print a result line on stdout. A closed stdout (``edgeport models | head -1``) is not an
    error: the rest of the output is dropped and the command ends with the status of its work."""
    from runtime.console import printable

    try:
        click.echo(printable(text))  # results quote bundle text (class and model names): no terminal escapes
    except BrokenPipeError:
        drop_stdout()


def out_json(data) -> None:
    out(json.dumps(data, indent=2, default=_json_default))


# -- the --json envelope -----------------------------------------------------------------------------
# Every command's --json output has these top-level keys, success or failure (docs/api.md):
# ``result`` is the command's typed result (its to_dict()), ``error`` {"message", "hint"} or null.
ENVELOPE_KEYS = ("command", "ok", "exit_code", "bundle", "result", "error")


def envelope(command: str | None, *, exit_code: int = 0, bundle=None, result=None, error=None) -> dict:
    """The one JSON shape of every command (ok: exit code 0)."""
    return {"command": command, "ok": exit_code == 0, "exit_code": exit_code,
            "bundle": None if bundle is None else str(bundle), "result": result, "error": error}


def out_envelope(result, *, bundle=None, exit_code: int = 0) -> None:
    """Print a command's result in the envelope; ``exit_code`` 1 when the work ran and a check failed."""
    ctx = click.get_current_context(silent=True)
    out_json(envelope(ctx.info_name if ctx else None, exit_code=exit_code, bundle=bundle, result=result))


def _json_default(value):
    import dataclasses
    from pathlib import Path

    if hasattr(value, "to_dict"):  # the typed results: their own report.json shape
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def drop_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (click's test runner)
        pass


def comparisons_table(comparisons) -> str:
    """The summary table (the classifier output), then the further outputs of a multi-output model."""
    from runtime.report.html_sections import OUTPUTS_HEADER, output_rows
    from runtime.report.summary import SUMMARY_HEADER, render_table, summary_rows

    text = render_table(SUMMARY_HEADER, summary_rows(comparisons))
    further = output_rows(comparisons)
    if further:
        text += "\n\nfurther outputs:\n" + render_table(OUTPUTS_HEADER, further)
    return text


def int8_next_step(comparisons, bundle) -> str | None:
    """One line after a failing INT8 row: the command and options that act on it (docs/int8.md).
    A hint, not a diagnosis: the numbers alone ("cosine_min 0.0 < 0.99") leave the user stuck."""
    import shlex

    failed = [c.precision for c in comparisons if not c.passed and c.precision.startswith("int8")]
    if not failed:
        return None
    return (f"next: {', '.join(failed)} failed; `edgeport sensitivity {shlex.quote(str(bundle))}` ranks the layers "
            "INT8 hurts most, then re-export with --max-drop POINTS (keeps them in float) or --calib-data DIR of "
            "images like your inputs (docs/int8.md).")


# -- signed bundles ----------------------------------------------------------------------------------
def trusted_key_option(fn):
    """--trusted-key PUBLIC.pem (repeatable) on every command that reads a bundle.

    The command runs inside ``runtime.signing.trusting(keys)``, so every ``Bundle.open`` under it
    checks the bundle's signature before reading anything else, without a parameter threaded
    through the API; without the option, ``$EDGEPORT_TRUSTED_KEYS`` applies (docs/security.md)."""

    @click.option("--trusted-key", "trusted_keys_", multiple=True, metavar="PUBLIC.pem",
                  type=click.Path(path_type=str),
                  help="Refuse the bundle unless its bundle.sig verifies with this public key (repeatable: any "
                       "of them; default: $EDGEPORT_TRUSTED_KEYS, paths separated by ':'). See docs/security.md.")
    @functools.wraps(fn)
    def wrapper(*args, trusted_keys_=(), **kwargs):
        from runtime.signing import trusting

        with trusting(trusted_keys_):
            return fn(*args, **kwargs)

    return wrapper
