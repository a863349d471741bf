"""Messages that name the real cause (issue 18, item 9): a text file as --weights, NaN weights (not
onnxsim's fault), names with a trailing newline."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke

NAN_NET = '''
import torch
import torch.nn as nn


def nan_conv():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] = float("nan")
    return net
'''


def _export(tmp_path: Path, *args):
    return invoke("export", *args, "--engine", "no", "--no-verify", "-o", tmp_path / "out", "-q")


def test_a_text_file_as_weights_is_named_as_such(tmp_path):
    notes = tmp_path / "weights.txt"
    notes.write_text("epoch 90: top-1 76.1\n")
    result = _export(tmp_path, "--model", "seed_resnet", "--weights", notes)
    assert result.exit_code == 3, result.output
    assert "is text, not a PyTorch checkpoint" in result.output and "unexpected" not in result.output


def test_nan_weights_are_named_not_blamed_on_onnxsim(tmp_path):
    nets = tmp_path / "nets.py"
    nets.write_text(NAN_NET)
    result = _export(tmp_path, "--model", f"{nets}:nan_conv", "--input-size", "16")
    assert result.exit_code == 3, result.output
    assert "weights hold NaN or Inf values" in result.output and "(1 of 108)" in result.output
    assert "onnxsim" not in result.output and "simplified" not in result.output


@pytest.mark.parametrize("name", ["seed\n", "seed\r\n", "../seed", ".seed", "a/b"])
def test_triton_names_match_whole(name):
    from runtime.triton.config import valid_model_name

    assert valid_model_name("seed_resnet-1.2")
    assert not valid_model_name(name)


POOL_NET = '''
import torch.nn as nn


def vgg_like():  # VGG's head: a 7x7 adaptive pool after 32x downsampling
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=32, padding=1), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                         nn.Linear(4 * 49, 3))
'''


def test_vgg_like_adaptive_pool_at_a_small_input_names_the_input_size(tmp_path):
    # At 64 px the map is 2x2, which ONNX's AdaptiveAvgPool cannot pool to 7x7; at 224 px it is 7x7.
    nets = tmp_path / "nets.py"
    nets.write_text(POOL_NET)
    small = _export(tmp_path, "--model", f"{nets}:vgg_like", "--input-size", "64")
    assert small.exit_code == 2, small.output  # the input size the user chose: a usage error
    assert "cannot be exported at --input-size 64x64" in small.output and "adaptive_avg_pool2d" in small.output
    assert "Pass a larger --input-size, e.g. 224" in small.output and "torch.onnx.export failed" not in small.output
    assert "--debug" not in small.output and "unexpected" not in small.output
    assert _export(tmp_path, "--model", f"{nets}:vgg_like", "--input-size", "224").exit_code == 0
