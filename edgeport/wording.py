"""One wording rule for errors: the CLI speaks options, the Python API speaks parameters.

Messages everywhere (runtime, exporter) name an option by its declared command-line spelling,
``--batch 8``. That is right for ``edgeport verify``; called as ``edgeport.verify(...)``, the same
error must say ``batch=8``. Rather than two spellings in every message, the API functions are
wrapped by ``speaks_api``: an EdgeportError leaving them is rendered for the API at this boundary
(its message and hint rewritten in place, class and exit code kept), unless the CLI is the caller
(``cli_speaking``), which wants the options as written. Each API function's table maps a flag to
its parameter: by default ``--x-y`` is ``x_y``; declared exceptions (``--batch`` is ``batches`` in
``benchmark``) and flags (``--int8`` is ``int8=True``, ``--no-verify`` is ``verify=False``) come
from the option declarations (exporter/options.py for export) or the function's aliases.
Commands a message tells the user to run (``edgeport build B --precision all``, or anything in
backticks) are command lines, and keep their options.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from typing import Callable

from runtime.errors import EdgeportError

_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("edgeport_cli_speaking", default=False)

# A flag's spelling; group 2 is the value written after it, when there is one.
_FLAG = re.compile(r"(?<![\w`-])--([a-z0-9][a-z0-9-]*)(?:([ =])([^\s-][^\s]*))?")
# Command lines to run stay command lines: `...` spans and "edgeport CMD ..." up to the sentence's end.
_PROTECTED = re.compile(r"`[^`]*`|\bedgeport [a-z][a-z-]*\b.*?(?=\.\s+[A-Z]|\.?$|;)")
# Words that follow a flag in prose ("--calib-data folder", "--max-batch or less") are no value.
_PROSE = frozenset("""a an and are as at but by for from given here if in is it must need needs not of on only
option options or so than that the then there this to too was when which with without alone also applies
folder file files flag value values instead before after takes take selects select does do has have sets set
means mean keeps keep runs run requires require contradict precision metric lists sizes names""".split())
_TRAILING = ".,;:)'\""


@contextlib.contextmanager
def cli_speaking():
    """Inside: errors keep the options' command-line spelling (the CLI calls the API functions)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def to_api(text: str, params: dict[str, str], flags: dict[str, str] | None = None) -> str:
    """``text`` with every option spelled as a parameter.

    ``params``: flag (``--batch``) -> parameter (``batches``); ``flags``: flag -> the value a
    value-less flag sets (``"True"``/``"False"``). Unknown flags follow ``--x-y`` -> ``x_y``."""
    flags = flags or {}
    out, last = [], 0
    for protected in _PROTECTED.finditer(text):
        out.append(_rewrite(text[last:protected.start()], params, flags))
        out.append(protected.group(0))
        last = protected.end()
    out.append(_rewrite(text[last:], params, flags))
    return "".join(out)


def _rewrite(text: str, params: dict[str, str], flags: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        flag = f"--{match.group(1)}"
        name = params.get(flag, match.group(1).replace("-", "_"))
        if flag in flags:  # a flag takes no value: what follows is prose
            return f"{name}={flags[flag]}" + (match.group(2) or "") + (match.group(3) or "")
        value, sep = match.group(3), match.group(2)
        if value is None or _is_prose(value):
            return name + (sep or "") + (value or "")
        if value.startswith(("'", '"')):  # already quoted by the message: '/data/calib'
            return f"{name}={value}"
        core = value.rstrip(_TRAILING)
        tail = value[len(core):]
        shown = core if _is_number(core) or core.isupper() else repr(core)
        return f"{name}={shown}{tail}"

    return _FLAG.sub(one, text)


def _is_prose(value: str) -> bool:
    word = value.rstrip(_TRAILING)
    # An operator between options ("--min-batch <= --opt-batch") has no letter or digit.
    return (not any(c.isalnum() for c in word) or word.startswith(("-", "(", "`"))
            or word.lower() in _PROSE)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def speaks_api(params: dict[str, str] | Callable[[], dict[str, str]] | None = None,
               flags: dict[str, str] | Callable[[], dict[str, str]] | None = None):
    """Decorate an API function: its EdgeportErrors name parameters, not options (unless the CLI calls).

    ``params``/``flags`` (or functions returning them, read only when an error is rendered) are
    the exceptions to ``--x-y`` -> ``x_y`` for this function."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except EdgeportError as exc:
                if not _CLI.get():
                    _render_for_api(exc, _table(params), _table(flags))
                raise

        return wrapper

    return decorate


def _table(value) -> dict[str, str]:
    return dict((value() if callable(value) else value) or {})


def _render_for_api(exc: EdgeportError, params: dict[str, str], flags: dict[str, str]) -> None:
    if getattr(exc, "_api_rendered", False):  # an API function calling another: rendered once
        return
    exc.args = (to_api(str(exc), params, flags), *exc.args[1:])
    if exc.hint:
        exc.hint = to_api(exc.hint, params, flags)
    exc._api_rendered = True
