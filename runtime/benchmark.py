"""`edgeport bench`: latency percentiles and throughput of every artifact, per batch size.

Each (artifact, batch) is timed through edgeport's own runner (``Runner.infer``, exactly
what verify and predict call) on the bundle's golden images, after a warm-up: p50/p90/p99
and mean latency of one call, and throughput = images per second over the timed calls
(batch x calls / their summed time). The machine is described next to the numbers (CPU,
cores, threads, load average before and after, library versions), because a latency
means nothing without it.

Results are merged into the bundle's report.json under ``benchmarks``::

    {"machine": {...}, "results": [{backend, provider, precision, artifact, batch, threads,
     p50_ms, p90_ms, p99_ms, mean_ms, throughput_ips, iterations, ...}, ...]}

A new run replaces the results with the same (backend, provider, precision, batch,
threads); results measured on another machine (CPU model, cores or GPU differ) are
dropped, since they are not comparable with the new ones.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from typing import Callable, TypedDict

import numpy as np

from runtime.bundle import Bundle
from runtime.errors import UsageError
from runtime.runners import Target, open_runner, select_precisions

DEFAULT_WARMUP = 10
DEFAULT_DURATION_S = 3.0  # when neither --iterations nor --duration is given
MIN_ITERATIONS = 10  # a --duration run still times at least this many calls


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    precisions: tuple[str, ...] = ("all",)
    target: Target = Target()  # threads None: the backend's default (ORT: one per physical core)
    batches: tuple[int, ...] = (1,)
    warmup: int = DEFAULT_WARMUP
    iterations: int | None = None  # exactly this many timed calls ...
    duration: float | None = None  # ... or time calls for this many seconds (at least MIN_ITERATIONS)

    def validate(self) -> None:
        """Refuse option values no run could honour (the one place they are checked)."""
        if not self.batches:
            raise UsageError("Give at least one batch size (--batch 1,8).")
        bad = [b for b in self.batches if not isinstance(b, int) or isinstance(b, bool) or b < 1]
        if bad:
            raise UsageError(f"Batch sizes must be whole numbers of at least 1, got {bad}.")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, got {self.warmup}.")
        if self.iterations is not None and self.duration is not None:
            raise UsageError("Pass --iterations N or --duration S, not both.")
        if self.iterations is not None and self.iterations < 1:
            raise UsageError(f"--iterations must be at least 1, got {self.iterations}.")
        if self.duration is not None and not self.duration > 0:
            raise UsageError(f"--duration must be a positive number of seconds, got {self.duration}.")


class MachineInfo(TypedDict, total=False):
    """The keys of a benchmark's machine (runtime/machine.py: describe_machine) the pages read."""

    cpu: str | None
    arch: str | None
    logical_cores: int | None
    usable_cores: int | None
    threads: int | None
    vnni: bool
    gpu: str | None
    os: str | None
    hostname: str | None
    versions: dict[str, str]
    load_avg_before: list[float] | None
    load_avg_after: list[float] | None


@dataclasses.dataclass(frozen=True)
class Latency:
    """One (artifact, batch) timing: percentiles of one call and images per second."""

    precision: str
    backend: str
    provider: str
    artifact: str
    batch: int
    threads: int | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    throughput_ips: float | None
    iterations: int
    warmup: int
    measured_at: str

    @property
    def key(self) -> tuple:
        """Results with the same key replace each other in report.json."""
        return (self.backend, self.provider, self.precision, self.batch, self.threads)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Latency":
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))


