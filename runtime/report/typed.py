"""The strict reader of report.json's values: every field checked against its type hint at read.

A bundle is untrusted input (README "Security"), and report.json is part of it: a number where a
string belongs (or the reverse) must be refused when the file is read, naming the field, not
crash a renderer later. ``fields_of(cls, data)`` checks a dataclass's fields (or a TypedDict's
keys) against ``typing.get_type_hints``; a wrong value raises ``FieldError`` (a ValueError, which
runtime/report/summary.py read_report turns into a BundleError naming report.json).

What each hint accepts (JSON's types, as ``json.loads`` makes them):
- ``float``: an int or a float (NaN and infinities too: JSON from Python may hold them and the
  pages print them as such), never a bool; an int too large for a float is refused.
- ``int``: an int within int64 (nothing edgeport writes is larger), never a bool.
- ``str``, ``bool``, ``None``; ``X | None`` and other unions: the first alternative that fits.
- ``list`` / ``list[X]``, ``tuple[X, ...]`` (read from a JSON list), ``dict`` / ``dict[str, X]``.
- a dataclass with ``from_dict``: read by it; a TypedDict (``total=False``): a dict whose listed
  keys are checked when present, other keys kept as they are (sections of a newer edgeport).
- free-form values (``dict``, ``list``, ``Any``, a TypedDict's other keys) are any JSON, but no
  integer in them may leave int64: the pages turn numbers into floats to print them.
"""

from __future__ import annotations

import dataclasses
import types
import typing

_INT64 = 2 ** 63
_MISSING = object()  # a field without a default that report.json does not have


class FieldError(ValueError):
    """A report.json value of the wrong type; ``path`` is where it is (``results[0].cosine_min``)."""

    def __init__(self, path: str, expected: str, value):
        self.path, self.expected, self.value = path, expected, value
        super().__init__(f"{path or 'the document'}: expected {expected}, got {_describe(value)}")

    def under(self, prefix: str) -> "FieldError":
        """The same error one level down (``prefix`` + ``.`` + path)."""
        return FieldError(_join(prefix, self.path), self.expected, self.value)


def _describe(value) -> str:
    if value is _MISSING:
        return "nothing (the key is missing)"
    kind = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    text = repr(value)
    return kind if value is None or isinstance(value, (list, dict)) else f"{kind} ({text[:40]})"


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}{path}" if path.startswith("[") or not path else f"{prefix}.{path}"


def at(prefix: str, read, *args):
    """``read(*args)``, its FieldError moved under ``prefix`` (a section read by its own from_dict)."""
    try:
        return read(*args)
    except FieldError as exc:
        raise exc.under(prefix) from None


def check(value, hint, path: str = ""):
    """``value`` as ``hint`` describes it (a float field holding an int becomes a float);
    FieldError when it is not."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(value, typing.get_args(hint), path)
    if origin in (list, tuple):
        return _sequence(value, hint, origin, path)
    if origin is dict or hint is dict:
        return _mapping(value, hint, path)
    if hint is list:
        return _free(_expect(value, list, "a list", path), path)
    if hint is typing.Any:
        return _free(value, path)
    if hint is type(None) or hint is None:
        return _expect(value, type(None), "null", path)
    if hint in _SCALARS:
        return _SCALARS[hint](value, path)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise FieldError(path, "an object", value)
        read = getattr(hint, "from_dict", None)
        return at(path, read, value) if read else hint(**fields_of(hint, value, path))
    if typing.is_typeddict(hint):
        return _typeddict(value, hint, path)
    raise TypeError(f"runtime/report/typed.py cannot check a field of type {hint!r} ({path})")


def fields_of(cls, data, path: str = "") -> dict:
    """The entries of ``data`` that are fields of dataclass ``cls``, each checked against its hint
    (derived keys such as ``passed`` left out). A missing field without a default reads as None
    when its hint allows None, else is refused."""
    if not isinstance(data, dict):
        raise FieldError(path, "an object", data)
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            out[f.name] = check(data[f.name], hints[f.name], _join(path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            try:
                out[f.name] = check(None, hints[f.name], _join(path, f.name))
            except FieldError as exc:
                raise FieldError(exc.path, exc.expected, _MISSING) from None
    return out


def _expect(value, kind, expected: str, path: str):
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise FieldError(path, expected, value)
    return value


def _float(value, path: str) -> float:
    _expect(value, (int, float), "a number", path)
    try:
        return float(value)
    except OverflowError:
        raise FieldError(path, "a number within a float's range", value) from None


def _int(value, path: str) -> int:
    _expect(value, int, "an integer", path)
    if not -_INT64 <= value < _INT64:
        raise FieldError(path, "an integer within int64", value)
    return value


_SCALARS = {
    float: _float,
    int: _int,
    str: lambda v, p: _expect(v, str, "a string", p),
    bool: lambda v, p: _expect(v, bool, "true or false", p),
}


def _union(value, options: tuple, path: str):
    errors = []
    for option in options:
        try:
            return check(value, option, path)
        except FieldError as exc:
            errors.append(exc)
    # The deepest error says most (a result of the wrong shape, not "expected null").
    deepest = max(errors, key=lambda e: e.path.count(".") + e.path.count("["))
    if deepest.path != path:
        raise deepest
    raise FieldError(path, " or ".join(e.expected for e in errors), value)


def _sequence(value, hint, origin, path: str):
    _expect(value, list, "a list", path)
    args = typing.get_args(hint)
    item = args[0] if args else typing.Any
    out = [check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if origin is tuple else out


def _mapping(value, hint, path: str):
    _expect(value, dict, "an object", path)
    args = typing.get_args(hint)
    if not args:
        return _free(value, path)
    return {k: check(v, args[1], _join(path, str(k))) for k, v in value.items()}


def _typeddict(value, hint, path: str) -> dict:
    _expect(value, dict, "an object", path)
    hints = typing.get_type_hints(hint)
    return {k: check(v, hints[k], _join(path, k)) if k in hints else _free(v, _join(path, k))
            for k, v in value.items()}


def _free(value, path: str):
    """A free-form JSON value, its integers checked (a 400-digit number overflows every float)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _free(v, _join(path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _free(v, f"{path}[{i}]")
    elif isinstance(value, int) and not isinstance(value, bool):
        _int(value, path)
    return value

