"""`edgeport triton` entries that say what they serve: the artifact in config.pbtxt, thread counts that
share the cores, no path of the build machine, the docs' client on the public API, the numpy-2 guard.

Oracles independent of edgeport: config.pbtxt parsed with Triton's own schema, sha256 with hashlib,
the thread shares worked out by hand, preprocessing by torchvision, logits by ONNX Runtime on the
bundle's file, and a real Triton 2.51 (tests/triton_server.py) for the docs' client example.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, invoke

SMALL_INT8 = ("--model", "resnet18", "--weights", "none", "--input-size", "64", "--int8", "--max-batch", "8",
              "--calib-samples", "32")  # the export of test_triton.py and test_bench.py: built once per session


@pytest.fixture(scope="module")
def small_bundle(exported):
    return exported(*SMALL_INT8)


def parse_config(entry: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def params(entry: Path) -> dict[str, str]:
    return {k: v.string_value for k, v in parse_config(entry).parameters.items()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(bundle: Path, repo: Path, *args: str) -> None:
    r = invoke("triton", bundle, "-r", repo, *args)
    assert r.exit_code == 0, r.output


# -- what the entry serves -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["python", "onnxruntime"])
def test_the_int8_cpu_graph_copied_as_model_onnx_is_named_in_the_config(tmp_path, small_bundle, backend):
    artifacts = json.loads((small_bundle / "manifest.json").read_text())["artifacts"]
    write(small_bundle, tmp_path, "--backend", backend, "--precision", "int8-cpu", "--name", "q")
    write(small_bundle, tmp_path, "--backend", backend, "--name", "f")
    for name, key in (("q", "int8-cpu"), ("f", "fp32")):
        entry = tmp_path / name
        artifact = artifacts[key]["file"]
        served = sha256(entry / "1" / "model.onnx")
        assert served == sha256(small_bundle / artifact)
        p = params(entry)
        assert (p["edgeport.model"], p["edgeport.precision"], p["edgeport.artifact"], p["edgeport.sha256"]) == \
            ("resnet18", key, artifact, served)
        first = (entry / "config.pbtxt").read_text().splitlines()[0]
        assert first.startswith("# ") and f"resnet18, {key} artifact {artifact} served as 1/model.onnx" in first
    assert artifacts["int8-cpu"]["file"] == "model.int8-cpu.onnx"  # the case the issue names


# -- threads ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cores,instances,expected", [(8, 3, "2"), (8, 1, "8"), (2, 4, "1")])
def test_onnxruntime_instances_share_this_machines_usable_cores(tmp_path, small_bundle, monkeypatch, cores,
                                                                 instances, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    r = invoke("triton", small_bundle, "-r", tmp_path, "--backend", "onnxruntime", "--instances", str(instances))
    assert r.exit_code == 0, r.output
    assert params(tmp_path / "resnet18")["intra_op_thread_count"] == expected
    assert f"intra_op_thread_count {expected}: this machine's usable cores shared by {instances}" in r.stderr


def test_explicit_threads_are_written_as_given(tmp_path, small_bundle, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    write(small_bundle, tmp_path, "--backend", "onnxruntime", "--instances", "4", "--threads", "5", "--name", "o")
    write(small_bundle, tmp_path, "--backend", "python", "--instances", "4", "--threads", "5", "--name", "p")
    write(small_bundle, tmp_path, "--backend", "python", "--instances", "4", "--name", "auto")
    assert params(tmp_path / "o")["intra_op_thread_count"] == "5"
    assert params(tmp_path / "p")["intra_op_threads"] == "5"
    assert "intra_op_threads" not in params(tmp_path / "auto")  # computed by model.py on the server


class FakeTritonModelException(Exception):
    pass


def load_python_model(entry: Path, monkeypatch):
    """The entry's 1/model.py as Triton's python backend loads it, with a stand-in for the backend's
    triton_python_backend_utils (only what initialize uses); returns (module, args for initialize)."""
    from google.protobuf.json_format import MessageToDict

    fake = types.ModuleType("triton_python_backend_utils")
    fake.TritonModelException = FakeTritonModelException
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake)
    spec = importlib.util.spec_from_file_location("edgeport_triton_model_under_test", entry / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Triton passes the config as protobuf JSON with the proto field names.
    config = MessageToDict(parse_config(entry), preserving_proto_field_name=True)
    args = {"model_config": json.dumps(config), "model_repository": str(entry), "model_version": "1",
            "model_instance_kind": "CPU", "model_instance_device_id": "0"}
    return module, args


@pytest.mark.parametrize("cores,instances,expected", [(6, 3, 2), (6, 4, 1), (16, 1, 16)])
def test_the_python_model_shares_the_servers_cores_at_load(tmp_path, small_bundle, monkeypatch, cores, instances,
                                                           expected):
    write(small_bundle, tmp_path, "--backend", "python", "--instances", str(instances), "--no-warmup")
    module, args = load_python_model(tmp_path / "resnet18", monkeypatch)
    monkeypatch.setattr(module.np, "__version__", "1.26.4")  # the backend's numpy (.venv-triton has numpy<2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    model = module.TritonPythonModel()
    model.initialize(args)
    assert model.session.get_session_options().intra_op_num_threads == expected


# -- the numpy-2 guard ------------------------------------------------------------------------------------
def test_the_python_model_refuses_numpy_2_at_load_with_the_fix(tmp_path, small_bundle, monkeypatch):
    write(small_bundle, tmp_path, "--backend", "python", "--no-warmup")
    module, args = load_python_model(tmp_path / "resnet18", monkeypatch)
    monkeypatch.setattr(module.np, "__version__", "2.1.3")
    model = module.TritonPythonModel()
    with pytest.raises(FakeTritonModelException) as info:
        model.initialize(args)
    text = str(info.value)
    assert "numpy 2.1.3" in text and "every response comes back empty" in text
    assert "Install numpy<2 in the Python the backend runs" in text and "edgeport.allow_numpy2" in text
    assert not hasattr(model, "session")  # refused before any session, so no empty answers later
    # Explicitly allowed (a stub built against numpy 2): it loads.
    config = json.loads(args["model_config"])
    config["parameters"]["edgeport.allow_numpy2"] = {"string_value": "true"}
    model.initialize({**args, "model_config": json.dumps(config)})
    assert model.session is not None


# -- no path of the build machine ----------------------------------------------------------------------
def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def test_no_absolute_path_of_the_build_machine_is_written(tmp_path, small_bundle):
    repo = tmp_path / "repo"
    write(small_bundle, repo, "--backend", "python", "--precision", "int8-cpu", "--name", "p")
    write(small_bundle, repo, "--backend", "onnxruntime", "--name", "o")
    paths = {str(small_bundle), str(small_bundle.resolve()), str(small_bundle.parent), str(tmp_path),
             str(tmp_path.resolve()), str(REPO), os.getcwd(), os.path.expanduser("~")}
    files = [p for p in repo.rglob("*") if p.is_file()]
    assert len(files) == 9  # p: model.py, model.onnx, warmup, config, edgeport.json; o: the same but model.py
    for f in files:
        data = f.read_bytes()
        leaked = [p for p in paths if p.encode() in data]
        assert leaked == [], (f, leaked)
    for name in ("p", "o"):
        provenance = json.loads((repo / name / "edgeport.json").read_text())
        assert [s for s in _strings(provenance) if os.path.isabs(s)] == []
        assert provenance["bundle"] == {"model": "resnet18"}


# -- the docs' client example -----------------------------------------------------------------------------
def docs_client_block() -> str:
    text = (REPO / "docs" / "triton.md").read_text()
    section = text.split("### Clients", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_client_example_imports_only_public_names():
    tree = ast.parse(docs_client_block())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules == {"edgeport", "tritonclient.grpc"}


@pytest.fixture
def triton_venv():
    from triton_server import ensure_venv

    try:
        return ensure_venv()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"the Triton test environment is not usable: {exc}")


def _torchvision_input(image: Path, pre: dict) -> np.ndarray:
    from PIL import Image
    from torchvision import transforms

    crop = pre["crop"] if isinstance(pre["crop"], int) else tuple(pre["crop"])
    t = transforms.Compose([transforms.Resize(pre["resize"]), transforms.CenterCrop(crop), transforms.ToTensor(),
                            transforms.Normalize(pre["mean"], pre["std"])])
    return t(Image.open(image).convert("RGB")).numpy()[None]


def test_the_docs_client_example_runs_against_the_server(tmp_path, small_bundle, triton_venv, monkeypatch):
    import onnxruntime as ort
    from PIL import Image

    from triton_server import TritonServer

    write(small_bundle, tmp_path / "repo", "--backend", "python", "--name", "served")
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(image)
    code = docs_client_block()
    for old, new in (("exports/densenet121", str(small_bundle)), ("cat.jpg", str(image)),
                     ('"densenet121"', '"served"')):
        assert old in code
        code = code.replace(old, new)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy"):
        monkeypatch.delenv(k, raising=False)  # grpc honours them; the tests' proxy is a closed port
    with TritonServer(tmp_path / "repo", tmp_path / "server", venv=triton_venv) as server:
        namespace: dict = {}
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            exec(compile(code.replace("localhost:8001", server.grpc_url), "docs/triton.md", "exec"), namespace)
    pre = json.loads((small_bundle / "manifest.json").read_text())["preprocessing"]
    expected_x = _torchvision_input(image, pre)
    np.testing.assert_allclose(namespace["x"], expected_x, rtol=0, atol=1e-5)
    session = ort.InferenceSession(str(small_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    ref = session.run(None, {session.get_inputs()[0].name: namespace["x"]})[0]
    out = namespace["logits"]
    assert out.shape == ref.shape == (1, 1000)
    assert np.abs(out - ref).max() <= 1e-4 * (ref.max() - ref.min())  # verify's fp32 relative difference
    top = [int(e.decode().split(":")[1]) for e in namespace["top3"][0]]
    assert top == list(np.argsort(-ref[0])[:3])
    assert printed.getvalue().startswith("[[b'")


def test_help_says_how_instances_and_threads_share_the_cores():
    r = invoke("triton", "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())  # click wraps the help text
    assert "Without --threads, the instances share the cores: each ONNX Runtime gets max(1, usable cores // " \
           "instances) intra-op threads." in text
    assert "Default: usable cores // --instances, of the server at model load (python) or of this machine " \
           "(onnxruntime, whose config needs a number)." in text
