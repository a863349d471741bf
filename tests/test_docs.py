"""docs/ match the code: every test the docs cite exists where they say, under that name.

docs/errors.md is a tested matrix ("| case | behaviour | test |"); a renamed or deleted test
would leave a row that claims a check nobody runs. The oracle is the test tree itself, read with
``ast`` (not imported), so the check cannot agree with a doc by construction.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

CITATION = re.compile(r"`(?:tests/)?(?:[\w/]+/)?(test_\w+\.py)(?:::(test_\w+))?")


def _tests_by_file() -> dict[str, set[str]]:
    """file name -> the test functions defined in it (any folder of tests/)."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "tests").rglob("test_*.py"):
        names = {n.name for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")}
        found.setdefault(path.name, set()).update(names)
    return found


def _citations() -> list[tuple[str, str, str | None]]:
    cited = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for m in CITATION.finditer(doc.read_text()):
            cited.append((doc.name, m.group(1), m.group(2)))
    return cited


def test_the_docs_cite_tests():
    """The check below proves something only if the docs do cite tests (errors.md's matrix)."""
    assert sum(1 for doc, _, name in _citations() if doc == "errors.md" and name) >= 20


def test_every_test_the_docs_cite_exists():
    tests = _tests_by_file()
    missing = [f"{doc}: {file}" + (f"::{name}" if name else "") for doc, file, name in _citations()
               if file not in tests or (name is not None and name not in tests[file])]
    assert missing == []


def test_cited_paths_point_into_the_tree():
    """`tests/x/test_y.py` paths written in the docs name files that exist at that path."""
    bad = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for m in re.finditer(r"tests/[\w/]*test_\w+\.py", doc.read_text()):
            if not (REPO / m.group(0)).is_file():
                bad.append(f"{doc.name}: {m.group(0)}")
    assert bad == []


def _documented_command_lines():
    """(doc, command, options) of every `edgeport COMMAND ...` line in the README's and docs' code blocks."""
    import shlex

    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        in_code = False
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            text = line.split("#")[0].strip().rstrip("\\").strip()
            if not in_code or not text.startswith("edgeport "):
                continue
            try:
                words = shlex.split(text)
            except ValueError:
                continue
            if len(words) > 1 and not words[1].startswith("-"):
                yield doc.name, words[1], [w.split("=")[0] for w in words[2:] if w.startswith("--")]


def test_documented_command_lines_use_real_options():
    """Every `--option` shown after `edgeport COMMAND` in a code block is an option of that command
    (read from the click command itself, the CLI's single source)."""
    from edgeport.cli import cli

    lines = list(_documented_command_lines())
    assert len(lines) >= 20  # the README's command list alone has more
    unknown = []
    for doc, name, options in lines:
        command = cli.commands.get(name)
        if command is None:
            unknown.append(f"{doc}: edgeport {name} (no such command)")
            continue
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        unknown += [f"{doc}: edgeport {name} {o}" for o in options if o not in known]
    assert unknown == []
