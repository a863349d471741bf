"""Input limits said up front (issue 19, item 5): single-input models only, as a usage error
before any tracing; `--json` keeps stdout for JSON whatever torch prints while loading weights.

The models are tiny factories written here; the torch.hub download runs torch's own code on a
``file://`` URL (no network), so the "Downloading: ..." line is torch's, not a stand-in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conftest import run_cli

NETS = '''
import torch
import torch.nn as nn


class Pair(nn.Module):
    """Two required inputs: an image and a second tensor (e.g. metadata)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, image, extra):
        return self.head(self.conv(image).mean((2, 3)) + extra)


class Scaled(nn.Module):
    """A second argument with a default: still one input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x, scale=1.0):
        return self.head(self.conv(x).mean((2, 3)) * scale)


class Flagged(nn.Module):
    """An optional argument left at None: the tracer drops it, one graph input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 3)

    def forward(self, x, mask=None):
        y = self.conv(x).mean((2, 3))
        return self.head(y if mask is None else y * mask)


def flagged():
    return Flagged()


def pair():
    return Pair()


def scaled():
    return Scaled()
'''


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input_limits") / "nets.py"
    path.write_text(NETS)
    return path


def test_a_two_input_model_is_a_usage_error_before_tracing(nets, tmp_path):
    r = run_cli("export", "--model", f"{nets}:pair", "--input-size", "16", "--engine", "no", "-o", tmp_path / "o",
                "--json", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgeport: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr and "TypeError" not in r.stderr, r.stderr
    assert "single-input models only" in errors[0] and "forward(image, extra)" in errors[0], errors[0]
    assert "exporting to ONNX" not in r.stderr.lower()  # refused before the export (tracing) started
    assert json.loads(r.stdout)["error"]["message"] in errors[0]  # stdout: only the --json error envelope
    assert not (tmp_path / "o" / "nets_pair").exists()


def test_a_defaulted_argument_the_tracer_keeps_as_an_input_is_a_usage_error(nets, tmp_path):
    # forward(x, scale=1.0): the signature says one input, but TorchScript's tracer makes the
    # float a second graph input; the export then failed with "a bug in edgeport" (exit 3).
    r = run_cli("export", "--model", f"{nets}:scaled", "--input-size", "16", "--engine", "no", "-o", tmp_path / "o",
                "--no-verify", "--json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("edgeport: error:")]
    assert len(errors) == 1 and "bug in edgeport" not in r.stderr and "single-input models only" in errors[0]
    assert json.loads(r.stdout)["error"]["message"] in errors[0]  # stdout: only the --json error envelope
    assert not (tmp_path / "o" / "nets_scaled").exists()


def test_a_defaulted_argument_the_tracer_drops_exports(nets, tmp_path):
    r = run_cli("export", "--model", f"{nets}:flagged", "--input-size", "16", "--engine", "no", "-o", tmp_path / "o",
                "--no-verify", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bundle"].endswith("nets_flagged")


def test_torch_hub_download_line_goes_to_stderr_not_stdout(tmp_path, monkeypatch, capsys):
    import torch

    from exporter.models.weights import load_named_weights

    module = torch.nn.Linear(3, 2)
    state = {k: torch.ones_like(v) for k, v in module.state_dict().items()}
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    served = tmp_path / "served" / f"tiny-{digest[:8]}.pth"  # torch.hub checks the name's hash prefix
    served.parent.mkdir()
    raw.rename(served)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))

    class Weights:  # what load_named_weights reads of a torchvision weights enum member
        url = served.as_uri()
        meta = {"_metrics": {}}

        def __str__(self):
            return "Tiny_Weights.TEST"

    info = load_named_weights(module, "tiny", Weights())
    out, err = capsys.readouterr()
    assert "Downloading" in err and "Downloading" not in out, (out, err)
    assert out == ""
    assert Path(info["file"]).is_file() and torch.equal(module.weight, torch.ones(2, 3))
