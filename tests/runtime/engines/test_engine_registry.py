"""The engine-runtime registry is the one place a runtime is added (docs/tensorrt.md, "Adding an engine runtime").

The CLI's --runtime choices, the engine backends of --backend (and their help), the runner
loader and the docs' list must all equal runtime.engines.registry.ENGINE_RUNTIMES; each entry
implements the EngineRuntime protocol and owns its module. Also: no code outside the registry's
runtime modules compares a runtime's name.
"""

from __future__ import annotations

import re

import pytest

from conftest import REPO, invoke
from runtime.engines.registry import DEFAULT_RUNTIME, ENGINE_RUNTIMES, EngineRuntime, engine_runtime
from runtime.errors import UsageError

DOCS = REPO / "docs" / "tensorrt.md"


def _docs_runtimes() -> dict[str, str]:
    text = DOCS.read_text()
    block = re.search(r"<!-- engine-runtimes:.*?-->\n(.*?)<!-- /engine-runtimes -->", text, re.S)
    assert block, "docs/tensorrt.md lost its engine-runtimes list"
    return dict(re.findall(r"^- `([\w.-]+)`: `([\w/.]+)`$", block.group(1), re.M))


def test_cli_runtime_choices_are_the_registry():
    from edgeport.cli.build import build

    option = next(p for p in build.params if p.name == "runtime")
    assert list(option.type.choices) == list(ENGINE_RUNTIMES) and option.default == DEFAULT_RUNTIME
    help_text = invoke("build", "--help").output
    for name, rt in ENGINE_RUNTIMES.items():
        assert f"{name}: {rt.help}" in " ".join(help_text.split())


def test_backend_choices_and_help_list_every_backend():
    from runtime.runners.loader import BACKENDS

    # ONNX Runtime, one backend per engine runtime, and OpenVINO (the CPU runtimes beside them)
    assert list(BACKENDS) == ["onnxruntime", *ENGINE_RUNTIMES, "openvino"]
    help_text = " ".join(invoke("verify", "--help").output.split())
    for name in BACKENDS:
        assert f"{name}:" in help_text, name


def test_docs_list_each_runtime_with_its_module():
    listed = _docs_runtimes()
    assert list(listed) == list(ENGINE_RUNTIMES)
    for name, module in listed.items():
        assert (REPO / module).is_file()
        assert type(ENGINE_RUNTIMES[name]).__module__ == module.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("name", list(ENGINE_RUNTIMES))
def test_each_entry_implements_the_protocol(name):
    rt = ENGINE_RUNTIMES[name]
    assert isinstance(rt, EngineRuntime) and rt.name == name and engine_runtime(name) is rt
    missing = [m for m in EngineRuntime.__protocol_attrs__ if not hasattr(rt, m)] \
        if hasattr(EngineRuntime, "__protocol_attrs__") else []
    assert not missing
    from runtime.runners.base import Runner

    assert issubclass(rt.runner_class(), Runner)


def test_unknown_runtimes_are_refused_with_the_choices():
    with pytest.raises(UsageError, match="Unknown runtime 'tensorrt-llm'; choose tensorrt or tensorrt-rtx"):
        engine_runtime("tensorrt-llm")


# Files allowed to spell a runtime's name: the runtimes' own modules and the runners they name.
OWNERS = {"runtime/engines/tensorrt.py", "runtime/engines/tensorrt_rtx.py", "runtime/engines/rtx.py",
          "runtime/runners/tensorrt.py", "runtime/runners/tensorrt_rtx.py"}
COMPARISON = re.compile(r"""(==|!=|\bin\b|\bnot in\b)\s*\(?\s*["'](tensorrt|tensorrt-rtx)["']|["'](tensorrt|tensorrt-rtx)["']\s*(==|!=)""")


def test_no_runtime_name_comparisons_outside_the_registry():
    offenders = []
    for package in ("runtime/engines", "runtime/runners", "edgeport", "runtime/machine.py"):
        paths = [REPO / package] if package.endswith(".py") else sorted((REPO / package).rglob("*.py"))
        for path in paths:
            rel = path.relative_to(REPO).as_posix()
            if rel in OWNERS:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if COMPARISON.search(line) and "provider" not in line:
                    offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
