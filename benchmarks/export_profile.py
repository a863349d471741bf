"""Wall time and peak RSS of `edgeport export`, per pipeline stage, measured from outside.

The export runs in a subprocess (a fresh interpreter, as a user would run it). A thread
samples the child's resident set size from /proc/<pid>/status every few milliseconds; the
child's progress lines on stderr mark where each stage starts (exporter/pipeline.py logs
one line per stage). Each stage's peak RSS is the largest sample between its first line
and the next stage's; the whole run's peak is the kernel's own high-water mark (VmHWM /
getrusage), which sampling cannot miss.

The INT8 stage is split in two: "calibrate" (until the calibration progress line ends)
and "quantize" (the rest). A fresh calibration cache folder is used so the calibration is
really measured, not read back from an earlier run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (substring of the stage's first log line, stage name), in pipeline order.
STAGE_MARKERS = (
    ("loading model", "load"),
    ("computing PyTorch FP32 reference", "reference"),
    ("exporting to ONNX", "export"),
    ("simplifying with onnxsim", "simplify"),
    ("converting to FP16", "fp16"),
    ("calibrating and quantizing to INT8", "calibrate"),
    ("quantizing for ONNX Runtime CPU", "quantize_cpu"),
    ("verifying every artifact", "verify"),
)
STAGE_ORDER = ("load", "reference", "export", "simplify", "fp16", "calibrate", "quantize", "quantize_cpu", "verify",
               "finish")


def stage_of_line(line: str, current: str | None) -> str | None:
    """The stage a progress line starts, or None when it starts none."""
    for marker, stage in STAGE_MARKERS:
        if marker in line:
            return stage
    # The TensorRT-style INT8 stage calibrates first; its calibration progress line ends with
    # "done in"; what follows (quantization, lint) is the quantize part.
    if current == "calibrate" and "calibrating" in line and "done in" in line:
        return "quantize"
    if "bundle written to" in line:
        return "finish"
    return None


def _rss_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of ``pid`` in KiB, or (None, None) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    rss = hwm = None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def profile_export(args: list[str], *, interval: float = 0.02, env: dict | None = None) -> dict:
    """Run `edgeport export ARGS` and return wall time, peak RSS, and both per stage."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    cache = tempfile.mkdtemp(prefix="edgeport-bench-cache-")
    full_env["EDGEPORT_CACHE"] = cache  # a cold calibration cache: calibration is measured
    full_env.pop("EDGEPORT_QUIET", None)
    if env:
        full_env.update(env)
    cmd = [sys.executable, "-m", "edgeport.cli", "export", *args]
    events: list[tuple[float, str]] = []  # (time, stage started)
    samples: list[tuple[float, int]] = []  # (time, rss KiB)
    lines: list[str] = []
    hwm = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, high = _rss_kib(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter(), rss))
                hwm[0] = max(hwm[0], high or 0)
            time.sleep(interval)

    def read_stderr():
        current = None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            stage = stage_of_line(line, current)
            if stage is not None:
                events.append((time.perf_counter(), stage))
                current = stage

    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for t in threads:
        t.start()
    stdout = proc.stdout.read()
    rc = proc.wait()
    end = time.perf_counter()
    done.set()
    for t in threads:
        t.join(timeout=5)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # ru_maxrss: KiB on Linux
    peak_kib = max(hwm[0], usage.ru_maxrss, max((s for _, s in samples), default=0))
    stages = []
    bounds = events + [(end, "end")]
    for (start, name), (stop, _) in zip(bounds, bounds[1:]):
        inside = [rss for t, rss in samples if start <= t < stop]
        stages.append({"stage": name, "wall_s": round(stop - start, 2),
                       "peak_rss_mib": round(max(inside) / 1024, 1) if inside else None})
    return {
        "command": "edgeport export " + " ".join(args),
        "returncode": rc,
        "wall_s": round(end - t0, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "stages": stages,
        "stderr_tail": lines[-15:],
        "stdout_tail": stdout.splitlines()[-8:],
    }


def merge_stages(stages: list[dict]) -> list[dict]:
    """One row per stage name (a stage seen twice is summed / maxed), in pipeline order."""
    rows: dict[str, dict] = {}
    for s in stages:
        row = rows.setdefault(s["stage"], {"stage": s["stage"], "wall_s": 0.0, "peak_rss_mib": None})
        row["wall_s"] = round(row["wall_s"] + s["wall_s"], 2)
        if s["peak_rss_mib"] is not None:
            row["peak_rss_mib"] = max(row["peak_rss_mib"] or 0, s["peak_rss_mib"])
    order = {name: i for i, name in enumerate(STAGE_ORDER)}
    return sorted(rows.values(), key=lambda r: order.get(r["stage"], 99))


if __name__ == "__main__":  # pragma: no cover - manual use: python benchmarks/export_profile.py ARGS...
    import json

    with tempfile.TemporaryDirectory() as out:
        result = profile_export([*sys.argv[1:], "--output", out])
    result["stages"] = merge_stages(result["stages"])
    print(json.dumps(result, indent=2))
