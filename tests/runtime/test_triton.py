"""`edgeport triton`: repositories served by a real Triton server, configs checked against Triton's schema.

The server is pytriton's tritonserver (Triton 2.51, python backend only) in .venv-triton
(tests/triton_server.py). The oracles are independent of edgeport: golden outputs are
compared with numpy (centered cosine, max difference relative to the logit range) at the
tolerances `edgeport verify` documents; HTTP requests are plain KServe-v2 JSON over urllib;
configs are parsed with Triton's own ModelConfig schema and compared with the ONNX files
read with onnx.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import COLOR_CLASSES, REPO, invoke, run_cli

SMALL_INT8 = ("--model", "resnet18", "--weights", "none", "--input-size", "64", "--int8", "--max-batch", "8",
              "--calib-samples", "32")  # the same export as test_bench.py: built once per session
FP32_TOL = {"max_rel_diff": 1e-4, "cosine_min": 0.99999}  # docs: verify's fp32 tolerance
INT8_TOL = {"cosine_min": 0.99}
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


# -- independent oracles ----------------------------------------------------------------------------
def manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def golden(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """(normalized NCHW inputs, reference outputs) from golden.npz, normalized here with numpy."""
    m = manifest(bundle)["preprocessing"]
    with np.load(bundle / "golden.npz") as z:
        images, outputs = z["images"], z["outputs"].astype(np.float32)
    x = (images.astype(np.float32) / 255.0 - np.float32(m["mean"])) / np.float32(m["std"])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32), outputs


def centered_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64) - a.mean(axis=1, keepdims=True)
    b = b.astype(np.float64) - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def assert_within(out: np.ndarray, ref: np.ndarray, tol: dict) -> None:
    assert out.shape == ref.shape and np.isfinite(out).all()
    cos = centered_cosine(out, ref)
    assert cos.min() >= tol["cosine_min"], cos
    if "max_rel_diff" in tol:
        rel = np.abs(out - ref).max(axis=1) / (ref.max(axis=1) - ref.min(axis=1))
        assert rel.max() <= tol["max_rel_diff"], rel


# -- clients -------------------------------------------------------------------------------------------
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the tests' closed proxy is not for 127.0.0.1


def http_json(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=60) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def http_infer(server, model: str, x: np.ndarray, class_count: int | None = None):
    """KServe v2 JSON inference (no tritonclient): (status, outputs array or error body)."""
    out = {"name": "logits"}
    if class_count:
        out["parameters"] = {"classification": class_count}
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            "outputs": [out]}
    status, resp = http_json(f"{server.http_url}/v2/models/{model}/infer", body)
    if status != 200:
        return status, resp
    (o,) = resp["outputs"]
    if class_count:
        return status, np.array(o["data"], dtype=object).reshape(o["shape"])
    assert o["datatype"] == "FP32"
    return status, np.array(o["data"], dtype=np.float32).reshape(o["shape"])


def grpc_infer(server, model: str, x: np.ndarray, class_count: int = 0) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    # grpc honours http_proxy, and the tests' proxy is a closed port: not for 127.0.0.1.
    client = grpcclient.InferenceServerClient(server.grpc_url, channel_args=[("grpc.enable_http_proxy", 0)])
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(model, [inp], outputs=[grpcclient.InferRequestedOutput("logits", class_count=class_count)])
    return result.as_numpy("logits")


def model_stats(server, model: str) -> dict:
    status, body = http_json(f"{server.http_url}/v2/models/{model}/stats")
    assert status == 200, body
    (stats,) = body["model_stats"]
    return stats


# -- the server ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def triton_venv():
    """.venv-triton, made by `make setup` (never created from inside a test)."""
    from triton_server import ensure_venv

    try:
        return ensure_venv()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"the Triton test environment is not usable: {exc}")


@pytest.fixture(scope="module")
def small_bundle(exported):
    return exported(*SMALL_INT8)


@pytest.fixture(scope="module")
def served(tmp_path_factory, triton_venv, small_bundle, color_bundle):
    """One server, one repository written by the CLI: resnet18 fp32 and int8-cpu, the colour classifier."""
    from triton_server import TritonServer

    work = tmp_path_factory.mktemp("triton")
    repo = work / "repo"
    for args in ((small_bundle, "--name", "rn_fp32", "--max-queue-delay-us", "20000", "--preferred-batch", "4,8"),
                 (small_bundle, "--name", "rn_int8", "--precision", "int8-cpu"),
                 (color_bundle, "--name", "colors")):
        result = invoke("triton", args[0], "--repository", repo, "--backend", "python", *args[1:])
        assert result.exit_code == 0, result.output
    # Explicit model control: a test can add an entry later and load it through the repository API.
    server = TritonServer(repo, work / "server", venv=triton_venv,
                          extra_args=("--model-control-mode=explicit", "--load-model=*"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


# -- served by Triton ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model,tol", [("rn_fp32", FP32_TOL), ("rn_int8", INT8_TOL)])
def test_golden_inputs_over_http_and_grpc_match_the_bundle(served, small_bundle, model, tol):
    x, ref = golden(small_bundle)
    for n in (1, 4):
        status, out = http_infer(served, model, x[:n])
        assert status == 200, out
        assert_within(out, ref[:n], tol)
        assert_within(grpc_infer(served, model, x[:n]), ref[:n], tol)
    # Every golden image, one request each (the batch the dynamic batcher forms varies).
    outs = np.concatenate([grpc_infer(served, model, x[i:i + 1]) for i in range(len(x))])
    assert_within(outs, ref, tol)


def test_concurrent_requests_are_merged_by_the_dynamic_batcher(served, small_bundle):
    x, ref = golden(small_bundle)
    before = model_stats(served, "rn_fp32")
    n = 16
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: http_infer(served, "rn_fp32", x[i % len(x):i % len(x) + 1]), range(n)))
    assert all(status == 200 for status, _ in results)
    assert_within(np.concatenate([o for _, o in results]), ref[[i % len(x) for i in range(n)]], FP32_TOL)
    # Triton records a request's statistics after its response is sent: under load the last one can
    # lag the client by a moment, so poll (bounded) until every request is counted.
    deadline = time.monotonic() + 10
    while True:
        after = model_stats(served, "rn_fp32")
        inferences = int(after["inference_count"]) - int(before["inference_count"])
        if inferences >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    executions = int(after["execution_count"]) - int(before["execution_count"])
    assert inferences == n
    assert executions < n, (executions, after["batch_stats"])  # several requests ran as one batch


def test_a_batch_above_max_batch_size_gets_tritons_error(served, small_bundle):
    x, _ = golden(small_bundle)
    big = np.concatenate([x, x])[:9]
    status, body = http_infer(served, "rn_fp32", big)
    assert status == 400
    assert "batch-size must be <= 8" in body["error"]
    status, config = http_json(f"{served.http_url}/v2/models/rn_fp32/config")
    assert config["max_batch_size"] == 8 and config["dynamic_batching"]["preferred_batch_size"] == [4, 8]


def test_classification_extension_returns_the_class_names(served, color_bundle):
    x, ref = golden(color_bundle)
    names = list(COLOR_CLASSES)  # the --class-names file conftest wrote, in this order
    status, top = http_infer(served, "colors", x[:4], class_count=3)
    assert status == 200, top
    top_grpc = grpc_infer(served, "colors", x[:4], class_count=3)
    for i in range(4):
        order = np.argsort(-ref[i])[:3]
        for k, entry in enumerate(top[i]):  # "score:index:label"
            score, index, label = str(entry).split(":")
            assert int(index) == order[k] and label == names[order[k]]
            assert abs(float(score) - ref[i, order[k]]) <= 1e-4 * (ref[i].max() - ref[i].min()) + 1e-6
        assert top_grpc[i][0].decode().split(":")[2] == names[order[0]]


def test_metrics_and_readiness_answer(served):
    body = _OPENER.open(served.metrics_url, timeout=10).read().decode()
    lines = [ln for ln in body.splitlines()
             if ln.startswith("nv_inference_request_success{") and 'model="rn_fp32"' in ln]
    assert lines and float(lines[0].rsplit(" ", 1)[1]) > 0
    status, _ = http_json(f"{served.http_url}/v2/models/colors/ready")
    assert status == 200


@pytest.mark.slow
def test_full_size_densenet121_written_by_the_cli_serves_its_golden_outputs(served, exported):
    """The issue's acceptance: `edgeport triton exports/densenet121 --repository repo --backend python`, then
    a real Triton serving repo returns the golden outputs within the fp32 tolerance (224x224, random init)."""
    bundle = exported("--model", "densenet121", "--weights", "none", "--no-verify")
    r = run_cli("triton", bundle, "--repository", served.repository, "--backend", "python")
    assert r.returncode == 0, r.stderr
    status, body = http_json(f"{served.http_url}/v2/repository/models/densenet121/load", {})
    assert status == 200, body
    try:
        x, ref = golden(bundle)
        assert x.shape[1:] == (3, 224, 224)
        out = np.concatenate([grpc_infer(served, "densenet121", x[i:i + 4]) for i in range(0, len(x), 4)])
        assert_within(out, ref, FP32_TOL)
        status, out1 = http_infer(served, "densenet121", x[:1])
        assert status == 200
        assert_within(out1, ref[:1], FP32_TOL)
    finally:
        http_json(f"{served.http_url}/v2/repository/models/densenet121/unload", {})


def test_the_python_model_needs_only_numpy_and_onnxruntime():
    tree = ast.parse((REPO / "runtime" / "triton" / "python_backend_model.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert imported <= {"json", "os", "numpy", "onnxruntime", "triton_python_backend_utils"}, imported


# -- configs checked against Triton's schema and the ONNX files ------------------------------------------
def parse_config(entry: Path):
    """config.pbtxt parsed with Triton's own schema (tritonclient), independently of edgeport."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((entry / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 7: "TYPE_INT64"}  # onnx.TensorProto element types


