"""report.md quotes bundle text (model, file, layer and label names, messages) as literal text:
a hostile name can neither break a table nor add a link, an image, HTML or a heading."""

from __future__ import annotations

import copy

import pytest
from markdown_it import MarkdownIt

from test_report_document import REPORT, _result

HOSTILE = ["a|b", "<script>alert(1)</script>", "[x](http://evil)", "![img](http://evil/p.png)",
           "line\n# heading", "*bold* _em_ `code` ~~s~~ &amp; \\|"]


def _tokens(text: str):
    """Every token of report.md as a CommonMark + GFM-table renderer parses it (children included)."""
    out = []
    for tok in MarkdownIt("commonmark").enable("table").parse(text):
        out.append(tok)
        out += tok.children or []
    return out


def _hostile_report(name: str) -> dict:
    data = copy.deepcopy(REPORT)
    data["model"] = name
    data["weights"]["description"] = name
    data["golden"]["source"] = name
    data["results"][2] = _result("int8", backend="tensorrt", provider="gpu", failures=[f"class {name} flipped"])
    data["lint"]["int8"]["file"] = name
    data["accuracy"]["data"] = name
    data["accuracy"]["reference"]["description"] = name
    data["engines"] = {name: {"precision": "fp16"}}
    return data


@pytest.mark.parametrize("name", HOSTILE)
def test_bundle_text_is_literal_in_report_md(name):
    from runtime.report.document import Report
    from runtime.report.markdown import render_markdown

    text = render_markdown(Report.from_dict(_hostile_report(name)))
    tokens = _tokens(text)
    kinds = {t.type for t in tokens}
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "code_inline", "em_open",
                        "s_open"}, kinds
    assert [t.tag for t in tokens if t.type == "heading_open"].count("h1") == 0
    assert [t.type for t in tokens].count("strong_open") == 1  # only report.md's own "int8 ... failed"
    # Every table row has as many cells as its header (a "|" in a name does not add a column).
    rows, header = [], None
    for tok in tokens:
        if tok.type == "tr_open":
            rows.append(0)
        elif tok.type in ("th_open", "td_open"):
            rows[-1] += 1
        elif tok.type == "thead_close":
            header = rows[-1]
        elif tok.type == "table_close":
            assert set(rows) == {header}, rows
            rows = []
    # The name still reads as itself (newlines as spaces), in the text and whole in one table cell
    # (the engines table's first column): GFM drops cells beyond the header's, so counting is not enough.
    flat = " ".join(name.splitlines())
    parsed = MarkdownIt("commonmark").enable("table").parse(text)
    cells = ["".join(c.content for c in parsed[i + 1].children if c.type == "text")
             for i, tok in enumerate(parsed) if tok.type == "td_open"]
    assert flat in cells
    inline = "".join(t.content for t in tokens if t.type == "text")
    assert flat in inline
