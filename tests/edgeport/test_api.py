"""The Python API and the silent fallbacks it replaced with errors (issue 12, item 6).

Each test names the old silent behaviour it guards against.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

import edgeport
from conftest import edit_manifest, invoke
from runtime.errors import BundleError, UsageError

SEED = ("--model", "seed_resnet", "--weights", "none", "--max-batch", "4")


@pytest.fixture(scope="module")
def seed_bundle(exported):
    return exported(*SEED)


def test_runner_infer_takes_a_bare_array_or_a_dict(seed_bundle):
    bundle = edgeport.Bundle.open(seed_bundle)
    x = bundle.golden().inputs(bundle.preprocessing)[:3]
    with bundle.runner("fp32") as runner:
        bare = runner.infer(x)
        named = runner.infer({bundle.input_name: x})
        assert list(bare) == [bundle.output_name]
        np.testing.assert_array_equal(bare[bundle.output_name], named[bundle.output_name])
        # the golden outputs are PyTorch's (computed at export), not this runner's
        np.testing.assert_allclose(bare[bundle.output_name], bundle.golden().outputs[:3], atol=1e-4)
        with pytest.raises(UsageError, match="takes a numpy array or a dict"):
            runner.infer([x])
        with pytest.raises(edgeport.EdgeportError, match="exceeds the artifact's maximum batch 4"):
            runner.infer(np.repeat(x, 2, axis=0))


def test_export_defaults_match_the_cli():
    """The options are declared once (exporter/options.py): every option of `edgeport export` is a
    field of ExportConfig or ModelRequest, with that field's default."""
    import dataclasses

    from edgeport.cli.export import export
    from exporter.models.registry import ModelRequest
    from exporter.options import ExportConfig

    cli = {p.name: p.default for p in export.params}
    fields = {f.name: f for cls in (ModelRequest, ExportConfig) for f in dataclasses.fields(cls)}
    assert cli["engine"] == fields["engine"].default == "auto"
    assert cli["max_batch"] == fields["max_batch"].default == 32
    assert cli["weights"] is None and fields["weights"].default is None  # the model's own default, decided once
    assert cli["verify"] is True and cli["int8_cpu"] is True  # --no-verify / --no-int8-cpu turn them off
    assert set(cli) - {"model", "as_json", "debug_", "quiet", "trusted_keys_"} <= set(fields)  # CLI-only wrappers


def test_export_refuses_unknown_options_by_name(tmp_path):
    # The old names of the renamed options are unknown now, and say so before any work.
    for old in ("verify_data", "budget_data", "verify_samples"):
        with pytest.raises(UsageError, match=f"unknown option\\(s\\) {old}; it takes .*golden_data"):
            edgeport.export("seed_resnet", output=tmp_path, **{old: 1})
    assert list(tmp_path.iterdir()) == []


def test_weights_default_on_a_seed_model_is_refused_not_random(tmp_path):
    # Before: the CLI turned --weights DEFAULT into random init for seed/user models.
    result = invoke("export", "--model", "seed_resnet", "--weights", "DEFAULT", "-o", tmp_path, "-q")
    assert result.exit_code == 2, result.output
    assert "Named weights ('DEFAULT') exist only for torchvision models" in result.output
    assert not (tmp_path / "seed_resnet").exists()


@pytest.mark.parametrize("tol, message", [
    ("fp61.cosine_min=0.9", "--tol precision 'fp61' is unknown"),
    ("fp16.cosine=0.9", "--tol metric 'cosine' is unknown"),
])
def test_unknown_tolerances_are_refused_not_ignored(seed_bundle, tol, message):
    result = invoke("verify", seed_bundle, "--tol", tol)
    assert result.exit_code == 2 and message in result.output
    with pytest.raises(UsageError, match="unknown"):
        edgeport.verify(seed_bundle, tolerances={tol.split(".")[0]: {tol.split(".")[1].split("=")[0]: 0.9}})


@pytest.mark.parametrize("batch", [0, -1, 5])
def test_bad_batch_from_the_api_is_refused_not_replaced(seed_bundle, batch):
    # Before: batch=0 silently became the default batch, and batch 5 > max 4 failed mid-run.
    with pytest.raises(UsageError):
        edgeport.verify(seed_bundle, batch=batch, write_report=False)