@dataclasses.dataclass
class BenchmarkResult:
    """``run_benchmarks``' result, and report.json's ``benchmarks`` section: the machine of the
    newest run and its results (older results of the same machine kept by ``merge``)."""

    machine: MachineInfo  # CPU, cores, threads, load average, library versions (runtime/machine.py)
    results: list[Latency]
    # Why the report could not be written after the run (not part of report.json); None: written or not asked.
    report_error: str | None = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict:
        return {"machine": self.machine, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> "BenchmarkResult":
        from runtime.report.typed import fields_of

        return cls(**fields_of(cls, data))

    def merge(self, new: "BenchmarkResult", log: Callable[[str], None] = lambda s: None) -> "BenchmarkResult":
        """This section after ``new``: same-key results replaced, other machines' results dropped
        (not comparable), the machine of the newest run kept."""
        from runtime.machine import machine_fingerprint

        old = self.results
        if old and (not self.machine or machine_fingerprint(self.machine) != machine_fingerprint(new.machine)):
            log(f"dropping {len(old)} earlier benchmark result(s) measured on another machine")
            old = []
        keys = {r.key for r in new.results}
        return BenchmarkResult(machine=new.machine, results=[r for r in old if r.key not in keys] + list(new.results))

    def carry_over(self, changes, notes) -> "BenchmarkResult | None":
        """The results a re-export keeps (their artifact, or engine, byte-identical)."""
        rows = notes.filter(self.results, lambda r: changes.row_valid(r.precision, r.backend, r.artifact,
                                                                      golden=False), "benchmark result")
        return BenchmarkResult(machine=self.machine, results=rows) if rows else None


# -- timing -------------------------------------------------------------------------------------
def time_calls(fn: Callable[[], object], *, warmup: int, iterations: int | None, duration: float | None,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then time each call: ``iterations`` calls, or calls
    for ``duration`` seconds (at least MIN_ITERATIONS). Returns the seconds of each call."""
    for _ in range(warmup):
        fn()
    if iterations is None and duration is None:
        duration = DEFAULT_DURATION_S
    samples: list[float] = []
    start = clock()
    while True:
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if iterations is not None:
            if len(samples) >= iterations:
                break
        elif len(samples) >= MIN_ITERATIONS and clock() - start >= duration:
            break
    return samples


def latency_stats(samples_s: list[float], batch: int) -> dict:
    """Percentiles (linear interpolation) and mean in ms; throughput in images per second."""
    if not samples_s:
        raise ValueError("no timed calls")
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    total_s = float(ms.sum()) / 1e3
    return {
        "p50_ms": round(float(p50), 4),
        "p90_ms": round(float(p90), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(ms.mean()), 4),
        "min_ms": round(float(ms.min()), 4),
        "max_ms": round(float(ms.max()), 4),
        "throughput_ips": round(batch * len(ms) / total_s, 3) if total_s > 0 else None,
        "iterations": int(len(ms)),
    }


def batch_input(images: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` samples from ``images`` (repeated when there are fewer), contiguous float32."""
    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch], dtype=np.float32)


# -- the run --------------------------------------------------------------------------------------
def _gpu_description(backend: str, provider: str) -> str | None:
    if backend in ("onnxruntime", "openvino") and provider == "cpu":
        return None
    try:
        from runtime.engines.device import probe_gpu

        gpu = probe_gpu()[0]
    except Exception:  # noqa: BLE001 - a description must never fail a benchmark
        return None
    return None if gpu is None else f"{gpu.name} (sm {gpu.compute_capability})"


def run_benchmarks(bundle: Bundle, config: BenchConfig, log: Callable[[str], None] = lambda s: None,
                   warn: Callable[[str], None] | None = None) -> BenchmarkResult:
    """Time every selected artifact at every batch size."""
    from runtime.machine import describe_machine, load_average
    from runtime.machine import int8_cpu_warning
    from runtime.precision import CPU_INT8

    config.validate()
    target = config.target
    too_big = [b for b in config.batches if b > bundle.max_batch]
    if too_big:
        raise UsageError(f"Batch {', '.join(map(str, too_big))} exceeds the bundle's maximum batch {bundle.max_batch}.",
                         hint="Pass smaller --batch values, or re-export with a larger --max-batch.")
    precisions = select_precisions(bundle, config.precisions, target)
    images = bundle.golden().inputs(bundle.preprocessing)
    machine = describe_machine(target.threads)
    machine["load_avg_before"] = load_average()
    gpu = _gpu_description(target.backend, target.provider)
    if gpu:
        machine["gpu"] = gpu
    if CPU_INT8 in precisions and warn is not None:
        message = int8_cpu_warning(bundle.manifest)
        if message:
            warn(message)
    results = []
    for precision in precisions:
        with open_runner(bundle, precision, target, warn=log, artifact=True) as runner:
            path, provider = runner.resolved.path, runner.resolved.provider
            for batch in config.batches:
                feed = {bundle.input_name: batch_input(images, batch)}
                log(f"timing {precision} ({path.name}) on {target.backend}/{provider}, batch {batch}")
                samples = time_calls(lambda: runner.infer(feed), warmup=config.warmup,
                                     iterations=config.iterations, duration=config.duration)
                results.append(Latency(
                    backend=target.backend, provider=provider, precision=precision, artifact=path.name,
                    batch=batch, threads=target.threads, **latency_stats(samples, batch), warmup=config.warmup,
                    measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")))
    machine["load_avg_after"] = load_average()
    return BenchmarkResult(machine=machine, results=results)


BENCH_HEADER = ["precision", "backend", "artifact", "batch", "threads", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                "img/s", "calls"]


def bench_rows(results: list[Latency]) -> list[list[str]]:
    """Rows for BENCH_HEADER."""
    def f(v, digits=3):
        return "-" if v is None else (f"{v:.{digits}g}" if isinstance(v, float) else str(v))

    return [[r.precision, f"{r.backend}/{r.provider}", r.artifact or "-", str(r.batch),
             "default" if r.threads is None else str(r.threads), f(r.p50_ms, 4), f(r.p90_ms, 4),
             f(r.p99_ms, 4), f(r.mean_ms, 4), f(r.throughput_ips, 4), str(r.iterations)]
            for r in results]
