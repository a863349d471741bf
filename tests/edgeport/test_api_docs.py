"""docs/api.md's examples run as written: every ```python block, in order, in one namespace,
in an empty folder (a doc example that drifts from the API fails here)."""

from __future__ import annotations

import re

from conftest import REPO


def test_api_doc_examples_run(tmp_path, monkeypatch, capsys):
    text = (REPO / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__api_doc__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md[python block {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "passed" in out and "int8 runs model.int8-cpu.onnx" in out
    assert "UsageError -> Batch 64 exceeds the bundle's maximum batch 8" in out
    assert (tmp_path / "exports" / "tiny" / "manifest.json").is_file()
