"""`edgeport bench` (registered on the `edgeport` group by runtime.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import console
from .cli import PRECISION_CHOICES, backend_options, cli, common_options


def _batches(ctx, param, value):
    from .benchmark import parse_batches

    try:
        return parse_batches(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.argument("bundle", type=click.Path(path_type=str))
@backend_options
@click.option("--precision", "precisions", multiple=True, type=click.Choice(PRECISION_CHOICES),
              default=("all",), show_default=True,
              help="Artifacts to time (repeatable). On the CPU provider int8 means model.int8-cpu.onnx when the "
                   "bundle has it; all times both INT8 graphs.")
@click.option("--batch", "batches", default="1", show_default=True, callback=_batches, metavar="N[,N...]",
              help="Batch sizes, comma-separated (e.g. 1,8); each at most the bundle's max batch.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Intra-op threads (default: ONNX Runtime's, one per physical core).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed calls first.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Timed calls per batch size.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Time calls for this long per batch size instead (at least 10 calls). Default: 3 s.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write this run (machine + results) to a JSON file.")
@common_options
def bench(bundle, backend, provider, precisions, qdq, batches, threads, warmup, iterations, duration, json_path):
    """Latency (p50/p90/p99, mean) and throughput of BUNDLE's artifacts per batch size.

    Every artifact runs through edgeport's runner on the bundle's golden images. Results go
    into the bundle's report.json ("benchmarks") and report.md/.html, with the machine
    described (CPU, cores, threads, load average, library versions).
    """
    from .benchmark import BENCH_HEADER, BenchConfig, bench_rows, describe_machine_line, run_benchmarks, write_benchmarks
    from .bundle import Bundle
    from .report import render_table

    if iterations is not None and duration is not None:
        raise click.UsageError("Pass --iterations N or --duration SECONDS, not both.")
    config = BenchConfig(precisions=tuple(precisions), backend=backend, provider=provider, batches=batches,
                         threads=threads, warmup=warmup, iterations=iterations, duration=duration, qdq=qdq)
    config.validate()
    b = Bundle.open(bundle)
    run = run_benchmarks(b, config, log=console.log, warn=console.warn)
    write_benchmarks(b, run, log=console.log)
    if json_path is not None:
        from .report import atomic_write_text

        doc = {"bundle": str(b.root), "model": b.name, **run}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(doc, indent=2) + "\n")
    click.echo(render_table(BENCH_HEADER, bench_rows(run["results"])))
    click.echo(f"\nmachine: {describe_machine_line(run['machine'])}")
    click.echo(f"report: {b.report_path('md')}")
    click.echo(f"report: {b.report_path('html')}")
    if json_path is not None:
        click.echo(f"json: {json_path}")
