"""A wheel install works like the checkout.

The wheel is built from a copy of the source tree (pip builds in place and would write build/
and *.egg-info into the checkout), offline with the test environment's setuptools. It must
carry the default calibration images (their one source is calib_data/) and the golden photos,
and build without deprecation warnings.

Installing it: a fresh venv gets the wheel alone (--no-deps), and sees torch, onnx and
onnxruntime through a .pth file holding the path of this environment's site-packages. A path
line in a .pth only appends that folder to sys.path: the .pth files inside it are not
processed, so the shared environment's editable edgeport (a .pth-installed import hook) stays
invisible, and `import exporter` can only find the installed wheel. The runtime-only check on
Python 3.10 installs numpy/onnxruntime/click/pillow from the wheelhouse `make setup` downloads
(no network inside a test; marked slow, skipped when python3.10 or the wheelhouse is missing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

WHEELHOUSE = REPO / ".wheelhouse-py310"  # `make setup`: edgeport's runtime dependencies for Python 3.10

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TINY_MODEL = """
import torch.nn as nn


def build(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _images(folder: Path) -> dict[str, str]:
    return {f.name: _sha(f.read_bytes()) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES}


def _copy_source(dst: Path) -> None:
    """The files git would commit (tracked + untracked, not ignored), or the tree minus build junk."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        for rel in listed.stdout.decode().split("\0"):
            src = REPO / rel
            if rel and src.is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst / rel)
        return
    shutil.copytree(REPO, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".wheelhouse*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "exports"))


def _clean_env(**extra) -> dict:
    """This test session's environment (offline, its TORCH_HOME) without PYTHONPATH or a venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(the built wheel, the build's full log)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    _copy_source(src)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(work / "dist"), "-v"], capture_output=True, text=True,
                           env=_clean_env(), timeout=600)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    wheels = list((work / "dist").glob("edgeport-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], log


def test_wheel_builds_without_deprecation_warnings(wheel):
    _, log = wheel
    assert "deprecat" not in log.lower(), [ln for ln in log.splitlines() if "eprecat" in ln][:5]
    assert "project.license" not in log


def test_wheel_carries_the_calibration_set_and_golden_photos(wheel):
    path, _ = wheel
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        shipped = {n.rsplit("/", 1)[1]: _sha(z.read(n)) for n in names
                   if n.startswith("exporter/assets/calib/") and n.lower().endswith(IMAGE_SUFFIXES)}
        golden = {n.rsplit("/", 1)[1]: _sha(z.read(n)) for n in names
                  if n.startswith("exporter/assets/golden/") and n.lower().endswith(IMAGE_SUFFIXES)}
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    # Byte for byte the repository's images: one source, nothing drifting.
    assert shipped == _images(REPO / "calib_data") and len(shipped) == 80
    assert golden == _images(REPO / "exporter" / "assets" / "golden") and golden
    assert "exporter/assets/calib/README.md" in names  # the licenses travel with the images
    assert "License-Expression: Apache-2.0" in metadata
    # The source tree holds no second copy.
    assert not (REPO / "exporter" / "assets" / "calib").exists()


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed and this environment's packages (torch, onnx, ...)
    visible, but not its editable edgeport."""
    path, _ = wheel
    venv = tmp_path_factory.mktemp("wheel_env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "--force-reinstall", "-q", str(path)], capture_output=True, text=True,
                             env=_clean_env(), timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    return venv


def test_wheel_install_exports_int8_outside_the_checkout(wheel_env, tmp_path):
    python, edgeport = wheel_env / "bin" / "python", wheel_env / "bin" / "edgeport"
    env = _clean_env(EDGEPORT_CACHE=str(tmp_path / "cache"))  # a fresh cache: calibrate for real
    where = subprocess.run([str(python), "-c", "import exporter, torch; print(exporter.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=300)
    assert where.returncode == 0, where.stderr
    installed = Path(where.stdout.strip()).parent
    assert installed.is_relative_to(wheel_env) and not installed.is_relative_to(REPO)
    (tmp_path / "tiny.py").write_text(TINY_MODEL)
    run = subprocess.run([str(edgeport), "export", "--model", "tiny.py:build", "--num-classes", "4", "--input-size",
                          "16", "--int8", "--engine", "no", "-o", "out"], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "tiny_build" / "manifest.json").read_text())
    calibrated = manifest["int8"]
    assert calibrated["calibrated"] is True
    assert calibrated["samples"] == len(_images(REPO / "calib_data")) == 80
    assert Path(calibrated["calibration_source"]["path"]).resolve() == (installed / "assets" / "calib").resolve()
    # The golden set came from the photos in the wheel: every one of them is in it.
    import numpy as np

    with np.load(tmp_path / "out" / "tiny_build" / "golden.npz") as z:
        golden_names = {str(n).split("#")[0] for n in z["names"]}
    assert golden_names == set(_images(REPO / "exporter" / "assets" / "golden"))


def _python310() -> str | None:
    """A working Python 3.10 (a pyenv shim may exist without the version behind it)."""
    for candidate in (shutil.which("python3.10"), *sorted(Path("/root/.pyenv/versions").glob("3.10.*/bin/python"))):
        if not candidate:
            continue
        try:
            probe = subprocess.run([str(candidate), "-c", "import sys, venv; print(sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 10)":
            return str(candidate)
    return None


@pytest.mark.slow
def test_runtime_only_wheel_on_python310(wheel, exported, tmp_path):
    """Python 3.10, no torch: `pip install edgeport-*.whl onnxruntime numpy click pillow`, then
    `edgeport --help` and `edgeport verify` on a bundle exported here."""
    python310 = _python310()
    if python310 is None:
        pytest.skip("python3.10 is not installed")
    bundle = tmp_path / "bundle"
    model = tmp_path / "tiny.py"
    model.write_text(TINY_MODEL)
    shutil.copytree(exported("--model", f"{model}:build", "--num-classes", "4", "--input-size", "16", "--fp16",
                             "--int8"), bundle)
    venv = tmp_path / "venv310"
    subprocess.run([python310, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    # No network inside a test: the runtime dependencies come from the wheelhouse `make setup` downloads.
    if not any(WHEELHOUSE.glob("onnxruntime-*.whl")):
        pytest.skip(f"no Python 3.10 wheelhouse at {WHEELHOUSE} (`make setup` downloads it)")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                              "--no-index", "--find-links", str(WHEELHOUSE), str(wheel[0]), "onnxruntime", "numpy",
                              "click", "pillow"], capture_output=True, text=True, env=_clean_env(), timeout=900)
    assert install.returncode == 0, install.stderr.strip()[-1000:]
    env = _clean_env()
    no_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, env=env)
    assert no_torch.returncode != 0  # a runtime-only install
    helped = subprocess.run([str(venv / "bin" / "edgeport"), "--help"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert helped.returncode == 0 and "verify" in helped.stdout, helped.stderr
    verified = subprocess.run([str(venv / "bin" / "edgeport"), "verify", str(bundle)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=600)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    for precision in ("fp32", "fp16", "int8"):
        assert f"| {precision} | onnxruntime/cpu |" in verified.stdout
    assert "FAIL" not in verified.stdout
