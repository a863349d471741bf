"""The architecture as contracts: which package may import what.

- ``runtime`` (the device side) never imports torch, torchvision, onnxsim, click, ``exporter``
  or the ``edgeport`` facade;
- ``exporter`` never imports click or ``edgeport``;
- only ``edgeport/cli`` imports click;
- the device commands (verify, bench, predict, build) run on an install without torch and
  never import ``exporter``: proven by running them with those packages made unimportable.

Imports by string (``importlib.import_module("torch")``, ``optional_import("torch")``,
``__import__``) count as imports: the one sanctioned exception is PyTorch's CUDA allocator as
an optional fallback for engine buffers (OPTIONAL_TORCH), probed at run time and never required.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

EXPORT_ONLY = {"torch", "torchvision", "onnxsim"}
# runtime modules that may probe torch by name for CUDA buffers when cuda-python is missing
OPTIONAL_TORCH = {"runtime/engines/cuda_mem.py", "runtime/engines/device.py"}
STRING_IMPORTERS = {"import_module", "optional_import", "__import__", "find_spec"}


def _string_import(node: ast.AST) -> str | None:
    """The module named by ``import_module("x")``-style calls (any callee spelled like an importer)."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    arg = node.args[0]
    if name in STRING_IMPORTERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in ``path`` (module level or inside functions,
    by statement or by string)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif _string_import(node):
            names.add(_string_import(node).split(".")[0])
    return names


def test_string_imports_are_seen():
    """The contract below must see ``optional_import("torch")``, or it proves nothing."""
    code = "def f():\n    return optional_import('torch'), importlib.import_module('onnxsim.x')\n"
    tree = ast.parse(code)
    assert {_string_import(n) for n in ast.walk(tree)} - {None} == {"torch", "onnxsim.x"}


def _files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [
    ("runtime", EXPORT_ONLY | {"click", "exporter", "edgeport"}),
    ("exporter", {"click", "edgeport"}),
])
def test_imports_point_one_way(package, forbidden):
    offenders = {}
    for p in _files(package):
        rel = str(p.relative_to(REPO))
        bad = _imports(p) & forbidden
        if rel in OPTIONAL_TORCH:
            bad -= {"torch"}
        offenders[rel] = sorted(bad)
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_cli_imports_click():
    users = sorted(str(p.relative_to(REPO)) for pkg in ("runtime", "exporter", "edgeport") for p in _files(pkg)
                   if "click" in _imports(p))
    assert users and all(u.startswith("edgeport/cli/") for u in users), users


def _module_graph() -> dict[str, set[str]]:
    """edgeport's own modules -> the edgeport modules each imports (function-level imports too)."""
    packages = ("runtime", "exporter", "edgeport")
    graph = {}
    for pkg in packages:
        for path in _files(pkg):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_pkg else parts)
            deps = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    if node.level:
                        target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    deps |= {target} | {f"{target}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names}
            graph[name] = {d for d in deps if d.split(".")[0] in packages}
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def test_no_import_circles():
    """No module imports (even lazily) a module that imports it back, directly or through others."""
    graph = _module_graph()
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    cycles.append(" -> ".join(path + [start]))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
    assert sorted(set(cycles))[:5] == []


def test_no_private_names_used_across_modules():
    """``from x import _name`` across modules: private helpers stay private (make them public)."""
    offenders = []
    for pkg in ("runtime", "exporter", "edgeport"):
        for path in _files(pkg):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    offenders += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names
                                  if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


def _blocked_env(tmp_path, blocked) -> dict:
    """PYTHONPATH that makes ``blocked`` top-level packages fail to import, then the repo."""
    block = tmp_path / "blocked"
    block.mkdir(exist_ok=True)
    for name in blocked:
        (block / name).mkdir(exist_ok=True)
        (block / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported here')\n")
    return {"PYTHONPATH": f"{block}{':'}{REPO}"}


def test_device_commands_never_import_the_export_side(exported, copy_bundle, tmp_path):
    bundle = copy_bundle(exported("--model", "seed_resnet", "--weights", "none", "--int8", "--max-batch", "4"))
    env = _blocked_env(tmp_path, EXPORT_ONLY | {"exporter"})
    photo = next((REPO / "exporter" / "assets" / "golden").glob("*.jpg"))
    for args in (["verify", bundle], ["bench", bundle, "--iterations", "2", "--warmup", "0"],
                 ["predict", bundle, photo, "--precision", "int8"], ["report", bundle]):
        proc = run_cli(*args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "must not be imported" not in proc.stderr
    # build: no TensorRT here -> its own clear error, not an import of the export side
    proc = run_cli("build", bundle, env=env)
    assert proc.returncode != 0 and "must not be imported" not in proc.stderr and "Traceback" not in proc.stderr
    # --help of every command works without the export side too
    proc = run_cli("export", "--help", env=env)
    assert proc.returncode == 0 and "--model" in proc.stdout


def test_import_edgeport_and_open_a_bundle_without_torch(exported, tmp_path):
    bundle = exported("--model", "seed_resnet", "--weights", "none", "--int8", "--max-batch", "4")
    env = _blocked_env(tmp_path, EXPORT_ONLY | {"exporter", "click"})
    code = ("import edgeport, numpy as np\n"
            f"b = edgeport.Bundle.open({str(bundle)!r})\n"
            "with b.runner('int8') as r:\n"
            "    out = r.infer(np.zeros((2, 3, 32, 32), np.float32))\n"
            "print(sorted(out), out[b.output_name].shape)\n")
    import os
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['logits'] (2, 10)"
