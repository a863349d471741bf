"""Bad input, faults and interruptions: a clear message, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import EDGEPORT, REPO, invoke, run_cli

SEED = ("--model", "seed_resnet", "--no-verify")


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr
    return True


def bundle_is_consistent(bundle: Path) -> bool:
    from runtime.bundle import Bundle

    b = Bundle.open(bundle)
    for p in b.precisions:
        b.artifact_path(p)  # raises on any sha256 mismatch
    b.golden()
    return True


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


# -- models and options ------------------------------------------------------------------------
def test_input_size_the_model_cannot_take(tmp_path):
    src = tmp_path / "fixed.py"
    src.write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))\n")
    r = run_cli("export", "--model", f"{src}:build", "--input-size", "64", "-o", tmp_path / "o")
    assert r.returncode == 3 and "cannot take 64x64 inputs" in r.stderr and no_traceback(r)
    assert not (tmp_path / "o" / "fixed_build").exists()


@pytest.mark.parametrize("args", [
    ("verify", "x", "--threads", "0"),
    ("verify", "x", "--batch", "-3"),
    ("export", "--model", "resnet18", "--max-batch", "0"),
    ("export", "--model", "resnet18", "--input-size", "abc"),
    ("export", "--model", "resnet18", "--mean", "1,2"),
    ("export", "--model", "resnet18", "--calib-method", "magic"),
])
def test_nonsense_option_values_are_usage_errors(args):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output


def test_factory_that_raises(tmp_path):
    src = tmp_path / "boom.py"
    src.write_text("def build():\n    raise ValueError('no GPU, no party')\n")
    r = run_cli("export", "--model", f"{src}:build", "-o", tmp_path / "o")
    assert r.returncode == 3 and "raised ValueError: no GPU, no party" in r.stderr and no_traceback(r)
    debug = run_cli("--debug", "export", "--model", f"{src}:build", "-o", tmp_path / "o")
    assert debug.returncode == 3 and "Traceback" in debug.stderr


# -- weights --------------------------------------------------------------------------------------
def test_missing_and_truncated_weights(tmp_path):
    r = run_cli("export", "--model", "seed_resnet", "--weights", tmp_path / "none.pth", "-o", tmp_path / "o")
    assert r.returncode == 2 and "does not exist" in r.stderr and no_traceback(r)
    import torch

    from exporter.models.seed import seed_resnet

    full = tmp_path / "full.pth"
    torch.save(seed_resnet().state_dict(), full)
    data = full.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 3])
    r = run_cli("export", "--model", "seed_resnet", "--weights", tmp_path / "cut.pth", "-o", tmp_path / "o")
    assert r.returncode == 3 and "not a readable PyTorch checkpoint" in r.stderr and no_traceback(r)


# -- verification data ------------------------------------------------------------------------------
def _write_images(folder: Path):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.jpg")
    Image.fromarray(rgb[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 50), 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(folder / "deep16.png")
    Image.fromarray(rgb[:2, :2]).save(folder / "tiny.bmp")
    (folder / "sub").mkdir(exist_ok=True)
    Image.fromarray(rgb).save(folder / "sub" / "nested.webp")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")


def test_preprocess_modes_match_rgb(tmp_path):
    """16-bit, palette, RGBA, CMYK and grayscale all come out as sane 8-bit RGB crops."""
    from runtime.preprocess import Preprocessing, list_images, load_folder

    _write_images(tmp_path / "imgs")
    pre = Preprocessing(resize=36, crop=32)
    files = list_images(tmp_path / "imgs")
    rel = [f.relative_to(tmp_path / "imgs").as_posix() for f in files]
    assert rel == sorted(rel) and "sub/nested.webp" in rel and "notes.txt" not in rel
    loaded = load_folder(files, pre, root=tmp_path / "imgs")
    assert loaded.images.shape[1:] == (32, 32, 3) and loaded.images.dtype == np.uint8
    assert [s[0] for s in loaded.skipped] == ["corrupt.jpg"]
    by_name = dict(zip(loaded.names, loaded.images))
    gray, deep = by_name["gray.png"].astype(int), by_name["deep16.png"].astype(int)
    assert np.abs(gray - deep).max() <= 1  # 16-bit scaled down, not clipped to white
    assert (gray[..., 0] == gray[..., 1]).all()


def test_golden_data_folder_problems(tmp_path):
    out = tmp_path / "o"
    r = run_cli("export", *SEED, "--golden-data", tmp_path / "missing", "-o", out)
    assert r.returncode == 2 and "does not exist" in r.stderr and no_traceback(r)
    (tmp_path / "empty").mkdir()
    r = run_cli("export", *SEED, "--golden-data", tmp_path / "empty", "-o", out)
    assert r.returncode == 2 and "no image files" in r.stderr
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    (tmp_path / "texts" / "b.jpg").write_text("not a jpeg")
    r = run_cli("export", *SEED, "--golden-data", tmp_path / "texts", "-o", out)
    assert r.returncode == 3 and "could be read" in r.stderr and "b.jpg" in r.stderr
    assert not (out / "seed_resnet").exists()
    _write_images(tmp_path / "mixed")
    r = run_cli("export", "--model", "seed_resnet", "--golden-data", tmp_path / "mixed", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "skipped 1 unreadable" in r.stderr and "corrupt.jpg" in r.stderr
    manifest = json.loads((out / "seed_resnet" / "manifest.json").read_text())
    assert manifest["golden"]["samples"] == 8 and manifest["golden"]["skipped"] == 1


def test_huge_image_is_refused_not_decoded(tmp_path):
    from PIL import Image

    from runtime.preprocess import MAX_PIXELS, load_rgb

    big = tmp_path / "big.png"
    # A 1-bit PNG of 10000 x 10000 pixels is tiny on disk but 100 M pixels decoded.
    Image.new("1", (10000, 10000)).save(big)
    assert 10000 * 10000 > MAX_PIXELS
    with pytest.raises((ValueError, Image.DecompressionBombError)):
        load_rgb(big, min_side=32)


# -- bundles ------------------------------------------------------------------------------------------
def test_bundle_problems(exported, copy_bundle, tmp_path):
    bundle = copy_bundle(exported("--model", "seed_resnet"))
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("verify", f)
    assert r.returncode == 2 and "is a file" in r.stderr and no_traceback(r)
    (bundle / "golden.npz").unlink()
    r = run_cli("verify", bundle)
    assert r.returncode == 3 and "missing golden.npz" in r.stderr
    (bundle / "manifest.json").write_text("{ not json")
    r = run_cli("verify", bundle)
    assert r.returncode == 3 and "not valid JSON" in r.stderr and no_traceback(r)


# -- numerics --------------------------------------------------------------------------------------------
def test_fp16_overflow_fails_the_check(tmp_path):
    src = tmp_path / "hot.py"
    src.write_text(
        "import torch, torch.nn as nn\n"
        "class Hot(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 3)\n"
        "        nn.init.constant_(self.conv.weight, 100.0)\n"
        "        self.fc = nn.Linear(4, 3)\n"
        "    def forward(self, x):\n"
        "        y = self.conv(x)\n"
        "        y = (y * y).mean(dim=(2, 3))  # ~1e7: fine in FP32, inf in FP16\n"
        "        return self.fc(y) / 1e6\n"
        "def build():\n    return Hot()\n")
    r = run_cli("export", "--model", f"{src}:build", "--input-size", "32", "--fp16", "-o", tmp_path / "o")
    assert r.returncode == 1, r.stderr  # an accuracy check failed, reports written
    report = json.loads((tmp_path / "o" / "hot_build" / "report.json").read_text())
    fp16 = next(x for x in report["results"] if x["precision"] == "fp16")
    assert fp16["passed"] is False
    assert any("FP16 overflow" in f for f in fp16["failures"]), fp16["failures"]
    assert fp16["fp16_range"]["overflowing_count"] >= 1
    fp32 = next(x for x in report["results"] if x["precision"] == "fp32")
    assert fp32["passed"] is True


def test_nan_outputs_never_pass():
    from runtime.compare import Tolerance, compare

    ref = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    out = ref.copy()
    out[2, 3] = np.nan
    c = compare(out, ref, backend="b", provider="p", precision="fp32", tolerance=Tolerance())
    assert not c.passed and c.nonfinite == 1


# -- environment: disk full, unwritable output ----------------------------------------------------------------
def test_disk_full_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import exporter.onnx_export as onnx_export

    out = tmp_path / "o"
    assert invoke("export", *SEED, "-o", out, "-q").exit_code == 0
    before = (out / "seed_resnet" / "model.onnx").read_bytes()

    def full_disk(model, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_export, "save", full_disk)
    r = invoke("export", *SEED, "--fp16", "-o", out)
    assert r.exit_code == 3 and "No space left" in r.output
    assert (out / "seed_resnet" / "model.onnx").read_bytes() == before
    assert leftovers(out) == []


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    r = run_cli("export", *SEED, "-o", f)
    assert r.returncode == 2 and "not a folder" in r.stderr and no_traceback(r)


def test_unwritable_output_folder(tmp_path):
    """A folder without write permission (as a normal user) or, as root, where permissions
    do not bind, a sysfs path the kernel refuses to create folders in."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o555)
        target = ro / "sub"
    elif Path("/sys/kernel").is_dir():
        target = Path("/sys") / f"edgeport-unwritable-{os.getpid()}" / "sub"
    else:
        pytest.skip("running as root without sysfs: no unwritable folder to test with")
    try:
        r = run_cli("export", *SEED, "-o", target)
    finally:
        if os.geteuid() != 0:
            os.chmod(tmp_path / "ro", 0o755)
    assert r.returncode == 3, r.stderr
    assert "Cannot write" in r.stderr or "not writable" in r.stderr
    assert no_traceback(r)


