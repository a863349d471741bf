"""The conformance matrix: every torchvision classifier through export, verify and TensorRT-RTX builds.

`make conformance` (not part of `make test`): each model of
``torchvision.models.list_models(module=torchvision.models)``, random-init weights (nothing
downloads), at a small input the model allows (64 px, or its documented minimum; 224 px when export
refuses the small one with its AdaptiveAvgPool2d hint), goes through
``edgeport export --fp16 --int8``, ``edgeport verify`` and ``edgeport build --runtime
tensorrt-rtx`` per precision for compute capabilities 7.5, 8.6 and 12.0, as a user would run
them (subprocesses: the CLI's exit codes and messages are what is measured). One JSON per model
in the results folder, so a rerun resumes where it stopped; docs/conformance.md and .json are
written from every result there. A cell that says "bug in edgeport" or shows a traceback is a
finding (marked "bug").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu")
BUILT = ("fp32", "fp16", "int8")  # TensorRT-RTX engines (int8-cpu is ONNX Runtime's CPU graph)
CCS = ("7.5", "8.6", "12.0")
SMALL = 64
FULL = 224
# Parameters above which export (ONNX copy, onnxsim, FP16 and INT8 graphs, calibration all in
# memory at once) does not fit next to other work on this 2-core, 24 GB machine.
MAX_PARAMS = 150_000_000


def classifiers() -> list[dict]:
    """Every torchvision classifier: name, parameter count and minimum input (torchvision's own metadata)."""
    import torchvision

    found = []
    for name in torchvision.models.list_models(module=torchvision.models):
        meta = next(iter(torchvision.models.get_model_weights(name))).meta
        found.append({"model": name, "params": int(meta["num_params"]), "min_size": int(max(meta["min_size"]))})
    return sorted(found, key=lambda m: (m["params"], m["model"]))


def input_size(entry: dict, small: int = SMALL) -> int:
    """The smallest input of at least ``small`` px the model accepts (ViT/Swin/MaxViT: their fixed size)."""
    return max(small, entry["min_size"])


def _edgeport(args: list[str], timeout: int) -> tuple[int, str, str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "edgeport", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT)
        return done.returncode, done.stdout, done.stderr, time.monotonic() - started
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s", time.monotonic() - started


def failure(rc: int, stderr: str) -> dict:
    """A failed step: its exit code, the one-paragraph reason, and whether it is an edgeport bug."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgeport: error:")]
    reason = errors[-1].removeprefix("edgeport: error:").strip() if errors else (lines[-1] if lines else "no message")
    bug = "Traceback (most recent call last)" in stderr or "bug in edgeport" in stderr.lower()
    return {"status": "bug" if bug else "fail", "exit": rc, "reason": reason[:1200]}


def _json(stdout: str):
    """The ``result`` of a command's --json envelope (``{"command", "ok", "exit_code", "bundle",
    "result", "error"}``), or None when stdout is not that envelope."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(data, dict) or "command" not in data:
        return None
    return data.get("result") if data.get("result") is not None else {}


def export_step(entry: dict, size: int, out: Path, timeout: int) -> dict:
    args = ["export", "-m", "torchvision.models:get_model", "--factory-arg", f"name={entry['model']}",
            "--factory-arg", "weights=None", "--name", entry["model"], "--input-size", str(size),
            "--fp16", "--int8", "-o", str(out), "--force", "--engine", "no", "--no-verify", "--json"]
    rc, stdout, stderr, seconds = _edgeport(args, timeout)
    result = {"seconds": round(seconds, 1)}
    data = _json(stdout)
    if rc != 0 or data is None:
        result.update(failure(rc, stderr) if rc else {"status": "bug", "exit": rc, "reason": "stdout is not JSON"})
    else:
        result.update(status="pass", timings_s=data.get("timings_s"))
    return result


