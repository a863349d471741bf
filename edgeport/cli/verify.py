"""``edgeport verify``: every artifact against the reference outputs the bundle carries."""

from __future__ import annotations

import sys

import click

from edgeport.cli.options import (batch_option, common_options, comparisons_table, json_option, out, out_envelope, precision_option, target_kwargs, target_options)
from edgeport.cli.options import int8_next_step, trusted_key_option


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@precision_option()
@target_options
@batch_option(help_text="Batch size (default: min(max batch, 8)); at most the bundle's max batch.")
@click.option("--tol", "tols", multiple=True, metavar="PRECISION.METRIC=VALUE",
              help="Override a tolerance, e.g. fp16.cosine_min=0.995 (metrics: max_rel_diff, cosine_min, "
                   "top1_agreement).")
@click.option("--labeled-data", type=click.Path(path_type=str), default=None,
              help="Labeled images for top-1/top-5 accuracy: an ImageFolder tree (DIR/<class>/*.jpg) or a flat "
                   "folder with --labels.")
@click.option("--labels", "labels_file", type=click.Path(path_type=str), default=None,
              help="With a flat --labeled-data folder: a file of `file,label` lines (label: class name or index).")
@click.option("--labeled-samples", type=click.IntRange(min=1), default=None,
              help="Use at most this many --labeled-data images (spread evenly over the classes).")
@json_option
@trusted_key_option
@common_options
def verify(bundle, precisions, backend, provider, threads, qdq, batches, tols, labeled_data, labels_file,
           labeled_samples, as_json):
    """Check every artifact of BUNDLE against the reference outputs it carries.

    With --labeled-data, also measure top-1/top-5 accuracy of every artifact on labeled
    images (the reference is the bundle's FP32 ONNX graph on ONNX Runtime CPU).

    Exit status: 0 all checks pass, 1 an accuracy check failed (reports still written).
    """
    from runtime.errors import EXIT_CHECK_FAILED, UsageError

    from edgeport.api import verify as run_verify

    if len(batches) > 1:
        raise UsageError(f"verify runs one batch size; got {', '.join(map(str, batches))}.",
                         hint="Pass one --batch N (edgeport bench times several).")
    result = run_verify(bundle, precisions, **target_kwargs(backend, provider, threads, qdq),
                        batch=batches[0] if batches else None, tolerances=tols, labeled_data=labeled_data,
                        labels=labels_file, labeled_samples=labeled_samples)
    if as_json:
        out_envelope(result.to_dict(), bundle=result.bundle,
                     exit_code=0 if result.passed else EXIT_CHECK_FAILED)
    else:
        out(comparisons_table(result.comparisons))
        step = int8_next_step(result.comparisons, result.bundle)
        if step:
            out(step)
        if result.accuracy is not None:
            from runtime.labeled import ACCURACY_HEADER, accuracy_rows
            from runtime.report.summary import render_table

            acc = result.accuracy
            out(f"\nlabeled accuracy on {acc.samples} images ({acc.skipped} unreadable skipped):")
            out(render_table(ACCURACY_HEADER, accuracy_rows(acc)))
        for path in result.reports[1:]:
            out(f"report: {path}")
    if not result.passed:
        sys.exit(EXIT_CHECK_FAILED)