# -- interruptions and concurrency ---------------------------------------------------------------------------
def _start_export(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([*EDGEPORT, "export", "--model", "resnet18", "--weights", "none", *extra,
                             "-o", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_staging(out: Path, proc: subprocess.Popen, timeout=240) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout and proc.poll() is None:
        if list(out.glob(".resnet18.tmp-*")):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_export_keeps_old_bundle(tmp_path, sig):
    out = tmp_path / "o"
    first = run_cli("export", "--model", "resnet18", "--weights", "none", "--input-size", "64", "--no-verify",
                    "-o", out)
    assert first.returncode == 0, first.stderr
    before = (out / "resnet18" / "manifest.json").read_text()
    proc = _start_export(out, "--fp16")
    assert _wait_for_staging(out, proc), "the export never started writing"
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert (out / "resnet18" / "manifest.json").read_text() == before
    assert bundle_is_consistent(out / "resnet18")
    if sig == signal.SIGKILL:
        assert list(out.glob(".resnet18.tmp-*"))  # killed: nothing could clean up...
        again = run_cli("export", "--model", "resnet18", "--weights", "none", "--input-size", "64",
                        "--no-verify", "-o", out)
        assert again.returncode == 0, again.stderr
        assert leftovers(out) == []  # ...and the next run did
    else:
        assert "Traceback" not in err and "interrupted" in err
        assert leftovers(out) == []


def test_a_held_export_lock_refuses_a_second_export(tmp_path):
    """Deterministic: this test holds the bundle's lock, as a running export does, so the
    second export must be refused (not merely lucky enough to run after the first)."""
    import fcntl

    out = tmp_path / "o"
    first = run_cli("export", *SEED, "--max-batch", "4", "-o", out)
    assert first.returncode == 0, first.stderr
    before = (out / "seed_resnet" / "manifest.json").read_text()
    fd = os.open(out / ".seed_resnet.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = run_cli("export", *SEED, "--max-batch", "16", "-o", out)
    finally:
        os.close(fd)
    assert second.returncode == 3 and "Another edgeport export is writing" in second.stderr, second.stderr
    assert no_traceback(second)
    assert (out / "seed_resnet" / "manifest.json").read_text() == before
    third = run_cli("export", *SEED, "--max-batch", "16", "-o", out)  # lock released: it runs
    assert third.returncode == 0, third.stderr
    assert json.loads((out / "seed_resnet" / "manifest.json").read_text())["input"]["max_batch"] == 16
    assert bundle_is_consistent(out / "seed_resnet") and leftovers(out) == []


def test_a_swallowed_interrupt_still_stops_the_export_before_it_is_published(tmp_path, monkeypatch):
    """Native code can swallow the KeyboardInterrupt of a Ctrl-C (a C++ catch-all around
    PyErr_CheckSignals); the recorded signal must still stop the export before the rename."""
    import exporter.onnx_export as onnx_export
    from runtime import interrupts

    out = tmp_path / "o"
    r = invoke("export", *SEED, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    before = (out / "seed_resnet" / "manifest.json").read_text()
    real = onnx_export.simplify

    def simplify_that_swallows_ctrl_c(model, inputs):
        interrupts.note(signal.SIGINT)  # what the CLI's handler records ...
        return real(model, inputs)  # ... while the exception itself was lost in native code

    monkeypatch.setattr(onnx_export, "simplify", simplify_that_swallows_ctrl_c)
    monkeypatch.setattr(interrupts, "_received", [])  # the recorded signal ends with the test
    r = invoke("export", *SEED, "--fp16", "-o", out)
    assert r.exit_code == 130 and "interrupted" in r.output
    assert (out / "seed_resnet" / "manifest.json").read_text() == before
    assert leftovers(out) == []