def verify_step(bundle: Path, timeout: int) -> dict:
    rc, stdout, stderr, seconds = _edgeport(["verify", str(bundle), "--json"], timeout)
    data = _json(stdout)
    if data is None or rc not in (0, 1):
        return {"seconds": round(seconds, 1), **failure(rc, stderr)}
    cells = {}
    diagnoses = data.get("int8_diagnosis") or {}
    for r in data.get("results", []):
        reason = "; ".join(r.get("failures") or []) or None
        if reason and r["precision"] in diagnoses:
            reason += f" ({diagnosis_text(diagnoses[r['precision']])})"
        cells[r["precision"]] = {"status": "pass" if r["passed"] else "fail", "cosine": r.get("cosine_min"),
                                 "reason": reason}
    return {"seconds": round(seconds, 1), "status": "pass" if rc == 0 else "fail", "precisions": cells}


def diagnosis_text(d: dict) -> str:
    """verify's INT8 diagnosis in one sentence: where the error jumps, which half carries it, what to try."""
    if not d.get("layer"):
        where = d.get("note") or "no single layer stands out"
    else:
        where = (f"error jumps at {d['layer']} ({d.get('op_type')}), cosine {d.get('cosine_before', 0):.4f} -> "
                 f"{d.get('cosine_at', 0):.4f}" + (f", carried by its {d['carrier']}" if d.get("carrier") else ""))
    steps = d.get("next_steps") or []
    return where + (f"; try {steps[0]}" if steps else "")


def layer_counts(sidecar: dict) -> dict:
    """The engine's compute layers per precision (the build log's layer information, in the sidecar)."""
    layers = (sidecar or {}).get("layers") or {}
    return dict(layers.get("compute_layers_by_precision") or {})


def build_step(bundle: Path, precision: str, cc: str, timeout: int) -> dict:
    args = ["build", str(bundle), "--runtime", "tensorrt-rtx", "--compute-capability", cc,
            "--precision", precision, "--json"]
    rc, stdout, stderr, seconds = _edgeport(args, timeout)
    data = _json(stdout)
    if rc != 0 or not data:
        return {"seconds": round(seconds, 1), **failure(rc, stderr)}
    engines = data.get("engines") or []
    if not engines:
        return {"seconds": round(seconds, 1), "status": "fail", "exit": rc, "reason": "no engine reported"}
    built = engines[0]
    for engine in bundle.glob("*.engine"):  # the next build's disk space; the sidecar is kept
        engine.unlink()
    return {"seconds": round(built.get("seconds", seconds), 1), "status": "pass",
            "layers": layer_counts(built.get("sidecar"))}


