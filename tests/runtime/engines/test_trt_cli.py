"""The TensorRT layer on a machine without TensorRT (and without torch): clean errors, imports, --help.

Subprocesses run with a sitecustomize that makes tensorrt, torch and torchvision
unimportable (a meta-path finder raising ModuleNotFoundError), as on a Jetson with only
numpy + onnxruntime, or a CI machine without TensorRT.
"""

from __future__ import annotations

import json
import os
import platform
import sys

import pytest

from conftest import REPO, invoke, run_cli
from trt_fake import make_bundle, sidecar_dict

BLOCKER = '''
import sys


class _Blocked:
    """Makes these packages look uninstalled for this interpreter (edgeport tests)."""

    names = {"tensorrt", "torch", "torchvision"}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
'''


@pytest.fixture
def bare_env(tmp_path):
    """Environment for run_cli: tensorrt/torch blocked, cache dirs under tmp_path."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {"PYTHONPATH": f"{site}{os.pathsep}{REPO}", "EDGEPORT_CACHE": str(tmp_path / "cache")}


def run_python(code: str, env: dict, timeout=300):
    import subprocess

    full = dict(os.environ)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=timeout)


def test_blocker_really_blocks(bare_env):
    r = run_python("import torch", bare_env)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr
    r = run_python("import tensorrt", bare_env)
    assert r.returncode != 0 and "No module named 'tensorrt'" in r.stderr


def test_build_without_tensorrt_says_what_to_install_in_one_paragraph(tmp_path, bare_env):
    bundle = make_bundle(tmp_path / "net")
    r = run_cli("build", bundle, "--precision", "fp16", "--max-batch", "2", env=bare_env)
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one paragraph, no traceback
    text = lines[0]
    assert text.startswith("edgeport: error: edgeport build needs NVIDIA TensorRT's Python package")
    assert "No module named 'tensorrt'" in text
    assert "JetPack" in text and "pip install tensorrt" in text and "cuda-python" in text
    assert text.endswith(f"run: edgeport build {bundle} --precision fp16 --max-batch 2")
    assert not list(bundle.glob("*.engine*"))


def test_build_max_batch_above_the_bundle_is_a_usage_error_even_without_tensorrt(tmp_path, bare_env):
    # Before: "TensorRT is missing ... run: edgeport build ... --max-batch 16", a command the
    # device would then refuse. The option is wrong whatever the machine: say so first.
    bundle = make_bundle(tmp_path / "net", max_batch=4)
    r = run_cli("build", bundle, "--max-batch", "16", env=bare_env)
    assert r.returncode == 2, r.stderr
    assert "--max-batch 16 exceeds the bundle's maximum batch 4" in r.stderr and "TensorRT" not in r.stderr


def test_verify_backend_tensorrt_without_tensorrt_is_clean(tmp_path, bare_env):
    bundle = make_bundle(tmp_path / "net")
    r = run_cli("verify", bundle, "--backend", "tensorrt", env=bare_env)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    # The missing part is named, with how to get it and the backend that runs without it; `edgeport build`
    # is not suggested: it would fail for the same reason.
    assert "--backend tensorrt needs NVIDIA TensorRT's Python package" in r.stderr
    assert "pip install tensorrt" in r.stderr and "JetPack" in r.stderr and "--backend onnxruntime" in r.stderr
    assert "edgeport build" not in r.stderr and "engines yet" not in r.stderr
    # With an engine present, the missing TensorRT is what is reported too.
    (bundle / "model.fp16.sm87.trt10.3.0.engine").write_bytes(b"x")
    (bundle / "model.fp16.sm87.trt10.3.0.engine.json").write_text(json.dumps(sidecar_dict()))
    r = run_cli("verify", bundle, "--backend", "tensorrt", env=bare_env)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "--backend tensorrt needs NVIDIA TensorRT's Python package" in r.stderr


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="elsewhere the hint is to build on x86_64 or with JetPack's TensorRT")
def test_verify_backend_tensorrt_rtx_without_its_libraries_names_them(tmp_path, bare_env):
    from runtime.engines.rtx import MODULES

    site = tmp_path / "blocker"  # bare_env's blocker, extended to TensorRT-RTX's modules
    (site / "sitecustomize.py").write_text(BLOCKER.replace('"torchvision"}', '"torchvision", ' +
                                                           ", ".join(map(repr, MODULES)) + "}"))
    bundle = make_bundle(tmp_path / "net")
    r = run_cli("verify", bundle, "--backend", "tensorrt-rtx", env=bare_env)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "--backend tensorrt-rtx needs NVIDIA TensorRT-RTX's Python package" in r.stderr
    assert "edgeport[rtx]" in r.stderr and "--backend onnxruntime" in r.stderr
    assert "edgeport build" not in r.stderr  # TensorRT-RTX builds need the same libraries


IMPORT_ALL = r'''
import importlib, pkgutil, sys
import runtime, exporter

# exporter.models.seed defines nn.Module subclasses: it needs torch by nature.
NEEDS_TORCH = {"exporter.models.seed"}
failed, torch_only = [], []
for pkg in (runtime, exporter):
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError as exc:
            (torch_only if mod.name in NEEDS_TORCH and "torch" in str(exc) else failed).append(f"{mod.name}: {exc}")
print("FAILED", failed)
print("TORCH_ONLY", torch_only)
print("LOADED", sorted(m for m in ("torch", "tensorrt", "onnx") if m in sys.modules))
print("TRT_MODULES", sorted(m for m in sys.modules if m.startswith("runtime.engines")))
'''


def test_every_module_imports_without_torch_and_tensorrt(bare_env):
    r = run_python(IMPORT_ALL, bare_env)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert out["FAILED"] == "[]", out["FAILED"]
    assert "torch" not in out["LOADED"] and "tensorrt" not in out["LOADED"]
    for name in ("policy", "device", "sidecar", "builder", "build", "cuda_mem", "timing_cache", "calibration", "rtx"):
        assert f"runtime.engines.{name}" in out["TRT_MODULES"]


HELP_ALL = r'''
from click.testing import CliRunner
from edgeport.cli import cli

runner = CliRunner()
names = sorted(cli.commands)
print("COMMANDS", " ".join(names))
for args in [["--help"]] + [[name, "--help"] for name in names]:
    result = runner.invoke(cli, args)
    print("HELP", " ".join(args), result.exit_code, "Usage:" in result.output, repr(result.exception))
'''


def test_every_command_help_without_torch_and_tensorrt(bare_env):
    r = run_python(HELP_ALL, bare_env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    commands = lines[0].split()[1:]
    assert {"build", "verify", "export", "models"} <= set(commands)
    helps = [line.split() for line in lines[1:]]
    assert len(helps) == len(commands) + 1
    bad = [h for h in helps if h[-3:-1] != ["0", "True"]]
    assert not bad, bad


def test_verify_onnxruntime_works_without_torch_and_tensorrt(exported, copy_bundle, bare_env):
    bundle = copy_bundle(exported("--model", "resnet18", "--weights", "none", "--input-size", "64", "--fp16",
                                  "--max-batch", "8"))
    r = run_cli("verify", bundle, env=bare_env)
    assert r.returncode == 0, r.stderr
    assert "| fp32 | onnxruntime/cpu |" in r.stdout and "| fp16 | onnxruntime/cpu |" in r.stdout
    assert "FAIL" not in r.stdout


def test_export_engine_yes_without_tensorrt_fails_before_exporting(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    out = tmp_path / "out"
    r = invoke("export", "--model", "seed_resnet", "--weights", "none", "--engine", "yes", "-o", out)
    assert r.exit_code == 3
    assert "`edgeport export --engine yes` needs NVIDIA TensorRT" in r.output and "JetPack" in r.output
    assert "Traceback" not in r.output
    assert not (out / "seed_resnet").exists()  # nothing was exported


def test_export_engine_auto_prints_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    out = tmp_path / "out"
    r = invoke("export", "--model", "seed_resnet", "--weights", "none", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    bundle = out / "seed_resnet"
    assert (f"TensorRT engines were not built (TensorRT is not installed here); on the target, run: "
            f"edgeport build {bundle} --precision all") in r.output
    assert not list(bundle.glob("*.engine"))
    r = invoke("export", "--model", "seed_resnet", "--weights", "none", "-o", out, "-q", "--engine", "no")
    assert r.exit_code == 0 and "edgeport build" not in r.output


def test_build_help_lists_the_options():
    r = invoke("build", "--help")
    assert r.exit_code == 0
    for option in ("--precision", "--min-batch", "--opt-batch", "--max-batch", "--workspace", "--dla-core",
                   "--gpu-fallback", "--timing-cache", "--builder-level", "--hardware-compat", "--version-compatible",
                   "--build-path"):
        assert option in r.output


@pytest.mark.gpu
@pytest.mark.trt
def test_build_and_verify_on_a_real_gpu(exported, copy_bundle, tmp_path):
    """Only on a machine with TensorRT and a GPU (skipped elsewhere by the conftest hook)."""
    bundle = copy_bundle(exported("--model", "resnet18", "--weights", "none", "--input-size", "64", "--fp16",
                                  "--max-batch", "8"))
    env = {"EDGEPORT_CACHE": str(tmp_path / "cache")}
    r = run_cli("build", bundle, "--precision", "fp32", "--precision", "fp16", env=env)
    assert r.returncode == 0, r.stderr
    assert len(list(bundle.glob("*.engine"))) == 2 and len(list(bundle.glob("*.engine.json"))) == 2
    r = run_cli("verify", bundle, "--backend", "tensorrt", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| fp16 | tensorrt/gpu |" in r.stdout
