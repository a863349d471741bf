"""One table of precisions, one declaration of options, one version (issue 17, items 1, 6, 7).

The expected values come from docs/extending.md's table (written by hand), not from the
registry under test: the docs and the code must say the same, and every CLI choice list
must follow the table.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, invoke

DOC = REPO / "docs" / "extending.md"


def _doc_rows() -> list[list[str]]:
    text = DOC.read_text()
    table = text[text.index("<!-- precisions: begin -->"):text.index("<!-- precisions: end -->")]
    lines = [ln for ln in table.splitlines() if ln.startswith("| `")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [[c[1:-1] if c.startswith("`") and c.count("`") == 2 else c for c in row] for row in rows]


def _doc_keys() -> list[str]:
    return [row[0] for row in _doc_rows()]


def test_the_docs_table_lists_exactly_the_registry_rows():
    from runtime.precision import PRECISIONS

    def written_by(p):
        if p.export_flag is None:
            return "always"
        return f"`{p.export_flag}` (not with `{p.opt_out}`)" if p.opt_out else p.export_flag

    actual = [[p.key, p.artifact, written_by(p),
               ", ".join(f"{k} {v:g}" for k, v in p.tolerance.items()), ", ".join(p.engines) or "none",
               "ONNX Runtime CPU only" if p.cpu_only else "every backend"] for p in PRECISIONS.values()]
    assert actual == _doc_rows()


def test_cli_precision_choices_follow_the_table():
    keys = _doc_keys()
    built = [row[0] for row in _doc_rows() if row[4] != "none"]
    predict = invoke("predict", "--help").output
    assert f"[{'|'.join(keys)}]" in predict
    for command in ("verify", "bench"):
        help_text = " ".join(invoke(command, "--help").output.split())
        assert f"choices: {', '.join(keys)}, all" in help_text, command
    triton = " ".join(invoke("triton", "--help").output.split())
    assert f"--precision {'|'.join(keys)}" in triton and f"--trt-precision {'|'.join(built)}" in triton
    cpu_only = [row[0] for row in _doc_rows() if row[5] == "ONNX Runtime CPU only"]
    result = invoke("build", "no-such-bundle", "--precision", cpu_only[0])
    assert result.exit_code == 2 and f"is not one of {', '.join(built)}, all" in result.output


def test_default_tolerances_are_the_tables():
    from runtime.compare import DEFAULT_TOLERANCES

    for key, *_, tolerance, _engines, _runs in _doc_rows():
        expected = {k: float(v) for k, v in (item.split() for item in tolerance.split(", "))}
        got = {k: v for k, v in DEFAULT_TOLERANCES[key].to_dict().items() if v is not None}
        assert got == expected, key


def test_a_new_row_reaches_every_choice_list():
    """Adding a precision is one row: an FP8 row added before the CLI is imported shows up in
    every choice list, the tolerances, the report colours and the re-export hint."""
    script = textwrap.dedent("""
        import dataclasses, types
        import runtime.precision as reg
        fp8 = dataclasses.replace(reg.PRECISIONS["fp16"], key="fp8", artifact="model.fp8.onnx", label="FP8",
                                  export_flag="--fp8", color="#000000")
        reg.PRECISIONS = types.MappingProxyType({**reg.PRECISIONS, "fp8": fp8})
        from click.testing import CliRunner
        from edgeport.cli import cli
        for command in ("verify", "bench", "predict", "triton"):
            print(command, "fp8" in CliRunner().invoke(cli, [command, "--help"]).output)
        print("build", "fp8" in CliRunner().invoke(cli, ["build", "x", "--precision", "int9"]).output)
        from runtime.compare import DEFAULT_TOLERANCES
        from runtime.report.html_sections import PRECISION_COLORS
        print("tolerance", DEFAULT_TOLERANCES["fp8"].cosine_min == 0.999)
        print("colour", PRECISION_COLORS["fp8"] == "#000000")
        print("hint", "plus --fp8 (fp8: model.fp8.onnx)" in reg.reexport_hint(["fp8"], ["fp32"]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    lines = dict(ln.split() for ln in proc.stdout.splitlines())
    assert lines == {name: "True" for name in ("verify", "bench", "predict", "triton", "build", "tolerance",
                                                 "colour", "hint")}


@pytest.mark.parametrize("args", [
    ("export", "--model", "seed_resnet", "--budget-data", "x"),
    ("export", "--model", "seed_resnet", "--verify-data", "x"),
    ("export", "--model", "seed_resnet", "--verify-samples", "8"),
    ("report", "b", "--output", "x.html"),
    ("report", "b", "-o", "x.html"),
    ("sensitivity", "b", "--samples", "8"),
    ("verify", "b", "--data", "x"),
    ("verify", "b", "--data-samples", "8"),
])
def test_old_option_spellings_are_unknown(args):
    result = invoke(*args)
    assert result.exit_code == 2 and f"No such option '{args[-2]}'" in result.output


def test_one_version_string():
    import edgeport
    import exporter
    import runtime

    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'version = {attr = "runtime.__version__"}' in pyproject
    assert not re.search(r'^version\s*=\s*"', pyproject, re.M)
    literals = [p for pkg in ("edgeport", "exporter", "runtime") for p in (REPO / pkg).rglob("*.py")
                if re.search(r'^__version__\s*=', p.read_text(), re.M)]
    assert [p.relative_to(REPO).as_posix() for p in literals] == ["runtime/__init__.py"]
    assert edgeport.__version__ == exporter.__version__ == runtime.__version__


def test_contradicting_cache_options_are_refused_by_the_library(tmp_path):
    # Before: build(timing_cache=..., no_timing_cache=True) silently built without the cache.
    from runtime.engines.build import BuildOptions
    from runtime.errors import UsageError

    with pytest.raises(UsageError, match="--timing-cache and --no-timing-cache contradict"):
        BuildOptions(timing_cache=tmp_path / "t.cache", no_timing_cache=True)
    with pytest.raises(UsageError, match="--runtime-cache and --no-runtime-cache contradict"):
        BuildOptions(runtime="tensorrt-rtx", runtime_cache=tmp_path / "r.cache", no_runtime_cache=True)
