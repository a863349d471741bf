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
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import COLOR_CLASSES, REPO, _SAVED_ENV, invoke, run_cli

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
    """.venv-triton (made by `make setup`; created here when missing, with the real proxy for pip)."""
    from triton_server import ensure_venv

    env = {k: v for k, v in os.environ.items() if k not in _SAVED_ENV or k == "TORCH_HOME"}
    env.update({k: v for k, v in _SAVED_ENV.items() if v is not None and k != "TORCH_HOME"})
    try:
        return ensure_venv(env=env)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"the Triton test environment (.venv-triton) is missing and could not be created: {exc}")


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
    server = TritonServer(repo, work / "server", venv=triton_venv)
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
    after = model_stats(served, "rn_fp32")
    inferences = int(after["inference_count"]) - int(before["inference_count"])
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
    lines = [ln for ln in body.splitlines() if ln.startswith("nv_inference_request_success{") and 'model="rn_fp32"' in ln]
    assert lines and float(lines[0].rsplit(" ", 1)[1]) > 0
    status, _ = http_json(f"{served.http_url}/v2/models/colors/ready")
    assert status == 200


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
