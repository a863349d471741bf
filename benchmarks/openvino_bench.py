"""OpenVINO beside edgeport on the CPU (issue 21), called by benchmarks/run.py (``--openvino``).

For one exported bundle (``export --int8 --int8-openvino``), in the caller's process (one
process per model), at each batch:

- the baselines, written the way an OpenVINO user would, straight on OpenVINO's API and never
  through edgeport: **OpenVINO FP32** = ``compile_model(model.onnx)`` with the CPU plugin's
  defaults (on CPUs with native bfloat16, AVX512_BF16 or AMX, that default is bf16 arithmetic:
  the printed inference precision says which), and **OpenVINO INT8** = ``nncf.quantize`` of
  ``read_model(model.onnx)`` (NNCF's OpenVINO backend) on the same calibration set edgeport's
  export used, every sample; each also reshaped to the call's static batch, and (batch > 1)
  split into two asynchronous requests on two streams, what edgeport's runner does;
- edgeport's CPU variants through its own runner (``open_runner``): ONNX Runtime FP32 and
  INT8-CPU, and ``--backend openvino`` FP32 (f32), FP16 and INT8 (model.int8-ov.onnx).

Every variant gets the same threads, the batch's hint (LATENCY for 1, THROUGHPUT above; one
stream, except the "2 streams" baselines and edgeport's own runner, which splits a batch as
runtime/runners/openvino.py explains), and is timed in interleaved blocks with a pause before each (run.interleaved_times: runtimes never
alternate call by call). Cosine: centered cosine min against the golden set's PyTorch outputs.
"""

from __future__ import annotations

import statistics

import numpy as np

# variant -> label; "ov-*" are OpenVINO's own baselines, the rest edgeport's runner.
VARIANTS = {
    "ort-fp32": "edgeport ORT FP32",
    "ort-int8-cpu": "edgeport ORT INT8-CPU",
    "epov-fp32": "edgeport OpenVINO FP32 (f32)",
    "epov-fp16": "edgeport OpenVINO FP16",
    "epov-int8": "edgeport OpenVINO INT8 (model.int8-ov.onnx)",
    "ov-fp32": "OpenVINO FP32 (plugin default)",
    "ov-int8": "OpenVINO INT8 (NNCF PTQ)",
    "ov-fp32-static": "OpenVINO FP32 (plugin default, static batch)",
    "ov-int8-static": "OpenVINO INT8 (NNCF PTQ, static batch)",
    "ov-fp32-streams": "OpenVINO FP32 (plugin default, static, 2 streams)",
    "ov-int8-streams": "OpenVINO INT8 (NNCF PTQ, static, 2 streams)",
}
# OpenVINO's baselines: what a user writes first; the same with the model reshaped to each
# call's static batch; and, beyond that, a batch split into two asynchronous requests on two
# streams (OpenVINO's THROUGHPUT recipe). edgeport's runner does both; any user could too.
BASELINES = {"int8": ("ov-int8", "ov-int8-static", "ov-int8-streams"),
             "fp32": ("ov-fp32", "ov-fp32-static", "ov-fp32-streams")}
EDGEPORT = {"ort-fp32": ("onnxruntime", "fp32"), "ort-int8-cpu": ("onnxruntime", "int8-cpu"),
            "epov-fp32": ("openvino", "fp32"), "epov-fp16": ("openvino", "fp16"), "epov-int8": ("openvino", "int8")}


def hint(batch: int) -> str:
    return "LATENCY" if batch == 1 else "THROUGHPUT"


def nncf_model(core, onnx_path, calib, input_name: str):
    """OpenVINO's own INT8: NNCF post-training quantization of model.onnx read by OpenVINO."""
    import nncf

    xs = calib.inputs()
    return nncf.quantize(core.read_model(str(onnx_path)), nncf.Dataset([xs[i:i + 1] for i in range(len(xs))]),
                         subset_size=len(xs))


