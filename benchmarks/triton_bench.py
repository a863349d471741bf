"""Triton (python backend, HTTP and gRPC) against the same artifact run in-process with ONNX Runtime.

A harness, not a test. Run it with the Triton environment's Python (it has tritonclient with
HTTP and gRPC, onnxruntime and numpy < 2; edgeport itself runs in the main .venv):

    .venv-triton/bin/python benchmarks/triton_bench.py exports/resnet18 --edgeport-python .venv/bin/python

1. ``edgeport triton BUNDLE --backend python`` writes a repository in a temp folder;
2. pytriton's tritonserver (Triton 2.51, CPU) serves it (tests/triton_server.py);
3. for each concurrency (default 1, 4, 8), N client threads send batch-1 requests of the
   golden images for ``--duration`` seconds, through Triton's HTTP and gRPC endpoints
   (tritonclient), and, as the baseline, N threads call ``InferenceSession.run`` on the same
   ONNX file in this process;
4. prints throughput (images/s), p50 and p99 latency and Triton's throughput as a ratio of
   the in-process one, and writes them to --out (JSON and Markdown).

The clients share the machine's cores with the server, as a co-located client would.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from triton_server import TritonServer  # noqa: E402 - the tests' server helper


def golden_inputs(bundle: Path) -> np.ndarray:
    """The bundle's golden images, normalized as its manifest says (numpy only, no edgeport)."""
    pre = json.loads((bundle / "manifest.json").read_text())["preprocessing"]
    with np.load(bundle / "golden.npz") as z:
        images = z["images"]
    x = (images.astype(np.float32) / 255.0 - np.float32(pre["mean"])) / np.float32(pre["std"])
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def write_repository(args, repo: Path) -> dict:
    cmd = [args.edgeport_python, "-m", "edgeport.cli", "triton", str(args.bundle), "--repository", str(repo),
           "--backend", "python", "--precision", args.precision, "--name", "bench",
           "--max-queue-delay-us", str(args.max_queue_delay_us), "--instances", str(args.instances), "-q"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(cmd, check=True, env=env, cwd=REPO)
    return json.loads((repo / "bench" / "edgeport.json").read_text())


def run_load(make_call, concurrency: int, duration: float, warmup: float) -> dict:
    """``concurrency`` threads, each with its own ``make_call()`` callable, for ``duration`` s."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    clock = {}

    def open_gate():  # runs once, when every worker has warmed up, before any is released
        clock["start"] = time.perf_counter()
        clock["stop"] = clock["start"] + duration

    start_gate = threading.Barrier(concurrency, action=open_gate)

    def worker(i: int) -> None:
        call = make_call(i)
        t_end = time.perf_counter() + warmup
        while time.perf_counter() < t_end:  # warm connections and caches, untimed
            call()
        start_gate.wait()
        k = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= clock["stop"]:
                break
            call(k)
            latencies[i].append(time.perf_counter() - t0)
            k += 1

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(worker, i) for i in range(concurrency)]
        for f in futures:
            f.result()
        wall = time.perf_counter() - clock["start"]
    lat = np.array([v for per in latencies for v in per]) * 1e3
    return {"concurrency": concurrency, "requests": int(lat.size), "seconds": round(wall, 3),
            "images_per_s": round(lat.size / wall, 2), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def in_process(model_path: Path, x: np.ndarray, input_name: str, output_name: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])

    def make_call(i):
        def call(k=0):
            j = (i + k) % len(x)
            session.run([output_name], {input_name: x[j:j + 1]})
        return call
    return make_call


def through_triton(server, protocol: str, x: np.ndarray, input_name: str, output_name: str):
    if protocol == "http":
        import tritonclient.http as client_module
        url = server.http_url.replace("http://", "")
        kwargs = {}
    else:
        import tritonclient.grpc as client_module
        url = server.grpc_url
        kwargs = {"channel_args": [("grpc.enable_http_proxy", 0)]}

    def make_call(i):
        client = client_module.InferenceServerClient(url, **kwargs)
        outputs = [client_module.InferRequestedOutput(output_name)]

        def call(k=0):
            j = (i + k) % len(x)
            inp = client_module.InferInput(input_name, [1, *x.shape[1:]], "FP32")
            inp.set_data_from_numpy(x[j:j + 1])
            client.infer("bench", [inp], outputs=outputs).as_numpy(output_name)
        return call
    return make_call


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Triton python backend vs in-process ONNX Runtime: {meta['model']} {meta['precision']}, "
             f"{meta['input']}, batch-1 requests, {meta['duration_s']} s per point, {meta['cpus']} CPUs, "
             f"load average before {meta['loadavg_before']}", "",
             "| path | concurrency | img/s | p50 ms | p99 ms | img/s vs in-process |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['path']} | {r['concurrency']} | {r['images_per_s']:.1f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--duration", type=float, default=10.0, help="timed seconds per point")
    ap.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per point")
    ap.add_argument("--max-queue-delay-us", type=int, default=0)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--edgeport-python", default=str(REPO / ".venv" / "bin" / "python"),
                    help="the Python that has edgeport (writes the repository)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "triton_bench")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    x = golden_inputs(args.bundle)
    in_name, out_name = manifest["input"]["name"], manifest["outputs"][0]["name"]
    rows = []
    meta = {"model": manifest["model"]["name"], "precision": args.precision, "input": "x".join(map(str, x.shape[1:])),
            "duration_s": args.duration, "cpus": os.cpu_count(), "loadavg_before": os.getloadavg()[0],
            "max_queue_delay_us": args.max_queue_delay_us, "instances": args.instances,
            "machine": platform.processor() or platform.machine(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="triton-bench-") as tmp:
        repo = Path(tmp) / "repo"
        prov = write_repository(args, repo)
        model_file = repo / "bench" / prov["model_file"]["file"]
        baseline = {}
        for c in levels:
            r = run_load(in_process(model_file, x, in_name, out_name), c, args.duration, args.warmup)
            baseline[c] = r["images_per_s"]
            rows.append({"path": "in-process onnxruntime", **r, "ratio": 1.0})
            print(rows[-1], flush=True)
        with TritonServer(repo, Path(tmp) / "server") as server:
            for protocol in ("http", "grpc"):
                for c in levels:
                    r = run_load(through_triton(server, protocol, x, in_name, out_name), c, args.duration, args.warmup)
                    rows.append({"path": f"triton {protocol}", **r, "ratio": round(r["images_per_s"] / baseline[c], 3)})
                    print(rows[-1], flush=True)
            with urllib.request.urlopen(f"{server.http_url}/v2/models/bench/stats", timeout=30) as resp:
                stats = json.loads(resp.read())
    meta["triton_stats"] = (stats.get("model_stats") or [{}])[0].get("batch_stats")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    text = markdown(rows, meta)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
