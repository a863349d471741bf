"""``edgeport report`` and ``edgeport predict``."""

from __future__ import annotations

from pathlib import Path

import click

from runtime.precision import CPU_INT8, PRECISIONS, artifact_keys

from edgeport.cli.options import common_options, json_option, out, out_envelope, target_kwargs, target_options
from edgeport.cli.options import trusted_key_option


def _html_folder(path: Path) -> None:
    """--html into a folder that does not exist yet: create it, as `export --output` does; a path
    that cannot hold a file is what the user typed (exit 2), not a bug."""
    from runtime.errors import UsageError

    parent = path.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--html '{path}': '{parent}' exists and is not a folder.",
                         hint="Pass --html with a file name inside a folder, e.g. --html out/report.html.") from None
    except OSError as exc:
        raise UsageError(f"--html '{path}': the folder '{parent}' cannot be created ({exc.strerror}).",
                         hint="Pass --html with a file name inside a folder you can write.") from None


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the HTML page to this file instead of BUNDLE/report.html (report.md is then left alone).")
@json_option
@trusted_key_option
@common_options
def report(bundle, html_path, as_json):
    """Regenerate report.html and report.md of BUNDLE from its report.json.

    The page is self-contained (inline SVG plots and thumbnails, no scripts, no network):
    open it in any browser, also offline.
    """
    from runtime import console
    from runtime.bundle import Bundle
    from runtime.fsutil import atomic_write_text
    from runtime.report.html import write_html
    from runtime.report.summary import load_report, render_markdown

    b = Bundle.open(bundle)
    if html_path is not None:
        _html_folder(html_path)
    data = load_report(b, required=True)
    if html_path is None:
        atomic_write_text(b.report_path("md"), render_markdown(data, b.manifest))
        console.log(f"wrote {b.report_path('md')}")
    target = write_html(b, data, html_path)
    if as_json:
        markdown = None if html_path is not None else str(b.report_path("md"))
        out_envelope({"html": str(target), "markdown": markdown, "passed": data.passed if data.results else None},
                     bundle=b.root)
    else:
        out(f"report: {target}")


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--precision", type=click.Choice(artifact_keys()), default=artifact_keys()[0],
              show_default=True, help=f"Which artifact to run ({PRECISIONS[CPU_INT8].cpu_variant_of} on the CPU "
                                      f"provider: {PRECISIONS[CPU_INT8].artifact} when the bundle has it).")
@target_options
@click.option("--topk", type=click.IntRange(min=1), default=5, show_default=True, help="Classes shown per image.")
@json_option
@trusted_key_option
@common_options
def predict(bundle, images, precision, backend, provider, threads, qdq, topk, as_json):
    """Classify IMAGES with BUNDLE: top-k class names and softmax probabilities.

    Class names come from the manifest (export --class-names FILE, or named torchvision
    weights); without them classes print as "class N".
    """
    from runtime import console
    from runtime.bundle import Bundle
    from runtime.predict import format_predictions

    from edgeport.api import predict as run_predict

    b = Bundle.open(bundle)
    if b.random_init:
        console.warn("this bundle has random-init weights: its predictions are meaningless")
    predictions = run_predict(b, list(images), precision, topk=topk, **target_kwargs(backend, provider, threads, qdq))
    if as_json:
        out_envelope({"predictions": [p.to_dict() for p in predictions]}, bundle=b.root)
    else:
        out(format_predictions(predictions))