class _Plain:
    """An OpenVINO model compiled per hint (or, ``static``, per batch), called on a bare array;
    with ``streams`` > 1 a batch that splits evenly runs as that many asynchronous requests."""

    def __init__(self, core, model, threads: int, static: bool = False, streams: int = 1):
        self.core, self.model, self.threads, self.static, self.streams = core, model, threads, static, streams
        self.compiled = {}

    def _compile(self, batch: int, streams: int):
        model = self.model
        if self.static:  # model.reshape works in place: reshape a copy to this batch
            model = self.model.clone()
            shape = model.inputs[0].get_partial_shape()
            shape[0] = batch // streams
            model.reshape(shape)
        compiled = self.core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint(batch), "NUM_STREAMS": streams,
                                                          "INFERENCE_NUM_THREADS": self.threads})
        return [compiled.create_infer_request() for _ in range(streams)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        streams = self.streams if len(x) > 1 and len(x) % self.streams == 0 else 1
        key = len(x) if self.static else hint(len(x))
        if key not in self.compiled:
            self.compiled[key] = self._compile(len(x), streams)
        requests = self.compiled[key]
        if len(requests) == 1:
            return np.array(requests[0].infer({0: x})[0])
        part = len(x) // len(requests)
        for k, r in enumerate(requests):
            r.start_async({0: x[k * part:(k + 1) * part]})
        for r in requests:
            r.wait()
        return np.concatenate([r.get_output_tensor(0).data for r in requests])

    def precision(self) -> str:
        c = self.core.compile_model(self.model, "CPU", {"INFERENCE_NUM_THREADS": self.threads})
        return c.get_property("INFERENCE_PRECISION_HINT").to_string()


def open_variants(bundle, threads: int, calib, log) -> tuple[dict, dict]:
    """{variant: callable(x) -> logits} and {variant: note} for what this bundle has."""
    import openvino as ov

    from runtime.runners import Target, open_runner

    fns, notes = {}, {}
    for variant, (backend, precision) in EDGEPORT.items():
        key = "int8-ov" if variant == "epov-int8" else precision
        if key not in bundle.precisions:
            continue
        runner = open_runner(bundle, precision, Target(backend=backend, threads=threads))
        fns[variant] = (lambda r: lambda x: r.infer(x)[bundle.output_name])(runner)
        notes[variant] = runner.resolved.path.name
    core = ov.Core()
    fp32 = _Plain(core, core.read_model(str(bundle.artifact_path("fp32"))), threads)
    fns["ov-fp32"] = fp32
    notes["ov-fp32"] = f"model.onnx, inference precision {fp32.precision()}"
    log(f"{bundle.manifest.model.name}: NNCF post-training quantization (OpenVINO backend, {len(calib)} samples)")
    int8 = nncf_model(core, bundle.artifact_path("fp32"), calib, bundle.input_name)
    fns["ov-int8"] = _Plain(core, int8, threads)
    notes["ov-int8"] = "nncf.quantize(read_model(model.onnx)), same calibration set"
    fns["ov-fp32-static"] = _Plain(core, fp32.model, threads, static=True)
    notes["ov-fp32-static"] = notes["ov-fp32"] + ", reshaped to each batch"
    fns["ov-int8-static"] = _Plain(core, int8, threads, static=True)
    notes["ov-int8-static"] = "the same NNCF model, reshaped to each batch"
    fns["ov-fp32-streams"] = _Plain(core, fp32.model, threads, static=True, streams=2)
    notes["ov-fp32-streams"] = notes["ov-fp32-static"] + " / 2, two async requests on 2 streams"
    fns["ov-int8-streams"] = _Plain(core, int8, threads, static=True, streams=2)
    notes["ov-int8-streams"] = notes["ov-int8-static"] + " / 2, two async requests on 2 streams"
    return fns, notes


def cosines(fns: dict, x: np.ndarray, reference: np.ndarray) -> dict:
    from runtime.compare import centered_cosine

    return {v: float(centered_cosine(np.concatenate([fn(x[i:i + 1]) for i in range(len(x))]), reference).min())
            for v, fn in fns.items()}


def bench_openvino(bundle, calib, *, threads: int, batches, rounds: int, block: int, gap_s: float, log) -> dict:
    """Medians per batch, images/s, cosine min and notes for every variant of one bundle."""
    from run import interleaved_times

    from runtime.benchmark import batch_input

    fns, notes = open_variants(bundle, threads, calib, log)
    golden = bundle.golden()
    images = np.ascontiguousarray(golden.inputs(bundle.preprocessing), dtype=np.float32)
    out = {"notes": notes, "cosine_min": cosines(fns, images, golden.outputs), "batches": {}}
    for batch in batches:
        x = batch_input(images, batch)
        calls = {v: (lambda f: lambda: f(x))(fn) for v, fn in fns.items()}
        log(f"{bundle.manifest.model.name}: OpenVINO comparison, batch {batch}: {rounds} rounds x {block} calls")
        times = interleaved_times(calls, rounds, block, gap_s)
        med = {v: statistics.median(t) * 1e3 for v, t in times.items()}
        # Each round's median too: the spread of a ratio over rounds says how much of it is noise.
        per_round = {v: [statistics.median(t[i * block:(i + 1) * block]) * 1e3 for i in range(rounds)]
                     for v, t in times.items()}
        out["batches"][str(batch)] = {"median_ms": med, "images_per_s": {v: batch * 1e3 / m for v, m in med.items()},
                                      "round_median_ms": per_round}
    return out


def round_ratios(row: dict, ours: str, theirs: str) -> tuple[float, float] | None:
    """The lowest and highest per-round speed ratio of ``ours`` over ``theirs`` (None without rounds)."""
    rounds = row.get("round_median_ms") or {}
    if ours not in rounds or theirs not in rounds:
        return None
    r = [b / a for a, b in zip(rounds[ours], rounds[theirs])]
    return min(r), max(r)


def ratios(result: dict) -> list[dict]:
    """Per batch: edgeport's best INT8 vs each OpenVINO INT8 baseline and its best FP32-class
    variant vs each OpenVINO FP32 baseline (BASELINES)."""
    out = []
    cos = result["cosine_min"]
    for batch, row in result["batches"].items():
        ips = row["images_per_s"]
        for kind, ours in (("int8", ("ort-int8-cpu", "epov-int8")), ("fp32", ("ort-fp32", "epov-fp32", "epov-fp16"))):
            mine = {v: ips[v] for v in ours if v in ips}
            for theirs in (b for b in BASELINES[kind] if b in ips):
                if not mine:
                    continue
                # Among edgeport's variants, the fastest whose cosine is no more than 0.0005 below OpenVINO's.
                ok = {v: s for v, s in mine.items() if cos[v] >= cos[theirs] - 0.0005} or mine
                v = max(ok, key=ok.get)
                out.append({"batch": int(batch), "kind": kind, "edgeport": v, "openvino": theirs,
                            "ratio": ok[v] / ips[theirs], "rounds": round_ratios(row, v, theirs),
                            "cosine": cos[v], "cosine_openvino": cos[theirs],
                            "met": ok[v] >= ips[theirs] and cos[v] >= cos[theirs] - 0.0005})
    return out


def trained_agreement(bundle, calib, threads: int) -> dict:
    """Top-1 agreement with PyTorch on the trained model's held-out crops (its golden set) of
    edgeport's OpenVINO INT8 and OpenVINO's own NNCF INT8."""
    fns, _ = open_variants(bundle, threads, calib, lambda m: None)
    golden = bundle.golden()
    x = np.ascontiguousarray(golden.inputs(bundle.preprocessing), dtype=np.float32)
    want = golden.outputs.argmax(axis=1)
    return {v: float(np.mean(np.concatenate([fns[v](x[i:i + 1]) for i in range(len(x))]).argmax(axis=1) == want))
            for v in ("epov-int8", "ov-int8") if v in fns}


def render(results: dict) -> list[str]:
    """Markdown lines: the issue's table per model and batch, then the ratios."""
    lines = ["", "OpenVINO beside edgeport (CPU, same threads; images/s; cosine min vs PyTorch on the golden set):", ""]
    batches = sorted({b for r in results.values() for b in r["batches"]}, key=int)
    header = ["model", "variant"] + [f"batch {b} ms" for b in batches] + [f"batch {b} img/s" for b in batches] \
        + ["cosine min", "runs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, r in results.items():
        for v, label in VARIANTS.items():
            if v not in r["cosine_min"]:
                continue
            ms = [f"{r['batches'][b]['median_ms'][v]:.1f}" for b in batches]
            ips = [f"{r['batches'][b]['images_per_s'][v]:.1f}" for b in batches]
            lines.append("| " + " | ".join([model, label, *ms, *ips, f"{r['cosine_min'][v]:.6f}", r["notes"][v]]) + " |")
    lines += ["", "edgeport's best vs OpenVINO (>= 1.0x at a cosine no lower than OpenVINO's by more than 0.0005; "
                  "rounds: the lowest and highest ratio of one round's medians, the noise of the run):"]
    for model, r in results.items():
        for q in ratios(r):
            spread = f", rounds {q['rounds'][0]:.2f}-{q['rounds'][1]:.2f}x" if q.get("rounds") else ""
            lines.append(f"- {model} batch {q['batch']} {q['kind']}: {VARIANTS[q['edgeport']]} {q['ratio']:.2f}x "
                         f"{VARIANTS[q['openvino']]}{spread} (cosine {q['cosine']:.6f} vs {q['cosine_openvino']:.6f}) "
                         f"-> {'met' if q['met'] else 'NOT met'}")
    return lines