def run_model(entry: dict, work: Path, *, small: int = SMALL, ccs=CCS, timeout: int = 1800) -> dict:
    """Export, verify and build one model; the record of every cell (also on failure)."""
    size = input_size(entry, small)
    record = {**entry, "input_size": size, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    record["export"] = export_step(entry, size, work, timeout)
    if record["export"].get("exit") == 2 and "AdaptiveAvgPool2d's output size must divide" in record["export"]["reason"]:
        # AlexNet/VGG: ONNX cannot express their 6x6/7x7 adaptive pool of a smaller map (export's
        # own hint says so); the smallest input they export at is 224 (7 x 32).
        record["small_input_refused"], size = record["export"], FULL
        record["input_size"], record["export"] = size, export_step(entry, size, work, timeout)
    bundle = work / entry["model"]
    if record["export"]["status"] != "pass":
        return record
    record["verify"] = verify_step(bundle, timeout)
    record["build"] = {p: {cc: build_step(bundle, p, cc, timeout) for cc in ccs} for p in BUILT}
    return record


def skipped(entry: dict) -> dict:
    size_gb = entry["params"] * 4 / 1e9
    return {**entry, "skipped": f"too large for this 2-core, 24 GB machine: {entry['params'] / 1e6:.0f}M "
                                f"parameters ({size_gb:.1f} GB in FP32; the export holds several copies)"}


# -- the matrix ------------------------------------------------------------------------------------
def _cell(step: dict | None) -> str:
    if not step:
        return "-"
    if step["status"] == "pass":
        return "pass"
    # exit 2 is a refusal before any work (a usage error); the table keeps its first sentence,
    # docs/conformance.json the whole paragraph.
    label = "refused" if step.get("exit") == 2 and step["status"] == "fail" else step["status"].upper()
    reason = str(step.get("reason"))
    first = reason.split(". ", 1)[0].rstrip(".") + "."
    return f"**{label}** (exit {step.get('exit')}): {first}"


def _verify_cell(record: dict, precision: str) -> str:
    verify = record.get("verify") or {}
    cell = (verify.get("precisions") or {}).get(precision)
    if cell is None:
        return _cell(verify) if verify.get("status") not in (None, "pass", "fail") else "-"
    cos = "" if cell["cosine"] is None else f" cos {cell['cosine']:.4f}"
    return f"{cell['status']}{cos}" + (f": {cell['reason']}" if cell["reason"] else "")


def _build_cells(record: dict, precision: str, ccs) -> list[str]:
    builds = (record.get("build") or {}).get(precision) or {}
    cells = []
    for cc in ccs:
        step = builds.get(cc)
        if step and step["status"] == "pass":
            layers = step["layers"]
            cells.append(f"pass {step['seconds']} s; {layers.get('int8', 0)}/{layers.get('fp16', 0)}/"
                         f"{layers.get('fp32', 0)}")
        else:
            cells.append(_cell(step) if precision in BUILT else "n/a")
    return cells


def model_rows(record: dict, ccs=CCS) -> list[str]:
    name = f"{record['model']} ({record['params'] / 1e6:.1f}M, {record.get('input_size', '-')} px)"
    if record.get("skipped"):
        return [f"| {name} | all | skipped: {record['skipped']} |" + " |" * (1 + len(ccs))]
    export = record["export"]
    if export["status"] != "pass":
        return [f"| {name} | all | export {export['seconds']} s: {_cell(export)} |" + " |" * (1 + len(ccs))]
    rows = []
    for p in PRECISIONS:
        cells = [_verify_cell(record, p), *_build_cells(record, p, ccs)]
        rows.append(f"| {name} | {p} | export {export['seconds']} s | " + " | ".join(cells) + " |")
    return rows


def _int8_share_lines(done: list[dict], ccs) -> list[str]:
    """Per target: how many int8 engines run fewer than half their compute layers in INT8
    (`edgeport build` warns about each: no faster than fp16)."""
    lines = []
    for cc in ccs:
        cells = [c for r in done for c in [((r.get("build") or {}).get("int8") or {}).get(cc) or {}]
                 if c.get("status") == "pass" and c.get("layers")]
        mostly_float = [c for c in cells if 2 * c["layers"].get("int8", 0) < sum(c["layers"].values())]
        if mostly_float:
            lines.append(f"- int8 engines for {cc} running fewer than half their layers in INT8: {len(mostly_float)} of "
                         f"{len(cells)} built" + (" (NVIDIA's support matrix lists no INT8 for Turing; build fp16 "
                                                  "there)" if cc == "7.5" else "") + ".")
    return lines


def write_docs(records: list[dict], pending: list[str], wall_s: float, md: Path, js: Path, ccs=CCS) -> None:
    done = [r for r in records if not r.get("skipped")]
    bugs = sum(json.dumps(r).count('"status": "bug"') for r in done)
    lines = [
        "# Conformance matrix: every torchvision classifier", "",
        "Written by `make conformance` (scripts/conformance.py): each classifier "
        "`torchvision.models.list_models(module=torchvision.models)` knows, random-init weights, at 64 px or the "
        "model's minimum input (224 px where export refuses the small one: AlexNet and VGG, whose 6x6/7x7 adaptive "
        "pool ONNX cannot express on a smaller map; the cell keeps that refusal), through `edgeport export --fp16 --int8`, `edgeport verify` and `edgeport build "
        f"--runtime tensorrt-rtx --compute-capability CC --precision P` for {', '.join(ccs)} (CPU-only ahead-of-time "
        "builds). Build cells: seconds; the engine's compute layers INT8/FP16/FP32 (from the build's layer "
        "information in the sidecar). FAIL and refused (exit 2: before any work) cells carry the first sentence of "
        "the command's one-paragraph reason (docs/conformance.json has it whole); BUG marks a traceback or \"bug in "
        "edgeport\" (a finding). Random weights make cosine a graph check, not an accuracy claim.", "",
        f"Models: {len(records) + len(pending)}; done {len(done)}, skipped "
        f"{sum(1 for r in records if r.get('skipped'))}, pending {len(pending)}; BUG cells: {bugs}. "
        f"Wall time so far: {wall_s / 60:.1f} min on this machine (2 cores, shared).", "",
    ]
    for precision in PRECISIONS:
        failed = [r["model"] for r in done if (((r.get("verify") or {}).get("precisions") or {}).get(precision) or {})
                  .get("status") == "fail"]
        if failed:
            lines.append(f"- {precision} fails verification on {len(failed)} of {len(done)}: {', '.join(failed)}.")
    refused = sorted({r["model"] for r in done for p, b in (r.get("build") or {}).items() for cc, c in b.items()
                      if c.get("exit") == 2})
    if refused:
        lines += [f"- TensorRT-RTX builds refused before building (exit 2) on {len(refused)} of {len(done)} models."]
    lines += _int8_share_lines(done, ccs) + [""]
    if pending:
        lines += [f"Pending (not run yet; rerun `make conformance` to resume): {', '.join(pending)}.", ""]
    lines += ["| model | precision | export | verify | " + " | ".join(f"build sm{cc.replace('.', '')}" for cc in ccs)
              + " |", "|---" * (4 + len(ccs)) + "|"]
    for record in records:
        lines += model_rows(record, ccs)
    md.write_text("\n".join(lines) + "\n")
    js.write_text(json.dumps({"wall_s": round(wall_s, 1), "pending": pending, "models": records}, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "conformance-results")
    ap.add_argument("--work", type=Path, default=None, help="bundles (default: RESULTS/bundles)")
    ap.add_argument("--models", default="", help="comma list: a matrix of only these (the docs list only them; to "
                                                 "rerun a few models of the full matrix, delete their RESULTS/NAME.json "
                                                 "and run without --models). Default: every classifier")
    ap.add_argument("--budget-min", type=float, default=0, help="start no model after this many minutes (0: none)")
    ap.add_argument("--max-params", type=int, default=MAX_PARAMS)
    ap.add_argument("--small", type=int, default=SMALL, help="input size where the model allows it")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    ap.add_argument("--docs-only", action="store_true", help="only rewrite the docs from the results kept")
    ap.add_argument("--keep-bundles", action="store_true", help="keep each model's bundle (default: removed once recorded)")
    args = ap.parse_args(argv)
    results, work = args.results, args.work or args.results / "bundles"
    results.mkdir(parents=True, exist_ok=True)
    entries = classifiers()
    if args.models:
        wanted = set(args.models.split(","))
        entries = [e for e in entries if e["model"] in wanted]
    wall_file = results / "wall_s.txt"
    wall = float(wall_file.read_text()) if wall_file.exists() else 0.0
    started = time.monotonic()
    for entry in entries:
        out = results / f"{entry['model']}.json"
        if out.exists() or args.docs_only:
            continue
        if entry["params"] > args.max_params:
            record = skipped(entry)
        elif args.budget_min and time.monotonic() - started > args.budget_min * 60:
            continue  # pending; the models too large to run are still listed as skipped
        else:
            print(f"[conformance] {entry['model']} ...", file=sys.stderr, flush=True)
            record = run_model(entry, work, small=args.small)
            wall_file.write_text(str(wall + time.monotonic() - started))
            if not args.keep_bundles:  # a large model's bundle and engines take gigabytes
                shutil.rmtree(work / entry["model"], ignore_errors=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
    wall += time.monotonic() - started
    wall_file.write_text(str(wall))
    records = [json.loads((results / f"{e['model']}.json").read_text()) for e in entries
               if (results / f"{e['model']}.json").exists()]
    pending = [e["model"] for e in entries if not (results / f"{e['model']}.json").exists()]
    args.docs.mkdir(parents=True, exist_ok=True)
    write_docs(records, pending, wall, args.docs / "conformance.md", args.docs / "conformance.json")
    print(f"[conformance] {len(records)} done, {len(pending)} pending: {args.docs / 'conformance.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
