"""Markdown text from untrusted strings: bundle text (model, file, class and layer names,
messages) escaped so report.md shows it literally (runtime/report/markdown.py, engines.py)."""

from __future__ import annotations

import re


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """A pipe table of plain cells (the terminal's tables; report.md uses ``md_table``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# Characters that start Markdown (GFM) syntax mid-line: emphasis, code, links and images, raw
# HTML and autolinks, entities, table cells, strikethrough, headings. A backslash before ASCII
# punctuation makes it literal (CommonMark). "- ", "+ " and "1. " matter only at the start of a
# list item's text (a nested list), so they are escaped there only.
_MD_SPECIAL = frozenset("\\`*_[]<>#!|&~")
_LIST_START = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")


def md(text) -> str:
    """Bundle text (model, file, class and layer names, messages) as literal Markdown text: it
    can neither break a table nor add links, images, HTML or headings to report.md. Line breaks
    become spaces (a new line could start a heading or end a table row)."""
    text = " ".join(str(text).splitlines())
    text = "".join("\\" + c if c in _MD_SPECIAL else c for c in text)
    if re.match(r"^[-+](\s|$)", text):
        return "\\" + text
    return _LIST_START.sub(r"\1\\\2", text)


def md_code(text) -> str:
    """Bundle text as an inline code span (layer names): literal whatever it holds, fenced by
    more backticks than any run inside it."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """``render_table`` with every cell escaped for Markdown (report.md)."""
    return render_table([md(h) for h in header], [[md(c) for c in row] for row in rows])
