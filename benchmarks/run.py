"""`make bench`: edgeport's artifacts beside PyTorch eager, and the export's cost, on this machine.

For resnet18, resnet50 and densenet121 (random weights: speed does not depend on them), in
one process, with the same threads and batch for everyone, variants are *interleaved*: each
round runs PyTorch eager FP32, a bare ``onnxruntime.InferenceSession.run`` on model.onnx,
then edgeport's runner on FP32, FP16, INT8 (TensorRT-style Q/DQ) and INT8-CPU, a short
block of calls each (after a pause, see interleaved_times), so a burst of load from
elsewhere hits every variant alike. Medians and ratios are
printed, then the export of densenet121 with --int8 is measured in a subprocess (wall time
and peak RSS per stage, exporter/benchmarks/export_profile.py), and the INT8-CPU graph's
top-1 agreement is checked on the trained test model (tests/trained_model.py).

The issue's targets are checked at the end (met / NOT met); the machine and its load
average (before and after) are printed with the numbers, since on a shared machine they
explain them. Results go to benchmarks/results/latest.json and latest.md.

With OpenVINO installed (edgeport[openvino]) the bundles are exported with --int8-openvino too
and OpenVINO FP32 / INT8 (NNCF) are measured beside edgeport's CPU variants at batch 1 and 8
(benchmarks/openvino_bench.py); ``--openvino`` runs only that comparison (with the trained
model's agreement unless --skip-trained), e.g. ``--models resnet18 --openvino`` for a quick look.

    .venv/bin/python benchmarks/run.py [--threads 2] [--batch 1] [--rounds 10] [--block 5] [--skip-export] [--skip-trained]
                                       [--openvino | --no-openvino] [--ov-batches 1,8]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MODELS = ("resnet18", "resnet50", "densenet121")
VARIANTS = ("torch", "fp32", "fp16", "int8", "int8-cpu")
LABELS = {"torch": "PyTorch eager FP32", "fp32": "edgeport ORT FP32",
          "fp16": "edgeport ORT FP16", "int8": "edgeport ORT INT8 (TensorRT-style Q/DQ)",
          "int8-cpu": "edgeport ORT INT8-CPU"}
# The targets (batch 1, 2 threads).
TARGETS = {
    "ort_vs_torch": {"resnet50": 1.7, "densenet121": 2.0},
    "int8cpu_vs_fp32": {"resnet50": 2.5, "densenet121": 1.3},
    "runner_overhead_max": 0.03,
    "export_wall_s_max": 90.0,
    "export_peak_rss_mib_max": 4096.0,
    "int8cpu_cosine_min": 0.99,
    "int8cpu_top1_agreement_min": 0.97,
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run_export(args: list[str], check: bool = True) -> int:
    """`edgeport export ARGS` in a subprocess (its own torch, its own threads)."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "edgeport.cli", "export", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"edgeport export {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


def export_bundles(workdir: Path, models, reuse: bool, openvino: bool = False) -> dict[str, Path]:
    """Export each model (random weights, FP16 + the INT8 graphs) once; reused with --reuse."""
    out = {}
    extra = ["--int8-openvino"] if openvino else []
    for model in models:
        bundle = workdir / model
        ready = (bundle / "manifest.json").is_file() and (not openvino or (bundle / "model.int8-ov.onnx").is_file())
        if not (reuse and ready):
            log(f"exporting {model} (--weights none --fp16 --int8 {' '.join(extra)}) into {workdir}")
            run_export(["--model", model, "--weights", "none", "--fp16", "--int8", *extra, "--max-batch", "8",
                        "--output", str(workdir), "-q"])
        out[model] = bundle
    return out


def torch_model(model: str, threads: int):
    import torch

    from exporter.models.registry import ModelRequest, build_model

    torch.set_num_threads(threads)
    built = build_model(ModelRequest(model=model, weights="none"))
    return built.module.eval()


def interleaved_times(fns: dict, rounds: int, block: int, gap_s: float) -> dict:
    """Per-call seconds of each function, in rounds: each round gives every function, in turn,
    a pause (``gap_s``), one untimed call, then ``block`` timed calls.

    The pause matters: ONNX Runtime's and PyTorch's worker threads spin for a while after a
    call, and on a 2-core machine the spinning threads of one runtime would steal the cores
    from the next one's call (measured: PyTorch eager 2-6x slower right after an ORT call).
    A deployment runs one model at a time, so each variant is timed with the cores to itself.
    """
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            time.sleep(gap_s)
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return times


def bench_model(model: str, bundle: Path, threads: int, batch: int, rounds: int, block: int, gap_s: float) -> dict:
    import torch

    from runtime.bundle import Bundle
    from runtime.runners import Target, open_runner

    b = Bundle.open(bundle)
    x = b.golden().inputs(b.preprocessing)
    x = np.ascontiguousarray(np.concatenate([x] * (-(-batch // len(x))))[:batch], dtype=np.float32)
    feed = {b.input_name: x}
    module = torch_model(model, threads)
    tx = torch.from_numpy(x.copy())

    def run_torch():
        with torch.inference_mode():
            module(tx)

    fns = {"torch": run_torch}
    runners = {}
    for variant in ("fp32", "fp16", "int8", "int8-cpu"):
        if variant not in b.precisions:
            continue
        # "int8" here is the TensorRT-style Q/DQ graph itself (qdq), "int8-cpu" the U8S8 one.
        runners[variant] = open_runner(b, variant, Target(threads=threads, qdq=(variant == "int8")))
        fns[variant] = (lambda r: lambda: r.infer(feed))(runners[variant])
    log(f"{model}: {rounds} rounds x {block} calls of {', '.join(fns)} (batch {batch}, {threads} threads)")
    times = interleaved_times(fns, rounds, block, gap_s)
    overhead = runner_overhead(runners["fp32"], feed, pairs=rounds * block * 2)
    for r in runners.values():
        r.close()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    low = {k: min(v) * 1e3 for k, v in times.items()}
    report = json.loads((bundle / "report.json").read_text())
    fidelity = {r["precision"]: {"cosine_min": r["cosine_min"], "passed": r["passed"]}
                for r in report["results"] if r["backend"] == "onnxruntime" and r["provider"] == "cpu"}
    return {"model": model, "median_ms": med, "min_ms": low, "calls": rounds * block, "overhead": overhead,
            "fidelity": fidelity,
            "ops_int8_cpu": json.loads((bundle / "manifest.json").read_text()).get("int8_cpu", {}).get("ops")}


def runner_overhead(runner, feed: dict, pairs: int) -> dict:
    """edgeport's ``runner.infer(feed)`` against a bare ``session.run`` on the *same* session.

    One InferenceSession serves both, called alternately (order flipped every pair), so
    the difference is only what the runner adds: feed validation and the output dict.
    Also times the validation alone, the runner's only extra work, which noise cannot hide.
    """
    session = runner.session
    names = [o.name for o in session.get_outputs()]
    runner_s, bare_s = [], []
    for i in range(pairs):
        order = ((runner_s, lambda: runner.infer(feed)), (bare_s, lambda: session.run(names, feed)))
        for bucket, fn in (order if i % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - t0)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        runner._validate(feed)
    validate_us = (time.perf_counter() - t0) / n * 1e6
    r_med, b_med = statistics.median(runner_s) * 1e3, statistics.median(bare_s) * 1e3
    return {"runner_ms": r_med, "bare_ms": b_med, "overhead": r_med / b_med - 1, "pairs": pairs,
            "validate_us": validate_us, "validate_share": validate_us / 1e3 / b_med}


def trained_agreement(workdir: Path, openvino: bool = False, threads: int = 2) -> dict:
    """Top-1 agreement of the INT8 graphs with PyTorch on the trained test model's held-out crops
    (with ``openvino``: also edgeport's OpenVINO INT8 and OpenVINO's NNCF INT8, key "openvino")."""
    sys.path.insert(0, str(REPO / "tests"))
    from trained_model import build_trained_model

    tm = build_trained_model(workdir / "trained")
    out = workdir / "trained_bundle"
    run_export([*tm.export_args(), "--int8", *(["--int8-openvino"] if openvino else []), "--calib-data",
                str(tm.calib), "--output", str(out), "-q"], check=False)
    bundle = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows = {r["precision"]: r for r in json.loads((bundle / "report.json").read_text())["results"]}
    result = {p: {"top1_agreement": rows[p]["top1_agreement"], "cosine_min": rows[p]["cosine_min"],
                  "samples": rows[p]["samples"]} for p in ("int8", "int8-cpu", "int8-ov") if p in rows} | {
        "heldout_accuracy_fp32": tm.heldout_accuracy}
    if openvino:
        from openvino_bench import trained_agreement as ov_agreement

        from runtime.bundle import Bundle

        b = Bundle.open(bundle)
        result["openvino"] = ov_agreement(b, calibration_set(b, tm.calib), threads)
    return result


def calibration_set(bundle, path: Path | None = None):
    """The calibration set edgeport's export used (default: the shipped one), for NNCF."""
    from exporter.int8.calibration import default_calib_dir, load_calibration

    return load_calibration(path or default_calib_dir(), bundle.preprocessing, tuple(bundle.manifest.input.chw),
                            None, input_name=bundle.input_name)


def openvino_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10, help="Rounds over all variants (default 10).")
    ap.add_argument("--block", type=int, default=5, help="Timed calls per variant per round (default 5).")
    ap.add_argument("--gap", type=float, default=0.1, help="Pause before each variant's block, s (default 0.1).")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--workdir", type=Path, default=None, help="Where bundles go (default: a temp folder).")
    ap.add_argument("--reuse", action="store_true", help="Reuse bundles already in --workdir.")
    ap.add_argument("--skip-export", action="store_true", help="Skip the export wall/RSS measurement.")
    ap.add_argument("--skip-trained", action="store_true", help="Skip the trained-model top-1 check.")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ov = ap.add_mutually_exclusive_group()
    ov.add_argument("--openvino", action="store_true", help="Only the OpenVINO comparison (and the trained model).")
    ov.add_argument("--no-openvino", action="store_true", help="Skip the OpenVINO comparison.")
    ap.add_argument("--ov-batches", default="1,8", help="Batches of the OpenVINO comparison (default 1,8).")
    args = ap.parse_args(argv)
    if min(args.threads, args.batch, args.rounds, args.block) < 1 or args.gap < 0:
        ap.error("--threads, --batch, --rounds and --block must be at least 1, --gap at least 0")
    args.ov_batches = [int(b) for b in args.ov_batches.split(",") if b]
    if args.openvino and not openvino_available():
        ap.error("--openvino needs openvino and nncf: pip install 'edgeport[openvino]'")
    args.use_ov = not args.no_openvino and openvino_available()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    use_ov = args.use_ov

    from runtime.machine import describe_machine_line
    from runtime.machine import describe_machine, load_average

    machine = describe_machine(args.threads, extra_versions=("torch", "torchvision", "onnx", "onnxsim", "nncf"))
    machine["load_avg_before"] = load_average()
    log(f"machine: {describe_machine_line(machine)}")
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edgeport-bench-")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
        workdir.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]
    results = {"machine": machine, "threads": args.threads, "batch": args.batch, "models": {}}
    bundles = export_bundles(workdir, models, args.reuse, openvino=use_ov)
    for model in models:
        if not args.openvino:
            results["models"][model] = bench_model(model, bundles[model], args.threads, args.batch, args.rounds,
                                                   args.block, args.gap)
        if use_ov:
            results.setdefault("openvino", {})[model] = run_openvino(bundles[model], args)
    if not args.skip_export and not args.openvino:
        from export_profile import merge_stages, profile_export

        log("measuring `edgeport export --model densenet121 --weights none --int8` in a subprocess")
        with tempfile.TemporaryDirectory(prefix="edgeport-bench-export-") as out:
            prof = profile_export(["--model", "densenet121", "--weights", "none", "--int8", "--output", out])
        prof["stages"] = merge_stages(prof["stages"])
        results["export"] = prof
    if not args.skip_trained:
        log("training the small test model and exporting it with --int8 (top-1 agreement)")
        results["trained"] = trained_agreement(workdir, openvino=use_ov, threads=args.threads)
    machine["load_avg_after"] = load_average()
    results["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    text = render(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.md").write_text(text + "\n")
    log(f"wrote {args.out / 'latest.json'} and latest.md")
    if tmp is not None:
        tmp.cleanup()
    return 0


def run_openvino(bundle_dir: Path, args) -> dict:
    from openvino_bench import bench_openvino

    from runtime.bundle import Bundle

    b = Bundle.open(bundle_dir)
    return bench_openvino(b, calibration_set(b), threads=args.threads, batches=args.ov_batches, rounds=args.rounds,
                          block=args.block, gap_s=args.gap, log=log)


def _models_table(results: dict) -> list[str]:
    """PyTorch and edgeport's variants, interleaved at one batch: medians and ratios."""
    lines = []
    header = ["model"] + [LABELS[v] for v in VARIANTS] + ["ORT FP32 vs PyTorch", "INT8-CPU vs ORT FP32",
                                                          "INT8 (Q/DQ) vs ORT FP32", "runner vs bare session.run"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, r in results["models"].items():
        med = r["median_ms"]
        cells = [model] + [f"{med[v]:.2f} ms" if v in med else "-" for v in VARIANTS]
        cells += [f"{med['torch'] / med['fp32']:.2f}x", f"{med['fp32'] / med['int8-cpu']:.2f}x" if "int8-cpu" in med
                  else "-", f"{med['fp32'] / med['int8']:.2f}x" if "int8" in med else "-",
                  f"{r['overhead']['overhead'] * 100:+.1f} % (validation {r['overhead']['validate_us']:.0f} us)"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Fidelity vs PyTorch (golden set, centered cosine min): " + "; ".join(
        f"{m}: " + ", ".join(f"{p} {f['cosine_min']:.4f}" for p, f in r["fidelity"].items() if p.startswith("int8"))
        for m, r in results["models"].items())]
    return lines


def render(results: dict) -> str:
    """Markdown: per-model medians, ratios, export stages, targets."""
    from runtime.machine import describe_machine_line

    lines = [f"Machine: {describe_machine_line(results['machine'])}.",
             f"Batch {results['batch']}, {results['threads']} threads, median of "
             f"{next(iter(results['models'].values()))['calls'] if results['models'] else 0} calls per variant, "
             "variants interleaved in blocks (random weights).", ""]
    if not results["models"]:  # --openvino: only the OpenVINO comparison ran
        lines = lines[:1]
    if results["models"]:
        lines += _models_table(results)
    if results.get("openvino"):
        from openvino_bench import render as render_openvino

        lines += render_openvino(results["openvino"])
    exp = results.get("export")
    if exp:
        lines += ["", f"`{exp['command']}` (fresh calibration cache): wall {exp['wall_s']:.1f} s, peak RSS "
                      f"{exp['peak_rss_mib']:.0f} MiB, exit {exp['returncode']}", "",
                  "| stage | wall s | peak RSS MiB |", "|---|---|---|"]
        for s in exp["stages"]:
            rss = "-" if s["peak_rss_mib"] is None else f"{s['peak_rss_mib']:.0f}"
            lines.append(f"| {s['stage']} | {s['wall_s']:.1f} | {rss} |")
    tr = results.get("trained")
    if tr:
        lines += ["", "Trained test model (tests/trained_model.py, 70 held-out crops): FP32 accuracy "
                      f"{tr['heldout_accuracy_fp32']:.1%}; top-1 agreement with PyTorch: " + ", ".join(
                          f"{p} {v['top1_agreement']:.1%}" for p, v in tr.items()
                          if isinstance(v, dict) and "top1_agreement" in v)]
        if "openvino" in tr:
            lines[-1] += "; " + ", ".join(f"{label} {tr['openvino'][v]:.1%}" for v, label in (
                ("epov-int8", "edgeport OpenVINO INT8"), ("ov-int8", "OpenVINO INT8 (NNCF)")) if v in tr["openvino"])
    lines += ["", "Targets:"] + [f"- {t}" for t in check_targets(results)]
    return "\n".join(lines)


def check_targets(results: dict) -> list[str]:
    out = []
    models = results["models"]
    for model, need in TARGETS["ort_vs_torch"].items():
        if model in models:
            med = models[model]["median_ms"]
            ratio = med["torch"] / med["fp32"]
            out.append(f"ORT FP32 >= {need}x PyTorch eager on {model}: {ratio:.2f}x -> {verdict(ratio >= need)}")
    for model, need in TARGETS["int8cpu_vs_fp32"].items():
        if model in models and "int8-cpu" in models[model]["median_ms"]:
            med = models[model]["median_ms"]
            ratio = med["fp32"] / med["int8-cpu"]
            cos = models[model]["fidelity"].get("int8-cpu", {}).get("cosine_min", float("nan"))
            ok = ratio >= need and cos >= TARGETS["int8cpu_cosine_min"]
            out.append(f"INT8-CPU >= {need}x ORT FP32 on {model} with cosine >= 0.99: {ratio:.2f}x, cosine "
                       f"{cos:.4f} -> {verdict(ok)}")
    if models:
        worst = max((models[m]["overhead"]["overhead"], m) for m in models)
        out.append(f"runner overhead <= 3 % over a bare InferenceSession.run (same session, alternating): worst "
                   f"{worst[0] * 100:+.1f} % ({worst[1]}) -> {verdict(worst[0] <= TARGETS['runner_overhead_max'])}")
    exp = results.get("export")
    if exp:
        ok = (exp["returncode"] == 0 and exp["wall_s"] <= TARGETS["export_wall_s_max"]
              and exp["peak_rss_mib"] <= TARGETS["export_peak_rss_mib_max"])
        out.append(f"export densenet121 --int8 <= 90 s and <= 4 GB: {exp['wall_s']:.1f} s, "
                   f"{exp['peak_rss_mib'] / 1024:.2f} GB -> {verdict(ok)}")
    tr = results.get("trained")
    if tr and "int8-cpu" in tr:
        agree = tr["int8-cpu"]["top1_agreement"]
        out.append(f"INT8-CPU top-1 agreement >= 97 % on the trained model: {agree:.1%} -> "
                   f"{verdict(agree >= TARGETS['int8cpu_top1_agreement_min'])}")
    return out


if __name__ == "__main__":
    sys.exit(main())
