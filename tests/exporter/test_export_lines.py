"""What `edgeport export` says and leaves behind (issue 20, "misleading lines"): each line it
prints is true for what the user typed, once; it leaves only the bundle in the output folder.

The model is a tiny user factory (a few seconds per export on a CPU).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import invoke
from runtime.fsutil import LockHeld, lock_file

TINY = '''
import torch.nn as nn


def build(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))


class _Unexportable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        import torch

        return torch.special.bessel_j0(self.conv(x).mean((2, 3)))  # no ONNX symbolic: export fails


def unexportable():
    return _Unexportable()
'''


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    path = tmp_path_factory.mktemp("factory") / "tiny.py"
    path.write_text(TINY)
    return path


def _images(folder, count: int, gray: bool, seed: int = 0):
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    shape = (40, 40) if gray else (40, 40, 3)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _export(factory, out, *extra):
    return invoke("export", "--model", f"{factory}:build", "--input-size", "32", "--engine", "no",
                  "--output", str(out), *extra)


def test_weights_auto_does_not_claim_weights_none(factory, tmp_path):
    result = _export(factory, tmp_path / "out", "--weights", "auto", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "random-init weights" in result.output
    assert "--weights none" not in result.output  # the user typed auto


def test_unreadable_calibration_file_reported_once(factory, tmp_path):
    calib = _images(tmp_path / "calib", 6, gray=False)
    (calib / "broken.jpg").write_bytes(b"not an image")
    result = _export(factory, tmp_path / "out", "--int8", "--calib-data", str(calib), "--no-verify")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "broken.jpg" in line]
    assert len(lines) == 1, lines


def test_grayscale_calibration_for_rgb_factory_model_warns(factory, tmp_path):
    # A user factory: its channels are known only once loaded, yet the gray set must still be named.
    gray = _images(tmp_path / "gray", 6, gray=True)
    result = _export(factory, tmp_path / "out", "--int8", "--calib-data", str(gray), "--no-verify")
    assert result.exit_code == 0, result.output
    assert "holds only grayscale images, but the model takes 3-channel (RGB) input" in result.output


def test_export_leaves_only_the_bundle(factory, tmp_path):
    out = tmp_path / "out"
    result = _export(factory, out, "--no-verify")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["tiny_build"]  # no hidden .tiny_build.lock


def test_failed_export_leaves_no_empty_output_folder(factory, tmp_path):
    out = tmp_path / "new" / "exports"
    result = invoke("export", "--model", f"{factory}:unexportable", "--input-size", "32", "--num-classes", "4",
                    "--engine", "no", "--output", str(out))
    assert result.exit_code == 3, result.output
    assert "bessel_j0" in result.output
    assert not (tmp_path / "new").exists()


def test_failed_export_keeps_a_folder_that_existed(factory, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    result = invoke("export", "--model", f"{factory}:unexportable", "--input-size", "32", "--num-classes", "4",
                    "--engine", "no", "--output", str(out))
    assert result.exit_code == 3, result.output
    assert out.is_dir() and list(out.iterdir()) == []


def test_removed_lock_file_still_excludes(tmp_path):
    # A waiter that locked the file its holder deleted on release must not run beside a newcomer
    # that created a new file at the path: it locks the file at the path.
    path = tmp_path / ".net.lock"
    inside, release = threading.Event(), threading.Event()
    errors = []

    def waiter():
        with lock_file(path, wait=True, remove=True):
            inside.set()
            release.wait(10)

    with lock_file(path, wait=False, remove=True):
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not inside.wait(0.3)  # blocked while the first holder has it
    assert inside.wait(10)
    try:
        with lock_file(path, wait=False, remove=True):
            errors.append("a newcomer got the lock while the waiter held it")
    except LockHeld:
        pass
    finally:
        release.set()
        thread.join(10)
    assert errors == []
    assert not path.exists()  # the last holder removed it
