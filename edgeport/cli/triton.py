"""`edgeport triton`: a Triton Inference Server model repository entry for a bundle.

Imports only click at top level (tritonclient, tensorrt are imported when the command needs them).
"""

from __future__ import annotations

from pathlib import Path

import click

from runtime.precision import CPU_INT8, PRECISIONS, artifact_keys, engine_keys

from edgeport.cli.options import common_options, json_option, list_callback, out, out_envelope
from edgeport.cli.options import trusted_key_option


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--repository", "-r", required=True, type=click.Path(path_type=Path),
              help="Triton model repository folder (created when missing); the model goes to REPOSITORY/NAME/.")
@click.option("--backend", default="python", show_default=True, metavar="python|onnxruntime|tensorrt",
              help="python: model.py running the ONNX artifact with ONNX Runtime (any Triton python backend); "
                   "onnxruntime: the ONNX file on Triton's onnxruntime backend; tensorrt: the engine "
                   "`edgeport build` made on this machine.")
@click.option("--precision", default=artifact_keys()[0], show_default=True, metavar="|".join(artifact_keys()),
              help=f"Artifact to serve. On CPU instances {PRECISIONS[CPU_INT8].cpu_variant_of} means "
                   f"{PRECISIONS[CPU_INT8].artifact} when the bundle has it.")
@click.option("--kind", default=None, metavar="cpu|gpu",
              help="Instance kind (KIND_CPU/KIND_GPU). Default: gpu for tensorrt, cpu otherwise.")
@click.option("--instances", type=int, default=1, show_default=True,
              help="Model instances (per GPU with gpu). Without --threads, the instances share the cores: each "
                   "ONNX Runtime gets max(1, usable cores // instances) intra-op threads.")
@click.option("--preferred-batch", "preferred_batch", multiple=True, metavar="N[,N...]", callback=list_callback(kind=int),
              help="Dynamic batcher's preferred batch sizes (comma-separated or repeated), each <= max batch.")
@click.option("--max-queue-delay-us", type=int, default=0, show_default=True,
              help="How long the dynamic batcher may hold a request to form a larger batch (microseconds).")
@click.option("--name", default=None, help="Model name and folder (default: the bundle's model name).")
@click.option("--force", is_flag=True, help="Replace an existing entry even when it holds another model.")
@click.option("--no-warmup", is_flag=True, help="No model_warmup (by default one golden sample warms each instance).")
@click.option("--threads", type=int, default=None,
              help="ONNX Runtime intra-op threads per instance (python and onnxruntime backends). Default: "
                   "usable cores // --instances, of the server at model load (python) or of this machine "
                   "(onnxruntime, whose config needs a number).")
@click.option("--trt-accel", is_flag=True,
              help="onnxruntime backend on GPU: run the graph through TensorRT (gpu_execution_accelerator).")
@click.option("--trt-precision", default=None, metavar="|".join(engine_keys("tensorrt")),
              help="With --trt-accel: TensorRT precision mode (default: the artifact's).")
@click.option("--trt-workspace", "trt_workspace_mib", type=int, default=None, metavar="MiB",
              help="With --trt-accel: TensorRT workspace limit.")
@click.option("--trt-engine-cache", default=None, metavar="DIR",
              help="With --trt-accel: cache TensorRT engines in DIR (a path on the server) across restarts.")
@click.option("--no-schema-check", is_flag=True,
              help="Write without checking config.pbtxt against Triton's ModelConfig schema (when tritonclient "
                   "is not installed); Triton then reports schema errors only when loading the model.")
@json_option
@trusted_key_option
@common_options
def triton(bundle, repository, backend, precision, kind, instances, preferred_batch, max_queue_delay_us, name, force,
           no_warmup, threads, trt_accel, trt_precision, trt_workspace_mib, trt_engine_cache, no_schema_check,
           as_json):
    """Write a Triton Inference Server model for BUNDLE into a model repository.

    \b
    REPOSITORY/NAME/config.pbtxt   checked against Triton's ModelConfig schema first
    REPOSITORY/NAME/1/             model.onnx, model.plan, or model.py + model.onnx
    REPOSITORY/NAME/labels.txt     class names (classification extension), when the bundle has them

    The entry is written atomically; an entry holding another model is never overwritten
    without --force. Serve it with `tritonserver --model-repository REPOSITORY` (docs/triton.md).
    """
    from runtime import console
    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository

    options = TritonOptions(backend=backend, precision=precision, kind=kind, instances=instances,
                            preferred_batch=tuple(preferred_batch), max_queue_delay_us=max_queue_delay_us,
                            name=name, force=force, warmup=not no_warmup, threads=threads, trt_accel=trt_accel,
                            trt_precision=trt_precision, trt_workspace_mib=trt_workspace_mib,
                            trt_engine_cache=trt_engine_cache, schema_check=not no_schema_check)
    options.validate()  # option errors before the bundle is read
    b = Bundle.open(bundle)
    entry = write_repository(b, repository, options, log=console.log, warn=console.warn)
    for note in entry.notes:
        console.warn(note)
    if as_json:
        out_envelope({"entry": str(entry.path), "replaced": entry.replaced, "backend": entry.backend,
                  "precision": entry.precision, "max_batch_size": entry.max_batch_size, "instances": entry.instances,
                  "kind": entry.kind, "files": [str(f) for f in entry.files], "schema": entry.schema},
                     bundle=b.root)
        return
    verb = "replaced" if entry.replaced else "wrote"
    out(f"{verb} {entry.path}: {entry.backend} backend, {entry.precision} artifact, max_batch_size "
        f"{entry.max_batch_size}, {entry.instances} x KIND_{entry.kind.upper()}")
    for f in entry.files:
        out(f"  {f}")
    out(f"config.pbtxt schema: {'checked with ' + entry.schema if entry.schema else 'NOT checked'}")
    out(f"serve: tritonserver --model-repository {entry.path.parent}")
