"""No path from bundle data: caches live under edgeport's cache folder, keyed by content
(issue 18, deliver 1). A sidecar or manifest written by a hostile author must not make a
runner or a provider write outside that folder, nor create anything outside the bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from runtime.bundle import Bundle
from runtime.engines.build import BuildOptions, build_engines
from runtime.engines.device import GpuInfo, TargetEnv
from runtime.engines.sidecar import resolve_engine
from trt_fake import FakeMemory, FakeTRT, make_bundle

GPU = GpuInfo("NVIDIA GeForce RTX 4090", "8.9", total_memory=24 << 30, integrated=False, source="test")


class _Cache:
    """TensorRT-RTX's IRuntimeCache as the runner uses it: bytes in, bytes out."""

    def serialize(self):
        return b"jit kernels"


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    return Bundle.open(make_bundle(tmp_path / "net"))


def test_rtx_runtime_cache_ignores_the_path_a_sidecar_names(bundle, tmp_path, monkeypatch):
    from runtime.engines import device, rtx
    from runtime.runners.tensorrt_rtx import TensorRTRXRunner

    mem = FakeMemory()
    trt = FakeTRT("10.3.0", memory=mem)
    env = TargetEnv(tensorrt=trt.__version__, gpu=GPU, cuda_runtime="12.6", cuda_driver="12.6")
    build_engines(bundle, BuildOptions(precisions=("fp16",)), trt=trt, env=env)
    record = resolve_engine(bundle, "fp16", env=env)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"the user's file")
    hostile = dataclasses.replace(record.sidecar, runtime_cache={"enabled": True, "path": str(victim)})
    # The fake has no IRuntimeConfig: stand in for TensorRT-RTX's, which the runner only passes through.
    monkeypatch.setattr(rtx, "runtime_config_with_cache", lambda engine, data, messages: ("config", _Cache(), False))
    monkeypatch.setattr(trt.ICudaEngine, "create_execution_context", lambda self, *config: trt.IExecutionContext(self))
    monkeypatch.setattr(device, "probe_gpu", lambda: (GPU, "12.6", "12.6"))
    with TensorRTRXRunner(record.engine_path, sidecar=hostile, trt=trt, memory=mem) as runner:
        runner.infer({"input": np.zeros((1, 3, 4, 4), np.float32)})
    assert victim.read_bytes() == b"the user's file"
    sha = hashlib.sha256(record.engine_path.read_bytes()).hexdigest()
    expected = tmp_path / "cache" / "rtx-runtime" / f"rtx10.3.0-sm89-nvidia-geforce-rtx-4090-{sha[:16]}.cache"
    assert runner.runtime_cache_path == expected
    assert expected.read_bytes() == b"jit kernels"


def test_rtx_runtime_cache_path_is_keyed_by_the_engine(tmp_path, monkeypatch):
    from runtime.engines.rtx import runtime_cache_path

    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    a, b = "a" * 64, "b" * 64
    path = runtime_cache_path({"enabled": True, "path": "/etc/passwd"}, "1.7.1.116", GPU, a)
    assert path == tmp_path / "cache" / "rtx-runtime" / "rtx1.7.1.116-sm89-nvidia-geforce-rtx-4090-aaaaaaaaaaaaaaaa.cache"
    assert runtime_cache_path(None, "1.7.1.116", GPU, b) != path
    assert runtime_cache_path({"enabled": False, "path": None}, "1.7.1.116", GPU, a) is None


def test_ort_tensorrt_provider_cache_is_keyed_by_the_graph_not_the_bundle(bundle, tmp_path):
    from runtime.engines.ort_ep import tensorrt_ep_options

    before = sorted(p.name for p in bundle.root.iterdir())
    options = tensorrt_ep_options(bundle, "fp16")
    sha = hashlib.sha256((bundle.root / "model.fp16.onnx").read_bytes()).hexdigest()
    expected = tmp_path / "cache" / "ort-trt" / f"{sha}-b1-4"
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(expected)
    assert expected.is_dir()
    assert sorted(p.name for p in bundle.root.iterdir()) == before  # nothing written into the bundle


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("key", ["../../../x", "fp16/../../y", "/tmp/edgeport-abs-key"])
def test_an_artifact_key_that_is_a_path_is_refused_and_creates_nothing(tmp_path, monkeypatch, key):
    """A manifest key (re-sealed, as an author would) never becomes a folder: the strict reader
    refuses it before any provider option or cache is made."""
    from conftest import invoke
    from runtime.errors import BundleError

    monkeypatch.setenv("EDGEPORT_CACHE", str(tmp_path / "cache"))
    root = make_bundle(tmp_path / "a" / "b" / "c" / "net")
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    data["artifacts"][key] = dict(data["artifacts"]["fp16"])
    data.pop("digest")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    data["digest"] = hashlib.sha256(text.encode()).hexdigest()
    path.write_text(json.dumps(data, indent=2))
    before = _tree(tmp_path)
    with pytest.raises(BundleError, match="artifacts has an unknown key"):
        Bundle.open(root)
    result = invoke("verify", root, "--provider", "tensorrt", "--precision", "fp16")
    assert result.exit_code == 3 and "Traceback" not in result.output, result.output
    assert _tree(tmp_path) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not __import__("os").path.exists("/tmp/edgeport-abs-key")
