"""Numbers and labels as people read them: the one formatting module of report.md, report.html
and the CLI lines that print the same quantities (export's MACs line, build's engine memory).

The rules (docs/reports.md "Numbers and words"):
- latency in milliseconds, never an exponent: 100 ms and over in whole milliseconds with
  thousands separators ("1,982 ms", "192 ms"), 1 to 100 ms with one decimal ("6.9 ms",
  "19.2 ms"), under 1 ms to two significant digits ("0.42 ms", "0.057 ms");
- multiply-accumulates to three significant digits, in GMACs from one billion on ("14.9 GMACs")
  and in MMACs below ("125 MMACs", "0.31 MMACs"), so a small net never reads "0.000 GMACs";
- sizes in binary units, bytes / 2**20 named MiB ("12.3 MiB"), bytes / 2**10 KiB;
- shares as percentages that never round to 100% (or 0%) unless they are exactly that
  ("99.97%", "> 99.99%");
- report.json keys as words ("int8_layers" -> "INT8 layers", "max_rel_diff" -> "max rel diff").
"""

from __future__ import annotations

import math


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def significant(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits in plain decimal notation (no exponent, trailing zeros
    dropped); from 10**digits on, a whole number with thousands separators."""
    if v == 0:
        return "0"
    if not math.isfinite(v):  # NaN/Inf as report.json may hold them: printed as they are
        return str(v)
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:.{decimals}f}"
    if abs(float(text)) >= 10 ** digits:  # 999.6 rounds up to 1000: now a whole number
        return f"{v:,.0f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def ms_value(v) -> str:
    """A latency in milliseconds, without the unit (table columns headed "(ms)"); "-" when absent."""
    if not _finite(v):
        return "-" if v is None else str(v)
    a = abs(v)
    if a >= 99.95:
        return f"{v:,.0f}"
    if a >= 0.995:
        return f"{v:.1f}"
    if a == 0:
        return "0"
    return significant(v, 2)


def ms(v) -> str:
    """A latency with its unit: "1,982 ms", "6.9 ms", "0.42 ms"."""
    text = ms_value(v)
    return text if text == "-" else f"{text} ms"


def macs(count) -> str:
    """Multiply-accumulates of one image: "14.9 GMACs", "125 MMACs"; "-" when not counted."""
    if not _finite(count):
        return "-"
    if count >= 0.9995e9:
        return f"{significant(count / 1e9)} GMACs"
    return f"{significant(count / 1e6)} MMACs"


def gmacs(value) -> str:
    """``macs`` of a count given in GMACs (the manifest's ``model.gmacs``)."""
    return macs(value * 1e9) if _finite(value) else "-"


def size(nbytes) -> str:
    """A size in binary units, named as computed: "812 B", "3.4 KiB", "12.3 MiB", "1.2 GiB"."""
    if not _finite(nbytes):
        return "-"
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    for unit, scale in (("KiB", 2 ** 10), ("MiB", 2 ** 20), ("GiB", 2 ** 30)):
        if nbytes < 1024 * scale or unit == "GiB":
            return f"{nbytes / scale:.1f} {unit}"
    return "-"  # pragma: no cover


def mib(nbytes) -> str:
    """bytes / 2**20 without the unit (table columns headed "(MiB)")."""
    return f"{nbytes / 2 ** 20:.1f}" if _finite(nbytes) else "-"


def percent(share, decimals: int = 1) -> str:
    """A fraction as a percentage with ``decimals`` decimals, more where rounding would print
    100% (or 0%) for a share that is not exactly that: 0.99973 -> "99.97%"; past 0.9999 -> "> 99.99%"."""
    if not _finite(share):
        return "-"
    pct = 100.0 * share
    for d in range(decimals, decimals + 3):
        text = f"{pct:.{d}f}"
        if (float(text) < 100 or share >= 1) and (float(text) > 0 or share <= 0):
            return f"{text}%"
    return f"> {100 - 10.0 ** -(decimals + 1):.{decimals + 1}f}%" if share > 0.5 else \
        f"< {10.0 ** -(decimals + 1):.{decimals + 1}f}%"


# Words of the report.json keys the pages show; any other snake_case key reads with spaces.
_WORDS = {
    "int8": "INT8", "int8_layers": "INT8 layers", "float_layers": "float layers", "qdq_nodes": "Q/DQ nodes",
    "kept_float": "kept out of INT8", "max_rel_diff": "max rel diff", "max_abs_diff": "max abs diff",
    "cosine_min": "cosine min", "top1_agreement": "top-1 agreement", "int8_macs_share": "share of MACs in INT8",
    "budget_points": "budget (points)", "drop_points": "drop (points)",
    "full_int8_drop_points": "full INT8 drop (points)", "layers_out_of_int8": "layers out of INT8",
    "quantized_layers": "quantized layers", "op_type": "op", "passed": "passed",
}


def words(key) -> str:
    """A report.json key as a label: "int8_layers" -> "INT8 layers", "some_key" -> "some key"."""
    key = str(key)
    return _WORDS.get(key, key.replace("_", " "))


# How each tolerance bounds its metric (runtime/compare.py: check_tolerance).
_BOUNDS = {"max_rel_diff": "\u2264", "max_abs_diff": "\u2264", "cosine_min": "\u2265", "top1_agreement": "\u2265"}


def tolerance(tol: dict) -> str:
    """A Comparison's tolerance in words: "cosine min \u2265 0.99, max rel diff \u2264 0.05" ("none" when empty)."""
    items = [f"{words(k)} {_BOUNDS.get(k, '=')} {v:g}" if _finite(v) else f"{words(k)} {v}"
             for k, v in tol.items() if v is not None]
    return ", ".join(items) or "none"


def input_shape(shape, batch_range: tuple | None = None) -> str:
    """An NCHW input with a dynamic batch: "N \u00d7 3 \u00d7 256 \u00d7 256 (N: batch 1-8)"."""
    dims = ["N" if isinstance(d, str) else str(d) for d in shape]
    text = " \u00d7 ".join(dims)
    if any(isinstance(d, str) for d in shape):
        lo, hi = batch_range or (None, None)
        text += f" (N: batch {lo}-{hi})" if lo is not None and hi is not None and lo != hi else (
            f" (N: batch {lo})" if lo is not None else " (N: the batch)")
    return text


def threads(v) -> str:
    """A benchmark's thread count; None is the runtime's own choice."""
    return "runtime default" if v is None else str(v)


def rate(v) -> str:
    """A throughput (images per second): whole numbers with separators from 100 on, else 3 digits."""
    if not _finite(v):
        return "-" if v is None else str(v)
    return f"{v:,.0f}" if v >= 100 else significant(v, 3)


def params(n) -> str:
    """A parameter count: "25.56 M parameters" from 100,000 on, else "12,345 parameters"."""
    if not _finite(n):
        return "-"
    return f"{n / 1e6:.2f} M parameters" if n >= 1e5 else f"{n:,.0f} parameters"


def model_facts(manifest) -> list[str]:
    """The model's size and input, the same words in report.md and report.html: architecture,
    parameters, MACs, "input N × 3 × 224 × 224 (N: batch 1-8)"."""
    model = manifest.model if manifest else None
    facts = [f"architecture {(model.architecture if model else None) or '?'}"]
    if model and model.params:
        facts.append(params(model.params))
    if model and model.gmacs:
        facts.append(gmacs(model.gmacs))
    if manifest:
        spec = manifest.input
        facts.append(f"input {input_shape(spec.shape, (spec.min_batch, spec.max_batch))}")
    return facts
