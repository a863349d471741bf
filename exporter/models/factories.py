"""User factories: ``path/to/file.py:factory`` or ``package.module:factory``, called with
``--factory-arg KEY=VALUE`` arguments (and ``num_classes`` when it takes one).

A factory's arguments are checked against its signature before it is called, so a missing
or unknown argument is a usage error that shows the signature; the arguments are recorded
in the manifest (``model.factory_args``) so a bundle says how its model was built.

User code (the file's import, the factory, the model's forward) runs inside ``user_code``:
what it prints goes to stderr (``--json`` output stays pure), ``SystemExit`` and any other
``BaseException`` it raises become one EdgeportError naming the factory, and the working
directory it changes is restored.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Callable

from runtime.errors import EdgeportError, UsageError


def _sentence(text: str) -> str:
    """``text`` ending in a full stop (messages built from exception texts)."""
    text = str(text).rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def parse_factory_arg(item: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value): the value as a Python literal (64, 0.5, True, None, [1, 2],
    'text') when it parses as one, else the text itself (``act=relu`` gives the string 'relu')."""
    key, sep, text = str(item).partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UsageError(f"--factory-arg takes KEY=VALUE with KEY a Python identifier (e.g. width=64), got '{item}'.")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = text
    return key, value


def parse_factory_args(items) -> dict:
    """``--factory-arg`` items (or a dict, from the Python API) -> {key: value}; a key given
    twice is an error rather than a silent override."""
    if items is None:
        return {}
    if isinstance(items, dict):
        bad = [k for k in items if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise UsageError(f"factory_args keys must be Python identifiers, got {bad[:3]!r}.")
        return dict(items)
    out: dict = {}
    for item in items:
        key, value = parse_factory_arg(item)
        if key in out:
            raise UsageError(f"--factory-arg {key} is given twice ({out[key]!r} and {value!r}).")
        out[key] = value
    return out


def recorded_args(args: dict) -> dict | None:
    """The factory arguments as the manifest stores them: JSON values, else their repr."""
    if not args:
        return None
    out = {}
    for k, v in args.items():
        try:
            out[k] = json.loads(json.dumps(v))
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


def signature_text(factory: Callable, spec: str) -> str:
    """``build(width, depth=2, num_classes=10)`` (or ``build(...)`` when Python cannot tell)."""
    name = spec.rpartition(":")[2] or getattr(factory, "__name__", "factory")
    try:
        return f"{name}{inspect.signature(factory)}"
    except (TypeError, ValueError):
        return f"{name}(...)"


@contextlib.contextmanager
def _stdout_to_stderr():
    """Python's and the C library's stdout (file descriptor 1) go to stderr meanwhile."""
    saved = None
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no descriptor 1 (embedded): Python's only
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            _flush_c_stdio()  # what C code printed but did not flush belongs to stderr too
            os.dup2(saved, 1)
            os.close(saved)


def _flush_c_stdio() -> None:
    with contextlib.suppress(OSError, AttributeError, TypeError):
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def user_code(spec: str):
    """Run user code isolated from edgeport's output and exit status (see the module docstring)."""
    from runtime import interrupts

    cwd = os.getcwd()
    try:
        with _stdout_to_stderr():
            yield
    except KeyboardInterrupt:
        if interrupts.requested() or not interrupts.installed():
            raise  # a real Ctrl-C/SIGTERM (or one edgeport cannot tell from user code): stop as asked
        raise _ended_by(spec, "raised KeyboardInterrupt") from None
    except SystemExit as exc:
        raise _ended_by(spec, f"called sys.exit({exc.code!r})") from exc
    except Exception:
        raise
    except BaseException as exc:  # noqa: BLE001 - GeneratorExit or a user BaseException subclass
        raise _ended_by(spec, f"raised {type(exc).__name__}: {_sentence(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.chdir(cwd)


def _ended_by(spec: str, what: str) -> EdgeportError:
    return EdgeportError(f"The user model '{spec}' {what} while edgeport ran it; the export stopped and wrote no "
                         "new bundle.", hint="User code must return or raise an Exception; remove the call "
                                              "(rerun with --debug for the traceback).")


def load_user_factory(spec: str) -> tuple[Callable, str]:
    """Resolve ``path/to/file.py:factory`` or ``package.module:factory``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UsageError(f"--model '{spec}' must look like path/to/file.py:factory or package.module:factory.")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"Model file '{path}' does not exist.",
                                hint="Pass an existing Python file, e.g. --model my_net.py:build.")
        mod_name = f"edgeport_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise EdgeportError(
                f"Importing model file '{path}' failed: {type(exc).__name__}: {_sentence(exc)}",
                hint="Fix the file (run it with python to see the full error, or add --debug).") from exc
        finally:
            sys.path.pop(0)
        where = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise EdgeportError(f"Cannot import module '{target}': {type(exc).__name__}: {_sentence(exc)}",
                                hint="Check that it is installed or on PYTHONPATH, or pass a file path.") from exc
        where = target
    factory = getattr(module, attr, None)
    if factory is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise EdgeportError(f"'{where}' has no attribute '{attr}'.",
                            hint=f"Callables it defines: {', '.join(public[:10]) or 'none'}.")
    if not callable(factory):
        raise EdgeportError(f"'{where}:{attr}' is a {type(factory).__name__}, not a callable factory.")
    return factory, where


def _params(factory: Callable):
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None  # a builtin or C callable: call it and let it complain


def takes_num_classes(factory: Callable) -> bool:
    """Whether ``num_classes=`` can be passed (a parameter of that name, or **kwargs)."""
    params = _params(factory)
    return params is None or "num_classes" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def factory_kwargs(factory: Callable, spec: str, num_classes: int | None, args: dict) -> dict:
    """The keyword arguments to call ``factory`` with, checked against its signature."""
    kwargs = dict(args)
    if num_classes is not None:
        if "num_classes" in kwargs:
            raise UsageError(f"num_classes is given twice: --num-classes {num_classes} and --factory-arg "
                             f"num_classes={kwargs['num_classes']!r}.", hint="Pass only one of them.")
        if takes_num_classes(factory):
            kwargs["num_classes"] = num_classes
        # else: not passed; the class count is checked on the model's output (pipeline._reference)
    if _params(factory) is None:
        return kwargs
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        raise UsageError(
            f"The factory '{spec}' cannot be called with {given}: {_sentence(exc)} Its signature is "
            f"{signature_text(factory, spec)}.",
            hint="Pass its arguments with --factory-arg KEY=VALUE (repeatable; values are Python literals, "
                 "e.g. --factory-arg width=64 --factory-arg act=relu), or factory_args={...} from Python.") from None
    return kwargs


def call_factory(factory: Callable, spec: str, num_classes: int | None, args: dict):
    """Call a user factory; it must return an ``nn.Module``."""
    import torch.nn as nn

    kwargs = factory_kwargs(factory, spec, num_classes, args)
    try:
        module = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise EdgeportError(
            f"The factory '{spec}' raised {type(exc).__name__}: {_sentence(exc)}",
            hint=f"Its signature is {signature_text(factory, spec)}. Fix the factory, or pass its arguments with "
                 "--factory-arg KEY=VALUE; rerun with --debug for the traceback.") from exc
    if not isinstance(module, nn.Module):
        raise EdgeportError(f"The factory '{spec}' returned a {type(module).__name__}, not a torch.nn.Module.",
                            hint="It must return the model instance (e.g. `return MyNet()`).")
    return module
