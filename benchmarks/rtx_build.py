"""TensorRT-RTX build seconds and engine size per precision, on this machine's CPU (no GPU).

For resnet50 and densenet121 at 224x224 (random weights: build time and engine size do not
depend on them), exported once with --fp16 --int8 --max-batch 32, each precision is built
with ``edgeport build --runtime tensorrt-rtx`` in its own process, twice in a row (the export
has just written the graphs, so both runs read them from the page cache). Recorded per run:
the build's own seconds (parse + build, from the engine's sidecar), the command's wall time
(with Python start-up and the import of TensorRT-RTX), and the engine's size. The
batch profile is 1/8/32, the one the issue measured. Not part of `make test`.

    .venv/bin/python benchmarks/rtx_build.py [--models resnet50,densenet121] [--workdir DIR --reuse]

Results go to benchmarks/results/rtx_build.json and rtx_build.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODELS = ("resnet50", "densenet121")
PRECISIONS = ("fp32", "fp16", "int8")
PROFILE = ("--min-batch", "1", "--opt-batch", "8", "--max-batch", "32")


def log(message: str) -> None:
    print(f"[rtx-bench] {message}", file=sys.stderr, flush=True)


def edgeport(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, result) of `edgeport ARGS` in a fresh process."""
    full = dict(os.environ)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgeport.cli", *args], cwd=REPO, env=full, capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"edgeport {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc


def export(workdir: Path, model: str, reuse: bool) -> Path:
    bundle = workdir / model
    if not (reuse and (bundle / "manifest.json").is_file()):
        log(f"exporting {model} (--weights none --fp16 --int8, 224x224, max batch 32)")
        edgeport("export", "--model", model, "--weights", "none", "--fp16", "--int8", "--max-batch", "32",
                 "--no-verify", "--engine", "no", "--output", str(workdir), "-q")
    return bundle


def build_runs(bundle: Path, precision: str, runs: int, env: dict) -> list[dict]:
    """Build ``precision`` ``runs`` times, each in its own process; one row per run."""
    rows = []
    for run in range(runs):
        wall, _ = edgeport("build", str(bundle), "--runtime", "tensorrt-rtx", "--precision", precision, *PROFILE,
                           "-q", env=env)
        (sidecar_path,) = [p for p in bundle.glob(f"model.{precision}.rtx*.engine.json")]
        sc = json.loads(sidecar_path.read_text())
        rows.append({"precision": precision, "run": run + 1,
                     "source": sc["source"]["file"],
                     "source_mb": round((bundle / sc["source"]["file"]).stat().st_size / 1e6, 1),
                     "build_s": sc["build_seconds"], "command_wall_s": round(wall, 2),
                     "engine_mb": round(sc["engine"]["bytes"] / 1e6, 1), "engine": sc["engine"]["file"],
                     "tensorrt_rtx": sc["version"]})
        log(f"{bundle.name} {precision} (run {run + 1}): {rows[-1]['build_s']} s, {rows[-1]['engine_mb']} MB")
    return rows


def render(results: dict) -> str:
    m = results["machine"]
    lines = [f"# TensorRT-RTX ahead-of-time builds on CPU ({results['measured_at']})", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('usable_cores', '?')} usable cores, no GPU; TensorRT-RTX "
             f"{results['tensorrt_rtx']}; batch profile 1/8/32, input 224x224, random weights; "
             f"load average before {m.get('load_avg_before')}, after {m.get('load_avg_after')}.", "",
             "| model | precision | graph | graph MB | build s (runs) | command wall s (runs) | engine MB |",
             "|---|---|---|---|---|---|---|"]
    for model, rows in results["models"].items():
        for precision in PRECISIONS:
            runs = [r for r in rows if r["precision"] == precision]
            first = runs[0]
            lines.append(f"| {model} | {precision} | {first['source']} | {first['source_mb']} | "
                         f"{' / '.join(str(r['build_s']) for r in runs)} | "
                         f"{' / '.join(str(r['command_wall_s']) for r in runs)} | {first['engine_mb']} |")
    lines += ["", "build s: parse + build inside `edgeport build` (the sidecar's build_seconds); command wall s "
              "adds Python start-up and importing TensorRT-RTX.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=2, help="Builds per precision, each in a fresh process.")
    ap.add_argument("--workdir", type=Path, default=None, help="Where bundles go (default: a temp folder).")
    ap.add_argument("--reuse", action="store_true", help="Reuse bundles already in --workdir.")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)

    from runtime.machine import describe_machine, load_average
    from runtime.engines.rtx import import_tensorrt_rtx

    rtx = import_tensorrt_rtx("benchmarks/rtx_build.py")
    machine = describe_machine()
    machine["load_avg_before"] = load_average()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edgeport-rtx-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"EDGEPORT_CACHE": str(workdir / ".cache")}
    results = {"measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "tensorrt_rtx": rtx.__version__, "machine": machine, "models": {}}
    for model in args.models.split(","):
        bundle = export(workdir, model, args.reuse)
        results["models"][model] = [row for p in PRECISIONS for row in build_runs(bundle, p, args.runs, env)]
    machine["load_avg_after"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rtx_build.json").write_text(json.dumps(results, indent=2) + "\n")
    text = render(results)
    (args.out / "rtx_build.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
