"""The "engine composition" section of report.md and report.html (report.json: ``engines``).

``edgeport build`` reads what each engine is made of from the builder's layer information
(runtime/engines/layers.py) and records it here, per engine file: how many layers, tensors by
data type, which compute layers (convolution, gemm, pool kernels) read INT8, FP16 or FP32,
and the weights and activation memory. The question it answers: which layers actually run
INT8, read from NVIDIA's builder without a GPU (a TensorRT-RTX ahead-of-time build logs it).
runtime/report/summary.py's ``record_engines`` writes the section; this module only renders it.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.report.sections import EnginesSection
MAX_LISTED = 40  # compute layers listed per engine in the page


def engine_entry(precision: str, runtime: str, version: str, composition: dict, **facts) -> dict:
    """One report.json ``engines`` entry (``composition``: ``LayerSummary.to_dict()``)."""
    return {"precision": precision, "runtime": runtime, "version": version, **facts, "composition": composition}


def _mb(nbytes) -> str:
    from runtime.report.numbers import mib

    return mib(nbytes)


def _row(name: str, e: dict) -> list[str]:
    c = e.get("composition") or {}
    t, p = c.get("tensors") or {}, c.get("compute_layers_by_precision") or {}
    return [name, str(e.get("precision", "?")), f"{e.get('runtime', '?')} {e.get('version', '')}".strip(),
            str(c.get("layers", "-")), f"{t.get('Float', 0)} / {t.get('Half', 0)} / {t.get('Int8', 0)}",
            f"{p.get('int8', 0)} / {p.get('fp16', 0)} / {p.get('fp32', 0)}",
            _mb(c.get("weights_bytes")), _mb(c.get("activation_bytes"))]


HEADER = ["engine", "precision", "built with", "layers", "tensors Float / Half / Int8",
          "compute layers INT8 / FP16 / FP32", "weights (MiB)", "activations (MiB)"]


def engines_markdown(section: EnginesSection | None) -> list[str]:
    """report.md lines (none when no engine was recorded)."""
    engines = section.entries if section else {}
    if not engines:
        return []
    from runtime.report.mdtext import md, md_code, md_table  # engine and layer names are bundle text

    rows = [_row(n, e) for n, e in sorted(engines.items())]
    lines = ["", "### Engine composition (from the builder's layer information)", "", md_table(HEADER, rows)]
    for name, e in sorted(engines.items()):
        other = (e.get("composition") or {}).get("other_compute_layers") or []
        if e.get("precision") == "int8" and other:
            shown = ", ".join(md_code(x.get("layer")) + " " + md(f"({x.get('type')}, {x.get('reads')})")
                              for x in other[:10])
            lines += ["", f"{md(name)}: compute layers not reading INT8: {shown}"
                          + (f" and {len(other) - 10} more" if len(other) > 10 else "")]
    return lines


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    from runtime.report.html_sections import cell  # long layer names may break anywhere, numbers never

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def engines_html(section: EnginesSection | None) -> str:
    """The report.html section ('' when no engine was recorded)."""
    engines = section.entries if section else {}
    if not engines:
        return ""
    parts = ['<section id="engines"><h2>Engine composition</h2>',
             "<p>Read from the builder's layer information (VERBOSE log, DETAILED profiling verbosity): "
             "a compute layer (convolution, gemm, pool kernel) runs INT8 when it reads INT8 data. "
             "Tensors count every input, constant and output the builder lists.</p>",
             _table(HEADER, [_row(n, e) for n, e in sorted(engines.items())])]
    for name, e in sorted(engines.items()):
        c = e.get("composition") or {}
        other = c.get("other_compute_layers") or []
        int8 = c.get("int8_compute_layers") or []
        if e.get("precision") != "int8":
            continue
        parts.append(f"<h3>{html.escape(name)}: {len(int8)} compute layers run INT8, {len(other)} do not</h3>")
        if other:
            parts.append(_table(["layer", "kernel", "reads", "writes", "ONNX nodes"],
                                [[str(x.get("layer")), str(x.get("type")), str(x.get("reads")), str(x.get("writes")),
                                  ", ".join(x.get("onnx") or [])] for x in other[:MAX_LISTED]]))
        if int8:
            rows = [[str(x.get("layer")), str(x.get("type")), ", ".join(x.get("onnx") or [])] for x in int8[:MAX_LISTED]]
            more = f" (first {MAX_LISTED} of {len(int8)}; all in report.json)" if len(int8) > MAX_LISTED else ""
            parts.append(f"<details><summary>The INT8 compute layers{more}</summary>"
                         + _table(["layer", "kernel", "ONNX nodes"], rows) + "</details>")
    parts.append("</section>")
    return "\n".join(parts)
