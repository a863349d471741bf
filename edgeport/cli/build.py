"""`edgeport build`: TensorRT or TensorRT-RTX engines for a bundle.

Imports only click at top level; tensorrt is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgeport.cli.options import trusted_key_option
from runtime.engines.registry import DEFAULT_RUNTIME, ENGINE_RUNTIMES
from runtime.engines.tensorrt_rtx import COMPUTE_CAPABILITIES, DEFAULT_TARGETS
from runtime.precision import choices, engine_keys

from edgeport.cli.options import common_options, json_option, out, out_envelope, precision_option

# The precisions an engine runtime builds (the registry's; int8-cpu is ONNX Runtime's only).
BUILD_PRECISIONS = choices(engine_keys())


@click.command()
@click.argument("bundle", type=click.Path(path_type=str))
@click.option("--runtime", type=click.Choice(list(ENGINE_RUNTIMES)), default=DEFAULT_RUNTIME, show_default=True,
              help=" ".join(f"{name}: {rt.help}." for name, rt in ENGINE_RUNTIMES.items()))
@click.option("--compute-capability", "compute_capabilities", multiple=True, metavar="CC[,CC...]",
              help=f"tensorrt-rtx: target GPUs, from {', '.join(COMPUTE_CAPABILITIES)} (e.g. 8.6,8.9 or sm86; "
                   f"repeatable). Default: the library's default targets ({', '.join(DEFAULT_TARGETS)}).")
@click.option("--runtime-cache", type=click.Path(path_type=Path), default=None,
              help="tensorrt-rtx: recorded in the sidecar only; the target keeps its JIT cache under "
                   "$EDGEPORT_CACHE/rtx-runtime (or ~/.cache/edgeport/rtx-runtime), per engine, version and GPU, "
                   "never at a path a bundle names (docs/security.md).")
@click.option("--no-runtime-cache", is_flag=True, help="tensorrt-rtx: run the engines without a JIT cache.")
@precision_option(choices=BUILD_PRECISIONS,
                  help_text="Engines to build (repeat or comma-separate); all = every precision the bundle has.")
@click.option("--min-batch", type=click.IntRange(min=1), default=None,
              help="Smallest batch of the profile (default: the bundle's, 1).")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help="Batch TensorRT tunes kernels for (default: min(8, max batch)).")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="Largest batch of the profile (default: the bundle's --max-batch).")
@click.option("--workspace", "workspace_mib", type=click.IntRange(min=1), default=None, metavar="MiB",
              help="Builder workspace cap (default: 1/4 of memory up to 2 GiB on Jetson, 1/2 up to 4 GiB on GPUs).")
@click.option("--dla-core", type=click.IntRange(min=0), default=None,
              help="Build for this DLA core (Jetson AGX/NX Orin, Xavier); fp16/int8 only, static batch.")
@click.option("--gpu-fallback", is_flag=True, help="With --dla-core: run layers DLA cannot run on the GPU.")
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None,
              help="Timing cache file (default: per TensorRT version and GPU under $EDGEPORT_CACHE or ~/.cache/edgeport).")
@click.option("--no-timing-cache", is_flag=True, help="Build without reading or writing a timing cache.")
@click.option("--builder-level", type=click.IntRange(0, 5), default=None,
              help="Builder optimization level 0-5 (TensorRT's default 3; higher builds longer).")
@click.option("--hardware-compat", type=click.Choice(["none", "ampere+"]), default="none", show_default=True,
              help="ampere+: one engine for every GPU with compute capability >= 8.0 (somewhat slower).")
@click.option("--version-compatible", is_flag=True,
              help="Engine also loads on later TensorRT releases of the same major (embeds the lean runtime).")
@click.option("--build-path", type=click.Choice(["auto", "strongly-typed", "flags"]), default="auto", show_default=True,
              help="auto: strongly typed from the bundle's FP16/INT8 graphs on TensorRT >= 10, builder flags before; "
                   "flags: weakly typed + FP16/INT8 flags (TensorRT < 11).")
@json_option
@trusted_key_option
@common_options
def build(bundle, runtime, compute_capabilities, runtime_cache, no_runtime_cache, precisions, min_batch, opt_batch,
          max_batch, workspace_mib, dla_core, gpu_fallback, timing_cache, no_timing_cache, builder_level,
          hardware_compat, version_compatible, build_path, as_json):
    """Build TensorRT engines for BUNDLE on this machine (a Jetson or a GPU server), or
    TensorRT-RTX engines on any x86_64 machine (--runtime tensorrt-rtx).

    Each engine lands in the bundle as model.<precision>...sm<CC>.trt<version>.engine
    (TensorRT-RTX: model.<precision>[.sm<CC>_...].rtx<version>.engine) with a .json sidecar
    recording how and where it was built; verify/predict/bench refuse engines built for
    another version or GPU.
    """
    from runtime.bundle import Bundle
    from runtime.report.summary import render_table

    from edgeport.api import build as run_build

    b = Bundle.open(bundle)
    built = run_build(b, precisions, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                      workspace_mib=workspace_mib, dla_core=dla_core, gpu_fallback=gpu_fallback,
                      timing_cache=timing_cache, no_timing_cache=no_timing_cache, builder_level=builder_level,
                      hardware_compat=hardware_compat, version_compatible=version_compatible, build_path=build_path,
                      runtime=runtime, compute_capabilities=tuple(compute_capabilities), runtime_cache=runtime_cache,
                      no_runtime_cache=no_runtime_cache)
    if as_json:
        out_envelope({"engines": [{"precision": e.precision, "path": str(e.path), "seconds": e.seconds,
                                   "warnings": list(e.warnings), "sidecar": e.sidecar.to_dict()} for e in built]},
                     bundle=b.root)
        return
    rows = [[e.precision, e.sidecar.build_path, e.path.name, f"{e.path.stat().st_size / 2**20:.1f} MiB",
             f"{e.seconds:.1f} s"] for e in built]
    out(render_table(["precision", "build path", "engine", "size", "build time"], rows))
    out(f"next: edgeport verify {b.root} --backend {runtime}{ENGINE_RUNTIMES[runtime].run_where}")
