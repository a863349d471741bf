#!/usr/bin/env python3
"""`make gpu-check`: export -> build (fp16, int8) -> verify -> bench on a machine with a GPU + TensorRT.

For each model (default resnet50 and densenet121) it runs the real CLI in subprocesses and
writes OUT/report.md and OUT/report.json: the device, the versions, and every step's
command, exit status, duration and output tail. Steps continue after a failure where they
can (an INT8 export failure still lets FP16 be built and verified). `bench` is called
only when `edgeport bench --help` works.

Exit status: 0 every step passed, 1 a step failed, 2 this machine cannot run the check
(no TensorRT or no GPU; the report says which).

Usage: python scripts/gpu_check.py [--out gpu-check] [--models resnet50 densenet121]
                                   [--weights auto] [--max-batch 32] [--input-size N]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EDGEPORT = [sys.executable, "-m", "edgeport.cli"]


def run(args: list[str], log: Path, timeout: int = 3600) -> dict:
    """Run `edgeport ARGS`, tee the output to LOG, return the step record."""
    t0 = time.perf_counter()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(EDGEPORT + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = 124, exc.stdout or "", f"timed out after {timeout} s"
    seconds = time.perf_counter() - t0
    log.write_text(f"$ edgeport {shlex.join(args)}\n\n{out}\n--- stderr ---\n{err}")
    return {"command": "edgeport " + shlex.join(args), "rc": rc, "seconds": round(seconds, 1),
            "stdout": out[-4000:], "stderr_tail": err[-1500:], "log": log.name}


def device_info() -> dict:
    """Versions and GPU, through the same probes edgeport uses."""
    sys.path.insert(0, str(REPO))
    from runtime.engines import device

    info = {"host": platform.node(), "machine": platform.machine(), "python": platform.python_version()}
    ok, detail = device.tensorrt_available()
    info["tensorrt"] = detail if ok else None
    info["tensorrt_error"] = None if ok else detail
    gpu, rt, drv = device.probe_gpu()
    info["gpu"] = None if gpu is None else {"name": gpu.name, "compute_capability": gpu.compute_capability,
                                            "total_memory_mib": (gpu.total_memory or 0) >> 20, "probe": gpu.source}
    info["cuda_runtime"], info["cuda_driver"] = rt, drv
    model, tegra = device.jetson_facts()
    info["jetson"] = bool(tegra or (model and "jetson" in model.lower()))
    info["board"] = model
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() if smi.returncode == 0 else None
    except OSError:
        info["nvidia_smi"] = None
    return info


def has_bench() -> bool:
    r = subprocess.run(EDGEPORT + ["bench", "--help"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    return r.returncode == 0


def check_model(model: str, args, out: Path, bench: bool) -> list[dict]:
    steps = []
    exports = out / "exports"
    bundle = exports / model
    export_args = ["export", "--model", model, "--weights", args.weights, "--fp16", "--int8", "--engine", "no",
                   "--max-batch", str(args.max_batch), "-o", str(exports)]
    if args.input_size:
        export_args += ["--input-size", str(args.input_size)]
    step = run(export_args, out / f"{model}-export.log")
    steps.append({"model": model, "step": "export fp32+fp16+int8", **step})
    precisions = ["fp16", "int8"]
    if step["rc"] not in (0, 1):  # 1 = exported, an accuracy check failed: still worth building
        fallback = [a for a in export_args if a != "--int8"]
        step = run(fallback, out / f"{model}-export-fp16.log")
        steps.append({"model": model, "step": "export fp32+fp16 (INT8 export failed)", **step})
        precisions = ["fp16"]
        if step["rc"] not in (0, 1):
            return steps
    for precision in precisions:
        step = run(["build", str(bundle), "--precision", precision], out / f"{model}-build-{precision}.log")
        steps.append({"model": model, "step": f"build {precision}", **step})
    step = run(["verify", str(bundle), "--backend", "tensorrt"], out / f"{model}-verify.log")
    steps.append({"model": model, "step": "verify --backend tensorrt", **step})
    if bench:
        for precision in precisions:
            step = run(["bench", str(bundle), "--backend", "tensorrt", "--precision", precision],
                       out / f"{model}-bench-{precision}.log")
            steps.append({"model": model, "step": f"bench {precision}", **step})
    return steps


def render(report: dict) -> str:
    d = report["device"]
    gpu = d.get("gpu") or {}
    lines = [f"# edgeport gpu-check - {report['verdict']}", "",
             f"Run {report['started']} ({report['seconds']:.0f} s) on {d.get('host')} ({d.get('machine')}).", "",
             "| | |", "|---|---|",
             f"| GPU | {gpu.get('name', 'none')} (compute capability {gpu.get('compute_capability', '-')}, "
             f"{gpu.get('total_memory_mib', '-')} MiB) |",
             f"| Jetson | {d.get('jetson')} {d.get('board') or ''} |",
             f"| TensorRT | {d.get('tensorrt') or 'not installed'} |",
             f"| CUDA runtime / driver | {d.get('cuda_runtime')} / {d.get('cuda_driver')} |",
             f"| nvidia-smi | {d.get('nvidia_smi') or '-'} |",
             f"| Python | {d.get('python')} |", ""]
    if report.get("not_run"):
        lines += [f"**Not run:** {report['not_run']}", ""]
    lines += ["| model | step | status | time | log |", "|---|---|---|---|---|"]
    for s in report["steps"]:
        status = {0: "PASS", 1: "FAIL (accuracy)"}.get(s["rc"], f"ERROR (exit {s['rc']})")
        lines.append(f"| {s['model']} | {s['step']} | {status} | {s['seconds']:.1f} s | {s['log']} |")
    lines.append("")
    for s in report["steps"]:
        if s["step"].startswith(("verify", "bench", "build")) and s["stdout"].strip():
            lines += [f"## {s['model']}: {s['step']}", "", f"`{s['command']}`", "", s["stdout"].strip(), ""]
        if s["rc"] not in (0,) and s["stderr_tail"].strip():
            lines += [f"### {s['model']}: {s['step']} (stderr tail)", "", "```",
                      s["stderr_tail"].strip(), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "gpu-check")
    ap.add_argument("--models", nargs="+", default=["resnet50", "densenet121"])
    ap.add_argument("--weights", default="auto", help="auto: cached ImageNet weights, else random init")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=None)
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    report = {"started": started, "device": device_info(), "steps": [], "models": args.models}
    if not report["device"]["tensorrt"]:
        report["not_run"] = f"TensorRT is not importable here ({report['device']['tensorrt_error']})"
    elif not report["device"]["gpu"]:
        report["not_run"] = "no NVIDIA GPU is visible (cuda-python, torch.cuda and nvidia-smi found none)"
    if not report.get("not_run"):
        bench = has_bench()
        report["bench"] = bench
        for model in args.models:
            report["steps"] += check_model(model, args, out, bench)
    report["seconds"] = time.perf_counter() - t0
    failed = [s for s in report["steps"] if s["rc"] != 0]
    report["verdict"] = "NOT RUN" if report.get("not_run") else ("FAIL" if failed else "PASS")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(render(report))
    print(f"gpu-check: {report['verdict']}; report: {out / 'report.md'}")
    if report.get("not_run"):
        print(f"gpu-check: {report['not_run']}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
