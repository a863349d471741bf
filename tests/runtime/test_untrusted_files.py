"""A bundle's files are opened as what they claim to be (docs/security.md): regular files inside the
bundle only (no link is followed out of it, no FIFO blocks the reader), no ONNX tensor loaded from a
file no sha256 covers, no manifest without its digest; and bundle text reaches the terminal without
the control characters that would drive it."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from conftest import REPO, edit_manifest, invoke

SEED = ("--model", "seed_resnet", "--weights", "none", "--max-batch", "2")
IMAGE = REPO / "exporter" / "assets" / "golden" / "camera.jpg"


@pytest.fixture
def bundle(exported, copy_bundle) -> Path:
    return copy_bundle(exported(*SEED))


def _verify(bundle: Path):
    return invoke("verify", bundle, "--precision", "fp32")


def test_an_artifact_linked_out_of_the_bundle_is_refused(bundle, tmp_path):
    """The link points at a byte-identical copy outside, so only the link itself can be refused."""
    outside = tmp_path / "outside.onnx"
    outside.write_bytes((bundle / "model.onnx").read_bytes())
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(outside)
    result = _verify(bundle)
    assert result.exit_code == 3 and "model.onnx is a symbolic link" in result.output, result.output


def test_a_linked_manifest_or_golden_set_is_refused(bundle, tmp_path):
    for name in ("golden.npz", "manifest.json"):
        outside = tmp_path / name
        outside.write_bytes((bundle / name).read_bytes())
        (bundle / name).unlink()
        (bundle / name).symlink_to(outside)
        result = _verify(bundle)
        assert result.exit_code == 3 and f"{name} is a symbolic link" in result.output, result.output
        (bundle / name).unlink()
        (bundle / name).write_bytes(outside.read_bytes())


def test_a_fifo_is_refused_without_blocking(tmp_path):
    from runtime.errors import BundleError
    from runtime.fsutil import open_regular

    fifo = tmp_path / "golden.npz"
    os.mkfifo(fifo)
    with pytest.raises(BundleError, match="not a regular file"):
        open_regular(fifo)  # opened for reading with no writer: a plain open() would hang here


def test_onnx_external_data_is_refused(bundle):
    """A graph whose weights live in another file: its sha256 covers the graph, not the weights."""
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    onnx.save(model, str(bundle / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (bundle / "weights.bin").is_file()

    def reseal(m):
        import hashlib

        data = (bundle / "model.onnx").read_bytes()
        m["artifacts"]["fp32"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))

    edit_manifest(bundle, reseal)
    result = _verify(bundle)
    assert result.exit_code == 3 and "external data" in result.output, result.output


def test_a_manifest_without_its_digest_is_refused(bundle):
    data = json.loads((bundle / "manifest.json").read_text())
    del data["digest"]
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = _verify(bundle)
    assert result.exit_code == 3 and "carries no digest" in result.output, result.output


def test_terminal_controls_in_class_names_never_reach_the_terminal(bundle):
    names = [f"class{i}" for i in range(10)]
    names[:] = [f"evil\u009b2J\u202e{n}" for n in names]  # C1 CSI (clear screen) and a right-to-left override
    edit_manifest(bundle, lambda m: m["model"].update(class_names=names))
    result = invoke("predict", bundle, IMAGE)
    assert result.exit_code == 0, result.output
    assert "evil2Jclass" in result.output
    assert "\u009b" not in result.output and "\u202e" not in result.output


def test_the_console_logger_strips_terminal_escapes(capsys):
    from runtime import console

    handler = console.install_cli_handler(False)
    try:
        console.warn("model \x1b]0;owned\x07name\x1b[2J ok")
    finally:
        console.LOGGER.removeHandler(handler)
    err = capsys.readouterr().err
    assert "model ]0;ownedname[2J ok" in err and "\x1b" not in err and "\x07" not in err


def test_the_rebuild_hint_quotes_every_value(tmp_path):
    from runtime.engines.sidecar import build_command

    root = tmp_path / "my bundle"
    command = build_command(root, "fp16", {"min_batch": 1, "hardware_compat": "$(touch /tmp/x)",
                                           "build_path": "strong; rm -rf ~", "compute_capabilities": ["8.6"]})
    assert shlex.split(command) == ["edgeport", "build", str(root), "--precision", "fp16",
                                    "--compute-capability", "8.6", "--min-batch", "1",
                                    "--hardware-compat", "$(touch /tmp/x)", "--build-path", "strong; rm -rf ~"]