def test_verify_batch_above_the_bundle_is_a_usage_error_before_running(seed_bundle):
    result = invoke("verify", seed_bundle, "--batch", "16")
    assert result.exit_code == 2, result.output
    assert "Batch 16 exceeds the bundle's maximum batch 4" in result.output
    assert "verifying" not in result.output  # refused before the first artifact ran


def test_corrupt_report_json_is_refused_not_replaced(seed_bundle, copy_bundle):
    bundle = copy_bundle(seed_bundle)
    (bundle / "report.json").write_text('{"results": [ truncated')
    result = invoke("verify", bundle)
    assert result.exit_code == 3 and "report.json is not valid JSON" in result.output
    assert (bundle / "report.json").read_text() == '{"results": [ truncated'  # untouched
    result = invoke("report", bundle)
    assert result.exit_code == 3 and "is not valid JSON" in result.output


def test_report_json_with_a_malformed_section_is_refused_before_verifying(seed_bundle, copy_bundle):
    bundle = copy_bundle(seed_bundle)
    data = json.loads((bundle / "report.json").read_text())
    data["benchmarks"] = "fast"
    text = json.dumps(data)
    (bundle / "report.json").write_text(text)
    for command in (("verify", bundle), ("report", bundle), ("bench", bundle, "--iterations", "1")):
        result = invoke(*command)
        assert result.exit_code == 3 and "has a malformed section" in result.output, result.output
        assert "verifying" not in result.output and "timing" not in result.output  # refused before the long part
    assert (bundle / "report.json").read_text() == text  # untouched


def test_tensorrt_runner_has_no_max_batch_to_ignore():
    from runtime.runners.tensorrt import TensorRTRunner

    assert "max_batch" not in inspect.signature(TensorRTRunner.__init__).parameters


def test_ort_tensorrt_provider_keeps_the_profile_and_warns_without_a_writable_cache(seed_bundle, copy_bundle,
                                                                                     tmp_path, monkeypatch):
    from runtime.engines.ort_ep import tensorrt_ep_options

    bundle_dir = copy_bundle(seed_bundle)
    (tmp_path / "cache-file").write_text("a file where the cache folder would go")  # mkdir fails
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache-file"))
    warnings = []
    options = tensorrt_ep_options(edgeport.Bundle.open(bundle_dir), "fp32", warn=warnings.append)
    assert options["trt_profile_max_shapes"] == "input:4x3x32x32"
    assert "trt_engine_cache_enable" not in options
    assert len(warnings) == 1 and "engines are rebuilt by every session" in warnings[0]


def test_bench_repeated_batch_options_time_every_batch(seed_bundle, copy_bundle):
    # Before: `--batch 1 --batch 4` silently benchmarked only batch 4.
    bundle = copy_bundle(seed_bundle)
    result = invoke("bench", bundle, "--batch", "1", "--batch", "4", "--iterations", "2", "--warmup", "0", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)["result"]  # --json: stdout holds only the JSON, messages go to stderr
    assert sorted(r["batch"] for r in doc["results"]) == [1, 4]
    result = invoke("verify", bundle, "--precision", "fp32,fp32", "--json")
    assert result.exit_code == 0 and [r["precision"] for r in json.loads(result.stdout)["result"]["results"]] == ["fp32"]


def test_progress_callback_receives_messages_and_results_are_dataclasses(seed_bundle, copy_bundle):
    import dataclasses

    messages = []
    result = edgeport.verify(copy_bundle(seed_bundle), progress=messages.append)
    assert dataclasses.is_dataclass(result) and result.passed
    assert any(m.startswith("verifying fp32 (model.onnx)") for m in messages)


def test_an_edited_manifest_fails_verify_as_edited(seed_bundle, copy_bundle):
    bundle = copy_bundle(seed_bundle)
    data = json.loads((bundle / "manifest.json").read_text())
    data["preprocessing"]["mean"] = [0.0, 0.0, 0.0]
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = invoke("verify", bundle)
    assert result.exit_code == 3 and "manifest.json was edited after export" in result.output
    edit_manifest(bundle, lambda m: None)  # re-sealed (as a re-export would): opens again
    assert edgeport.Bundle.open(bundle).manifest.preprocessing["mean"] == [0.0, 0.0, 0.0]


def test_sensitivity_without_int8_is_a_usage_error(seed_bundle):
    result = invoke("sensitivity", seed_bundle)
    assert result.exit_code == 2 and "has no int8 artifact" in result.output
