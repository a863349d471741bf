"""``edgeport bench``: latency and throughput of a bundle's artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeport.cli.options import (batch_option, common_options, json_option, out, out_envelope, precision_option, target_kwargs, target_options)
from edgeport.cli.options import trusted_key_option


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@precision_option()
@target_options
@batch_option(default=("1",), help_text="Batch sizes (default 1); each at most the bundle's max batch.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Timed calls per batch size.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Time calls for this long per batch size instead (at least 10 calls). Default: 3 s.")
@click.option("--save-json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write this run (machine + results) to a JSON file.")
@json_option
@trusted_key_option
@common_options
def bench(bundle, precisions, backend, provider, threads, qdq, batches, warmup, iterations, duration, json_path,
          as_json):
    """Latency (p50/p90/p99, mean) and throughput of BUNDLE's artifacts per batch size.

    Every artifact runs through edgeport's runner on the bundle's golden images. Results go
    into the bundle's report.json ("benchmarks") and report.md/.html, with the machine
    described (CPU, cores, threads, load average, library versions).
    """
    from runtime.benchmark import BENCH_HEADER, bench_rows
    from runtime.machine import describe_machine_line
    from runtime.bundle import Bundle
    from runtime.report.summary import render_table

    from edgeport.api import benchmark

    b = Bundle.open(bundle)
    result = benchmark(b, precisions, batches=batches, **target_kwargs(backend, provider, threads, qdq),
                       warmup=warmup, iterations=iterations, duration=duration)
    doc = {"bundle": str(b.root), "model": b.name, **result.to_dict()}
    if json_path is not None:
        from runtime.fsutil import atomic_write_text

        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(doc, indent=2) + "\n")
    if as_json:
        out_envelope({"model": b.name, **result.to_dict()}, bundle=b.root)
        return
    out(render_table(BENCH_HEADER, bench_rows(result.results)))
    out(f"\nmachine: {describe_machine_line(result.machine)}")
    if result.report_error is None:  # else a warning said why the report was not written
        out(f"report: {b.report_path('md')}")
        out(f"report: {b.report_path('html')}")
    if json_path is not None:
        out(f"json: {json_path}")
