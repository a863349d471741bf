"""report.md's and report.html's "Why INT8 failed" section: report.json's ``int8_diagnosis``
(runtime/int8_diagnosis.py), one block per failing INT8 artifact."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from runtime.report.mdtext import md, md_code, md_table
from runtime.report.numbers import significant

if TYPE_CHECKING:
    from runtime.int8_diagnosis import Int8Diagnosis, Int8DiagnosisSection

TITLE = "Why INT8 failed: the diagnosis"
BOUNDARY_HEADER = ["layer", "op", "output cosine", "relative error", "added error (jump)"]
_esc = html.escape


def _finding(d: Int8Diagnosis) -> str:
    """One sentence: where the error jumps and which half of the layer carries it (plain text)."""
    if d.layer is None:
        return d.note or "No single layer stands out: the error builds up gradually over the layers."
    text = (f"The error against FP32 jumps at {d.layer} ({d.op_type}): its output's centered cosine is "
            f"{_num(d.cosine_at)} where its inputs' was {_num(d.cosine_before)}.")
    w, a = d.weights_only or {}, d.activations_only or {}
    if d.carrier:
        text += (f" Its {d.carrier} carry the error: with only its weights quantized the layer output's cosine is "
                 f"{_num(w.get('layer_cosine'))} (logits {_num(w.get('logits_cosine'))}), with only its input "
                 f"activations {_num(a.get('layer_cosine'))} (logits {_num(a.get('logits_cosine'))}).")
    return text


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _cost(d: Int8Diagnosis) -> str:
    return (f"Measured on ONNX Runtime CPU over {d.samples} golden images at {len(d.boundaries)} quantized layer "
            f"outputs in {significant(d.seconds, 2)} s. Criterion: {d.criterion}.")


def _rows(d: Int8Diagnosis) -> list[list[str]]:
    return [[b.layer, b.op_type, f"{b.cosine:.4f}", significant(b.rel_error), f"{b.jump:+.4f}"] for b in d.boundaries]


def diagnosis_markdown(section: Int8DiagnosisSection | None) -> list[str]:
    if section is None or not section.entries:
        return []
    lines = ["", f"### {TITLE}", ""]
    for precision, d in section.entries.items():
        lines += [f"**{md(precision)}**: {md(_finding(d))}", "", "Try:"]
        lines += [f"- {md_code(step.split(' (')[0])}" + (md(' (' + step.split(' (', 1)[1]) if ' (' in step else '')
                  for step in d.next_steps]
        lines += ["", md(_cost(d))]
        if d.boundaries:
            lines += ["", md_table(BOUNDARY_HEADER, [[md(c) for c in row] for row in _rows(d)[:40]])]
        lines.append("")
    return lines


def diagnosis_html(section: Int8DiagnosisSection | None) -> str:
    if section is None or not section.entries:
        return ""
    parts = [f'<section id="int8-diagnosis"><h2>{_esc(TITLE)}</h2>']
    for precision, d in section.entries.items():
        steps = "".join(f"<li><code>{_esc(s.split(' (')[0])}</code>"
                        + (_esc(' (' + s.split(' (', 1)[1]) if ' (' in s else '') + "</li>" for s in d.next_steps)
        parts.append(f'<h3>{_esc(precision)}</h3><p class="note">{_esc(_finding(d))}</p>'
                     f"<p>Try:</p><ul>{steps}</ul><p class=\"meta\">{_esc(_cost(d))}</p>")
        if d.boundaries:
            body = "".join(
                ("<tr class=\"fail\">" if b.layer == d.layer else "<tr>")
                + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
                for b, row in zip(d.boundaries, _rows(d)))
            head = "".join(f"<th>{_esc(h)}</th>" for h in BOUNDARY_HEADER)
            parts.append(f"<details><summary>Error at each quantized layer output ({len(d.boundaries)})</summary>"
                         f'<table id="int8-diagnosis-{_esc(precision)}"><tr>{head}</tr>{body}</table></details>')
    return "\n".join(parts) + "</section>"