def assert_io_matches_onnx(config, onnx_path: Path) -> None:
    """Names, data types and per-sample dims of config.pbtxt equal the ONNX graph's (batch axis dynamic)."""
    import onnx
    from tritonclient.grpc import model_config_pb2

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    for tensors, values in ((config.input, [v for v in graph.input if v.name not in inits]),
                            (config.output, list(graph.output))):
        assert [t.name for t in tensors] == [v.name for v in values]
        for t, v in zip(tensors, values):
            dims = v.type.tensor_type.shape.dim
            assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch: Triton's max_batch_size axis
            assert list(t.dims) == [d.dim_value for d in dims[1:]]
            assert model_config_pb2.DataType.Name(t.data_type) == ONNX_TO_TRITON[v.type.tensor_type.elem_type]


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_onnxruntime_configs_match_the_schema_and_the_onnx_files(tmp_path, small_bundle):
    from tritonclient.grpc import model_config_pb2 as pb2

    m = manifest(small_bundle)
    repo = tmp_path / "repo"
    r = invoke("triton", small_bundle, "-r", repo, "--backend", "onnxruntime", "--name", "cpu_fp32", "--threads", "2")
    assert r.exit_code == 0, r.output
    r = invoke("triton", small_bundle, "-r", repo, "--backend", "onnxruntime", "--name", "gpu_int8", "--kind", "gpu",
               "--precision", "int8", "--instances", "2", "--preferred-batch", "8", "--preferred-batch", "2,4",
               "--max-queue-delay-us", "500", "--trt-accel", "--trt-workspace", "1024", "--trt-engine-cache", "/cache")
    assert r.exit_code == 0, r.output
    for name, artifact, kind, count in (("cpu_fp32", "model.onnx", "KIND_CPU", 1),
                                        ("gpu_int8", "model.int8.onnx", "KIND_GPU", 2)):
        entry = repo / name
        c = parse_config(entry)
        assert c.name == name and c.platform == "onnxruntime_onnx" and not c.backend
        assert c.max_batch_size == m["input"]["max_batch"] == 8
        assert sha256(entry / "1" / "model.onnx") == sha256(small_bundle / artifact)
        assert_io_matches_onnx(c, entry / "1" / "model.onnx")
        assert [(g.count, pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in c.instance_group] == [(count, kind)]
        # The warmup sample is golden image 0, normalized, as raw FP32 (C-order, no batch axis).
        (warm,) = c.model_warmup
        assert warm.batch_size == 1 and list(warm.inputs["input"].dims) == [3, 64, 64]
        raw = np.fromfile(entry / "warmup" / warm.inputs["input"].input_data_file, dtype=np.float32)
        np.testing.assert_allclose(raw, golden(small_bundle)[0][0].ravel(), rtol=0, atol=1e-6)
    cpu, gpu = parse_config(repo / "cpu_fp32"), parse_config(repo / "gpu_int8")
    assert cpu.parameters["intra_op_thread_count"].string_value == "2"
    assert not cpu.optimization.execution_accelerators.gpu_execution_accelerator
    (accel,) = gpu.optimization.execution_accelerators.gpu_execution_accelerator
    assert accel.name == "tensorrt" and dict(accel.parameters) == {
        "precision_mode": "INT8", "max_workspace_size_bytes": str(1024 * 2**20),
        "trt_engine_cache_enable": "1", "trt_engine_cache_path": "/cache"}
    assert list(gpu.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    assert gpu.dynamic_batching.max_queue_delay_microseconds == 500


def test_class_names_become_the_label_file(tmp_path, color_bundle):
    r = invoke("triton", color_bundle, "-r", tmp_path, "--backend", "onnxruntime", "--name", "colors")
    assert r.exit_code == 0, r.output
    c = parse_config(tmp_path / "colors")
    assert c.output[0].label_filename == "labels.txt"
    assert (tmp_path / "colors" / "labels.txt").read_text().splitlines() == list(COLOR_CLASSES)


def _fake_engine(bundle: Path, *, profile=(1, 4, 4), cc="8.7"):
    """An engine file + sidecar as `edgeport build` writes them (fabricated: no TensorRT here)."""
    from runtime.engines.sidecar import EngineSidecar, write_engine

    from trt_fake import sidecar_dict

    m = manifest(bundle)
    art, chw = m["artifacts"]["fp32"], m["input"]["shape"][1:]
    sidecar = sidecar_dict(
        precision="fp32", version="10.3.0.30", gpu={"name": "Orin", "compute_capability": cc}, cuda={"runtime": "12.6"},
        source={"artifact": "fp32", "file": art["file"], "sha256": art["sha256"]},
        profile=dict(zip(("min", "opt", "max"), profile)),
        input={"name": m["input"]["name"], **{k: [b, *chw] for k, b in zip(("min", "opt", "max"), profile)}},
        build_options={"precision": "fp32", "min_batch": profile[0], "max_batch": profile[2]})
    return write_engine(bundle, "model.fp32.b4.sm87.trt10.3.0.30.engine", b"not a real plan " * 64,
                        EngineSidecar.from_dict(sidecar))


def _orin_env(cc="8.7", name="Orin"):
    from runtime.engines.device import GpuInfo, TargetEnv

    return TargetEnv(tensorrt="10.3.0.30", gpu=GpuInfo(name, cc, 8 << 30, cc == "8.7"), cuda_runtime="12.6")


def test_tensorrt_config_serves_the_engine_built_here(tmp_path, small_bundle, copy_bundle):
    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository
    from tritonclient.grpc import model_config_pb2 as pb2

    bundle = copy_bundle(small_bundle)
    record = _fake_engine(bundle)
    entry = write_repository(Bundle.open(bundle), tmp_path / "repo", TritonOptions(backend="tensorrt"),
                             env=_orin_env())
    c = parse_config(entry.path)
    assert c.platform == "tensorrt_plan" and c.name == "resnet18"
    assert c.max_batch_size == 4  # the engine's profile, below the bundle's 8
    assert (entry.path / "1" / "model.plan").read_bytes() == record.engine_path.read_bytes()
    assert_io_matches_onnx(c, bundle / "model.onnx")
    assert [pb2.ModelInstanceGroup.Kind.Name(g.kind) for g in c.instance_group] == ["KIND_GPU"]


def test_tensorrt_backend_is_refused_without_an_engine_for_this_gpu(tmp_path, small_bundle, copy_bundle):
    from runtime.bundle import Bundle
    from runtime.errors import EdgeportError
    from runtime.triton import TritonOptions, write_repository

    r = invoke("triton", small_bundle, "-r", tmp_path / "repo", "--backend", "tensorrt")
    assert r.exit_code == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "has no fp32 TensorRT engine" in r.stderr
    assert f"Build it on this machine: edgeport build {small_bundle} --precision fp32" in r.stderr
    bundle = copy_bundle(small_bundle)
    _fake_engine(bundle)
    with pytest.raises(EdgeportError) as info:
        write_repository(Bundle.open(bundle), tmp_path / "repo", TritonOptions(backend="tensorrt"),
                         env=_orin_env(cc="8.6", name="NVIDIA A10"))
    text = info.value.render()
    assert "built for compute capability 8.7 (Orin), and this GPU has compute capability 8.6" in text
    assert f"Rebuild it on this machine: edgeport build {bundle} --precision fp32" in text
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())


# -- bad input: exit 2, one paragraph, nothing written -----------------------------------------------------
def one_paragraph_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeport: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args,expected", [
    (("--precision", "fp16"), "has no fp16 artifact; it has: fp32, int8, int8-cpu"),
    (("--instances", "0"), "--instances must be at least 1, got 0"),
    (("--backend", "tensorflow"), "Unknown --backend 'tensorflow'; choose one of python, onnxruntime, tensorrt"),
    (("--kind", "cpu", "--backend", "tensorrt"), "runs only on a GPU"),
    (("--precision", "int8-cpu", "--kind", "gpu"), "int8-cpu is ONNX Runtime's CPU graph"),
    (("--preferred-batch", "4,16"), "--preferred-batch 16 is above the model's max_batch_size 8"),
    (("--preferred-batch", "4,x"), "'--preferred-batch': 'x' is not a whole number (expected e.g. 1,8)"),
    (("--trt-accel",), "--trt-accel is the onnxruntime backend's TensorRT accelerator"),
    (("--trt-workspace", "512"), "--trt-workspace configure the TensorRT accelerator, which is only on with"),
    (("--backend", "onnxruntime", "--kind", "gpu", "--trt-accel", "--trt-precision", "int8"),
     "--trt-precision int8 with the fp32 artifact"),
    (("--name", "../evil"), "--name '../evil' is not a usable model name"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, small_bundle, args, expected):
    repo = tmp_path / "repo"
    text = one_paragraph_error(invoke("triton", small_bundle, "-r", repo, *args))
    assert expected in text, text
    assert not repo.exists() or not any(repo.iterdir())


def test_unwritable_repository_exits_2(tmp_path, small_bundle):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    text = one_paragraph_error(invoke("triton", small_bundle, "-r", blocker / "repo"))
    assert f"Cannot write the Triton model repository '{blocker / 'repo'}'" in text
    text = one_paragraph_error(invoke("triton", small_bundle, "-r", blocker))
    assert "exists and is a file, not a folder" in text


def test_an_entry_holding_another_model_is_never_overwritten_without_force(tmp_path, small_bundle, color_bundle):
    repo = tmp_path / "repo"
    assert invoke("triton", small_bundle, "-r", repo, "--name", "m").exit_code == 0
    before = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    text = one_paragraph_error(invoke("triton", color_bundle, "-r", repo, "--name", "m"))
    assert "holds another model: resnet18 fp32" in text and "--force" in text
    assert {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    # The same model again (other options) replaces its own entry.
    r = invoke("triton", small_bundle, "-r", repo, "--name", "m", "--instances", "3")
    assert r.exit_code == 0 and r.stdout.startswith("replaced "), r.output
    assert parse_config(repo / "m").instance_group[0].count == 3
    # --force replaces it wholesale: nothing of the old model stays (no mixed versions or files).
    r = invoke("triton", color_bundle, "-r", repo, "--name", "m", "--force", "--no-warmup")
    assert r.exit_code == 0, r.output
    files = sorted(str(p.relative_to(repo / "m")) for p in (repo / "m").rglob("*") if p.is_file())
    assert files == ["1/model.onnx", "1/model.py", "config.pbtxt", "edgeport.json", "labels.txt"]
    assert sha256(repo / "m" / "1" / "model.onnx") == sha256(color_bundle / "model.onnx")
    # A folder edgeport did not write is not touched either.
    (repo / "theirs" / "1").mkdir(parents=True)
    (repo / "theirs" / "config.pbtxt").write_text('name: "theirs"\n')
    text = one_paragraph_error(invoke("triton", small_bundle, "-r", repo, "--name", "theirs"))
    assert "holds a model that edgeport did not write" in text
    assert (repo / "theirs" / "config.pbtxt").read_text() == 'name: "theirs"\n'


def test_a_failed_write_leaves_the_previous_entry_and_no_staging(tmp_path, small_bundle, monkeypatch):
    import errno
    import shutil

    from runtime.bundle import Bundle
    from runtime.errors import EdgeportError
    from runtime.triton import TritonOptions, write_repository
    from runtime.triton import repository as repository_module

    repo = tmp_path / "repo"
    b = Bundle.open(small_bundle)
    write_repository(b, repo, TritonOptions(name="m"))
    before = (repo / "m" / "config.pbtxt").read_text()
    real_copy = shutil.copyfile

    def full_disk(src, dst, *a, **k):
        if str(dst).endswith("model.py"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(repository_module.shutil, "copyfile", full_disk)
    with pytest.raises(EdgeportError, match="No space left on the device"):
        write_repository(b, repo, TritonOptions(name="m", instances=2))
    assert (repo / "m" / "config.pbtxt").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staged folder next to the repository
    assert sorted(p.name for p in repo.iterdir()) == ["m"]  # Triton would take any sub-folder for a model


def test_an_interrupted_swap_is_repaired_by_the_next_write(tmp_path, small_bundle):
    import os

    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository

    repo = tmp_path / "repo"
    b = Bundle.open(small_bundle)
    write_repository(b, repo, TritonOptions(name="m"))
    # Killed between the two renames: the old entry is aside, a staged one is left behind.
    os.replace(repo / "m", tmp_path / ".repo.m.edgeport-old-99999")
    (tmp_path / ".repo.m.edgeport-tmp-99999" / "1").mkdir(parents=True)
    entry = write_repository(b, repo, TritonOptions(name="m", instances=2))
    assert entry.replaced  # the set-aside entry was restored first, then replaced
    assert parse_config(repo / "m").instance_group[0].count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_staging_moves_inside_the_repository_only_when_its_parent_is_not_writable(tmp_path, small_bundle,
                                                                                   monkeypatch):
    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    warnings = []
    write_repository(Bundle.open(small_bundle), tmp_path / "repo", TritonOptions(name="m"), warn=warnings.append)
    assert any("staging 'm' inside the repository" in w for w in warnings), warnings
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m"]
    parse_config(tmp_path / "repo" / "m")


TRITONCLIENT_BLOCKER = '''
import sys


class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "tritonclient":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
'''


def test_without_tritonclient_the_schema_check_is_explicitly_skipped_or_refused(tmp_path, small_bundle):
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(TRITONCLIENT_BLOCKER)
    env = {"PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    r = run_cli("triton", small_bundle, "-r", tmp_path / "repo", env=env)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs tritonclient[grpc]" in lines[0] and "edgeport[triton]" in lines[0], r.stderr
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())
    r = run_cli("triton", small_bundle, "-r", tmp_path / "repo", "--no-schema-check", env=env)
    assert r.returncode == 0, r.stderr
    assert "was not checked against Triton's ModelConfig schema" in r.stderr
    assert "config.pbtxt schema: NOT checked" in r.stdout
    parse_config(tmp_path / "repo" / "resnet18")  # still valid (checked here, with tritonclient)


def test_an_engine_whose_profile_starts_above_batch_1_is_refused(tmp_path, small_bundle, copy_bundle):
    from runtime.bundle import Bundle
    from runtime.errors import UsageError
    from runtime.triton import TritonOptions, write_repository

    bundle = copy_bundle(small_bundle)
    _fake_engine(bundle, profile=(2, 4, 8))
    with pytest.raises(UsageError) as info:
        write_repository(Bundle.open(bundle), tmp_path / "repo", TritonOptions(backend="tensorrt"), env=_orin_env())
    assert "accepts batches 2..8, but Triton sends batches from 1" in info.value.render()
    assert info.value.render().endswith(f"edgeport build {bundle} --precision fp32 --min-batch 1 --max-batch 8")
    assert not (tmp_path / "repo").exists()
