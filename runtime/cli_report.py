"""`edgeport report` and `edgeport predict` (registered on the `edgeport` group by runtime.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import console
from .cli import backend_options, cli, common_options
from .errors import BundleError


@cli.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Write the HTML page here instead of BUNDLE/report.html (report.md is then left alone).")
@common_options
def report(bundle, output):
    """Regenerate report.html and report.md of BUNDLE from its report.json.

    The page is self-contained (inline SVG plots and thumbnails, no scripts, no network):
    open it in any browser, also offline.
    """
    from .bundle import Bundle
    from .html_report import write_html
    from .report import atomic_write_text, render_markdown

    b = Bundle.open(bundle)
    path = b.report_path("json")
    if not path.is_file():
        raise BundleError(f"Bundle '{b.root}' has no report.json yet, so there is nothing to render.",
                          hint=f"Run `edgeport verify {b.root}` first (export writes it too unless --no-verify).")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}).",
                          hint=f"Run `edgeport verify {b.root}` to write a fresh one.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BundleError(f"{path} has no 'results' list, so it is not an edgeport report.",
                          hint=f"Run `edgeport verify {b.root}` to write a fresh one.")
    if output is None:
        atomic_write_text(b.report_path("md"), render_markdown(data))
        console.log(f"wrote {b.report_path('md')}")
    target = write_html(b, data, output)
    click.echo(f"report: {target}")


@cli.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8", "int8-cpu"]), default="fp32",
              show_default=True, help="Which artifact to run (int8 on the CPU provider: model.int8-cpu.onnx "
                                      "when the bundle has it).")
@backend_options
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one list, one entry per image).")
@common_options
def predict(bundle, images, precision, qdq, backend, provider, topk, threads, as_json):
    """Classify IMAGES with BUNDLE: top-k class names and softmax probabilities.

    Class names come from the manifest (export --class-names FILE, or named torchvision
    weights); without them classes print as "class N".
    """
    from .bundle import Bundle
    from .predict import PredictConfig, format_predictions
    from .predict import predict as run_predict

    b = Bundle.open(bundle)
    if (b.manifest.get("weights") or {}).get("random_init"):
        console.warn("this bundle has random-init weights: its predictions are meaningless")
    config = PredictConfig(precision=precision, backend=backend, provider=provider, topk=topk, threads=threads,
                           qdq=qdq)
    predictions = run_predict(b, list(images), config)
    if as_json:
        click.echo(json.dumps(predictions, indent=2))
    else:
        click.echo(format_predictions(predictions))
