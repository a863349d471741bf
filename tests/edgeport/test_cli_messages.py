"""What `edgeport lint` and `edgeport models` say: a bundle folder is linted through its TensorRT
INT8 artifact, a CPU INT8 artifact is named as not meant for TensorRT before its violations,
and listing the models needs neither torch nor a model build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO, invoke

TINY_MODEL = """
import torch.nn as nn


def build(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
"""


@pytest.fixture(scope="module")
def int8_bundle(exported, tmp_path_factory):
    """A tiny bundle with model.int8.onnx (TensorRT rules) and model.int8-cpu.onnx (ONNX Runtime CPU)."""
    work = tmp_path_factory.mktemp("lint_model")
    (work / "tiny_net.py").write_text(TINY_MODEL)
    bundle = exported("--model", f"{work / 'tiny_net.py'}:build", "--num-classes", "4", "--input-size", "16",
                      "--int8", "--calib-samples", "16")
    assert {"int8", "int8-cpu"} <= set(json.loads((bundle / "manifest.json").read_text())["artifacts"])
    return bundle


def test_lint_on_a_bundle_folder_lints_its_int8_artifact(int8_bundle):
    by_folder = invoke("lint", int8_bundle)
    assert by_folder.exit_code == 0, by_folder.output
    direct = invoke("lint", int8_bundle / "model.int8.onnx")
    assert direct.exit_code == 0
    # Same graph, same findings: only the progress line naming the artifact differs.
    lines = [ln for ln in by_folder.output.splitlines() if not ln.startswith("[edgeport]")]
    assert lines == direct.output.splitlines()
    assert f"{int8_bundle / 'model.int8.onnx'}: " in by_folder.output and lines[-1] == "clean"


def test_lint_on_a_folder_that_is_not_a_bundle_names_the_bundles_inside(int8_bundle):
    result = invoke("lint", int8_bundle.parent)
    assert result.exit_code == 2  # a path of the wrong kind: what the user typed
    assert "not a bundle" in result.output and str(int8_bundle) in result.output
    assert "does not exist" not in result.output


def test_lint_on_the_cpu_int8_artifact_says_first_it_is_not_for_tensorrt(int8_bundle):
    result = invoke("lint", int8_bundle / "model.int8-cpu.onnx")
    lines = result.output.splitlines()
    assert lines[0].startswith("note: model.int8-cpu.onnx is the bundle's ONNX Runtime CPU artifact")
    assert "TensorRT never builds it" in lines[0] and f"edgeport lint {int8_bundle}" in lines[0]
    assert "FAIL int8" in result.output  # the violations are still listed ...
    assert lines[-1].endswith("(model.int8-cpu.onnx is not meant for TensorRT: see the note above)")
    # ... and the exit status is that of any graph that breaks the rules, like the FP32 graph's.
    fp32 = invoke("lint", int8_bundle / "model.onnx")
    assert result.exit_code == fp32.exit_code == 1
    assert fp32.output.startswith("note: model.onnx is the bundle's FP32 graph")
    envelope = json.loads(invoke("lint", int8_bundle / "model.int8-cpu.onnx", "--json").stdout)
    assert envelope["exit_code"] == 1 and envelope["bundle"] == str(int8_bundle)
    doc = envelope["result"]
    assert doc["bundle_artifact"] == "int8-cpu" and doc["meant_for_tensorrt"] is False and not doc["passed"]
    clean = json.loads(invoke("lint", int8_bundle / "model.int8.onnx", "--json").stdout)["result"]
    assert clean["meant_for_tensorrt"] is True and clean["note"] is None


def test_lint_of_a_lone_onnx_file_has_no_note(int8_bundle, tmp_path):
    lone = tmp_path / "model.int8-cpu.onnx"  # same bytes, no bundle around it
    lone.write_bytes((int8_bundle / "model.int8-cpu.onnx").read_bytes())
    result = invoke("lint", lone)
    assert result.exit_code == 1 and not result.output.startswith("note:")


# -- edgeport models ------------------------------------------------------------------------------
def test_models_lists_without_importing_torch():
    code = ("import sys, time; t = time.perf_counter()\n"
            "from edgeport.cli import main\n"
            "try:\n    main(['models', '--json'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('SECONDS', time.perf_counter() - t, file=sys.stderr)\n"
            "print('HEAVY', sorted(m for m in ('torch', 'torchvision', 'onnx') if m in sys.modules), file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    wall = time.perf_counter() - t0
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stderr, run.stderr
    rows = json.loads(run.stdout)["result"]["models"]
    assert len(rows) == 14
    print(f"`edgeport models --json` in a fresh process: {wall:.2f} s")


def test_model_table_matches_torch():
    """The precomputed table equals what torch and torchvision say today (no silent staleness)."""
    from exporter.models.table import ROWS
    from exporter.models.registry import REGISTRY, compute_model_rows

    assert [r["name"] for r in ROWS] == list(REGISTRY)
    computed = compute_model_rows()
    for table_row, fresh in zip(ROWS, computed):
        assert table_row.keys() == fresh.keys()
        for key in table_row:
            expected = pytest.approx(fresh[key], rel=1e-9) if isinstance(fresh[key], float) else fresh[key]
            assert table_row[key] == expected, (table_row["name"], key)


def test_model_table_seed_rows_recounted_independently():
    """Two rows counted here with plain torch (not edgeport's counter): parameters, and MACs from
    each Conv2d/Linear output size times its fan-in."""
    import torch
    import torch.nn as nn

    from exporter.models import seed as seed_models
    from exporter.models.table import ROWS

    table = {r["name"]: r for r in ROWS}
    for name in ("seed_resnet", "seed_densenet"):
        model = getattr(seed_models, name)(num_classes=table[name]["classes"]).eval()
        macs = []
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(lambda m, i, o: macs.append(
                    o.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]))
            elif isinstance(m, nn.Linear):
                m.register_forward_hook(lambda m, i, o: macs.append(o.numel() * m.in_features))
        size = table[name]["input_size"]
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
        assert table[name]["params_m"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, rel=1e-12)
        assert table[name]["gmacs"] == pytest.approx(sum(macs) / 1e9, rel=1e-12)


# -- one grammar: a closed stdout, full stops, interrupted progress ------------------------------------
def test_a_closed_stdout_ends_quietly_with_the_status_of_the_work():
    """`edgeport models | head -1`: the reader goes away after one line; edgeport must not report a
    BrokenPipeError (or exit 3) for work it did."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is already gone: the very first line hits a closed pipe
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeport.cli", "models"], stdout=write_end,
                              stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(write_end)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "BrokenPipe" not in err and "bug in edgeport" not in err and "Exception ignored" not in err


def test_messages_built_from_exceptions_end_their_sentence_before_the_hint():
    from runtime.errors import EdgeportError

    exc = EdgeportError("The factory 'net.py:build' raised TypeError: missing argument 'width'",
                        hint="Fix the factory.")
    assert exc.render() == ("The factory 'net.py:build' raised TypeError: missing argument 'width'. "
                            "Fix the factory.")
    assert EdgeportError("Done.", hint="Next.").render() == "Done. Next."


def test_interrupted_progress_does_not_claim_it_is_done():
    """Ctrl-C during calibration used to log "28/80 done in 18.4 s"."""
    import logging

    from runtime import console

    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    console.LOGGER.addHandler(handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with console.Progress(80, "calibration") as progress:
                progress.update(28)
                raise KeyboardInterrupt
        with console.Progress(3, "finished") as progress:
            progress.update(3)
    finally:
        console.LOGGER.removeHandler(handler)
    assert any(m.startswith("calibration: interrupted after 28/80") for m in records), records
    assert not any(m.startswith("calibration: 28/80 done") for m in records)
    assert any(m.startswith("finished: 3/3 done") for m in records)
