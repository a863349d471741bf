"""The CLI speaks options, the Python API speaks parameters (edgeport/wording.py).

Each row makes one mistake through the command line and through ``edgeport.<function>``: the
CLI's error names the option as typed (``--batch 8``), the API's names the parameter
(``batch=8``), and neither uses the other's spelling. The expected phrases are written out here.
"""

from __future__ import annotations

import pytest

import edgeport
from conftest import invoke
from edgeport.wording import to_api
from runtime.errors import EdgeportError


@pytest.fixture(scope="module")
def bundle(exported):
    return exported("--model", "seed_resnet")  # FP32 only, max batch 32


# (CLI arguments, API call, CLI phrase, API phrase); "{b}" is the bundle.
ROWS = {
    "batch over the bundle's max": (
        ("verify", "{b}", "--batch", "99"), lambda b, t: edgeport.verify(b, batch=99, write_report=False),
        "Pass --batch 32 or less, or re-export with a larger --max-batch",
        "Pass batch=32 or less, or re-export with a larger max_batch"),
    "labels without labeled data": (
        ("verify", "{b}", "--labels", "x.txt"), lambda b, t: edgeport.verify(b, labels="x.txt", write_report=False),
        "--labels and --labeled-samples need --labeled-data DIR",
        "labels and labeled_samples need labeled_data=DIR"),
    "bench batches over the max": (
        ("bench", "{b}", "--batch", "99", "--iterations", "1"),
        lambda b, t: edgeport.benchmark(b, batches=(99,), iterations=1, write_report=False),
        "--batch", "batches"),
    "missing CUDA provider": (
        ("verify", "{b}", "--provider", "cuda"),
        lambda b, t: edgeport.verify(b, provider="cuda", write_report=False),
        "--provider cuda needs onnxruntime-gpu", "provider='cuda' needs onnxruntime-gpu"),
    "max-drop without int8": (
        ("export", "--model", "seed_resnet", "--max-drop", "1", "--output", "{t}"),
        lambda b, t: edgeport.export("seed_resnet", max_drop=1.0, output=t),
        "add --int8", "add int8=True"),
    "missing checkpoint": (
        ("export", "--model", "seed_resnet", "--weights", "{t}/nope.pt", "--output", "{t}"),
        lambda b, t: edgeport.export("seed_resnet", weights=f"{t}/nope.pt", output=t),
        "or --weights none for random init", "or weights='none' for random init"),
    "a bundle name with a slash": (
        ("export", "--model", "seed_resnet", "--name", "a/b", "--output", "{t}"),
        lambda b, t: edgeport.export("seed_resnet", name="a/b", output=t),
        "such as --name resnet18_v2; use --output to choose", "such as name='resnet18_v2'; use output to choose"),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_same_mistake_cli_options_api_parameters(row, bundle, tmp_path):
    args, call, cli_phrase, api_phrase = ROWS[row]
    fill = {"b": str(bundle), "t": str(tmp_path / "out")}
    result = invoke(*(a.format(**fill) for a in args))
    assert result.exit_code in (2, 3), result.output
    assert cli_phrase in result.output, result.output

    with pytest.raises(EdgeportError) as err:
        call(bundle, fill["t"])
    text = err.value.render()
    assert api_phrase in text, text
    assert cli_phrase not in text and api_phrase not in result.output
    assert err.value.exit_code == result.exit_code  # same kind of mistake, same exit code


def test_commands_to_run_keep_their_options():
    # A command the message tells the user to run is a command line, in either audience.
    text = "No engines yet. Build them: edgeport build out/net --precision all"
    assert to_api(text, {"--precision": "precisions"}) == text
    assert to_api("Re-export with `edgeport export --max-batch 64`.", {}) == \
        "Re-export with `edgeport export --max-batch 64`."


def test_flags_and_prose_after_an_option():
    flags = {"--int8": "True", "--no-verify": "False"}
    params = {"--no-verify": "verify"}
    assert to_api("add --int8.", params, flags) == "add int8=True."
    assert to_api("Add --int8 --max-drop 0.5", params, flags) == "Add int8=True max_drop=0.5"
    assert to_api("or pass --no-verify.", params, flags) == "or pass verify=False."
    assert to_api("--calib-data folder is empty", {}) == "calib_data folder is empty"
    assert to_api("--calib-data '/x' does not exist", {}) == "calib_data='/x' does not exist"
    assert to_api("--backend onnxruntime instead", {}) == "backend='onnxruntime' instead"
