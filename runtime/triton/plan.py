"""What one Triton repository entry serves: options, checks, and the ModelSpec for config.pbtxt.

``plan_entry`` turns a bundle and ``TritonOptions`` into an ``EntryPlan`` (the file to copy,
the model spec, notes) without writing anything; every bad option is a UsageError here,
before the repository is touched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime.bundle import Bundle, sha256_file
from runtime.errors import BundleError, UsageError
from runtime.precision import PRECISIONS as _REGISTRY
from runtime.precision import artifact_keys, engine_keys
from runtime.triton.config import KINDS, ModelSpec, Tensor, valid_model_name

BACKENDS = ("python", "onnxruntime", "tensorrt")
PRECISIONS = artifact_keys()
# --trt-precision -> the onnxruntime backend's TensorRT precision_mode.
TRT_PRECISION_MODES = {k: _REGISTRY[k].label for k in engine_keys("tensorrt")}
MODEL_FILES = {"python": "model.onnx", "onnxruntime": "model.onnx", "tensorrt": "model.plan"}
WARMUP_FILE = "golden_input.raw"
LABELS_FILE = "labels.txt"


@dataclasses.dataclass(frozen=True)
class TritonOptions:
    """Options of ``edgeport triton`` (see ``edgeport triton --help``)."""

    backend: str = "python"
    precision: str = "fp32"
    kind: str | None = None  # default: gpu for tensorrt, cpu otherwise
    instances: int = 1
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    name: str | None = None  # default: the bundle's model name
    force: bool = False
    warmup: bool = True
    # ONNX Runtime intra-op threads per instance (python, onnxruntime). None: usable cores // instances,
    # the server's at model load (python backend) or this machine's (onnxruntime: its config needs a number).
    threads: int | None = None
    trt_accel: bool = False  # onnxruntime backend on GPU: TensorRT execution accelerator
    trt_precision: str | None = None  # default: the artifact's precision
    trt_workspace_mib: int | None = None
    trt_engine_cache: str | None = None  # a folder as the server sees it
    schema_check: bool = True

    @property
    def resolved_kind(self) -> str:
        return self.kind or ("gpu" if self.backend == "tensorrt" else "cpu")

    def validate(self) -> None:
        """Raise a UsageError for the first option out of range or contradicting another."""
        if self.backend not in BACKENDS:
            raise UsageError(f"Unknown --backend '{self.backend}'; choose one of {', '.join(BACKENDS)}.")
        if self.precision not in PRECISIONS:
            raise UsageError(f"Unknown --precision '{self.precision}'; choose one of {', '.join(PRECISIONS)}.")
        if self.kind is not None and self.kind not in KINDS:
            raise UsageError(f"Unknown --kind '{self.kind}'; choose one of {', '.join(KINDS)}.")
        if self.backend == "tensorrt" and self.resolved_kind != "gpu":
            raise UsageError("--backend tensorrt serves a TensorRT engine, which runs only on a GPU (--kind gpu), "
                             "not with --kind cpu.", hint="Use --backend onnxruntime or python for CPU instances.")
        if not isinstance(self.instances, int) or self.instances < 1:
            raise UsageError(f"--instances must be at least 1, got {self.instances}: Triton needs one model instance "
                             "or more to serve requests.")
        if self.max_queue_delay_us < 0:
            raise UsageError(f"--max-queue-delay-us must be 0 or more, got {self.max_queue_delay_us}.")
        bad = [b for b in self.preferred_batch if b < 1]
        if bad:
            raise UsageError(f"--preferred-batch sizes must be at least 1, got {bad[0]}.")
        if self.name is not None and not valid_model_name(self.name):
            raise UsageError(f"--name '{self.name}' is not a usable model name (letters, digits, '_', '.', '-'; "
                             "not starting with '.' or '-'; at most 128 characters).")
        if self.threads is not None and (self.threads < 1 or self.backend == "tensorrt"):
            raise UsageError(f"--threads {self.threads}: ONNX Runtime threads per instance are at least 1 and apply "
                             "to the python and onnxruntime backends only.")
        self._validate_trt()

    def _validate_trt(self) -> None:
        given = [flag for flag, value in (("--trt-precision", self.trt_precision),
                                          ("--trt-workspace", self.trt_workspace_mib),
                                          ("--trt-engine-cache", self.trt_engine_cache)) if value is not None]
        if given and not self.trt_accel:
            raise UsageError(f"{', '.join(given)} configure the TensorRT accelerator, which is only on with "
                             "--trt-accel.", hint="Add --trt-accel (with --backend onnxruntime --kind gpu).")
        if self.trt_accel and (self.backend != "onnxruntime" or self.resolved_kind != "gpu"):
            raise UsageError(f"--trt-accel is the onnxruntime backend's TensorRT accelerator on GPU instances; it "
                             f"does not apply to --backend {self.backend} --kind {self.resolved_kind}.",
                             hint="Use --backend onnxruntime --kind gpu --trt-accel, or --backend tensorrt to "
                                  "serve an engine built by `edgeport build`.")
        if self.trt_precision is not None and self.trt_precision not in TRT_PRECISION_MODES:
            raise UsageError(f"Unknown --trt-precision '{self.trt_precision}'; choose one of "
                             f"{', '.join(TRT_PRECISION_MODES)}.")
        if self.trt_workspace_mib is not None and self.trt_workspace_mib < 1:
            raise UsageError(f"--trt-workspace must be at least 1 MiB, got {self.trt_workspace_mib}.")


@dataclasses.dataclass(frozen=True)
class EntryPlan:
    """What will be written: the spec of config.pbtxt and the file the model runs."""

    spec: ModelSpec
    precision: str  # the bundle's artifact key (e.g. int8-cpu)
    source: Path  # ONNX artifact or TensorRT engine in the bundle
    source_sha256: str
    model_file: str  # its name in the version folder
    class_names: list[str] | None
    engine: dict | None = None  # the engine's sidecar facts (tensorrt backend)
    notes: tuple[str, ...] = ()


def _provider(options: TritonOptions) -> tuple[str, str]:
    """(backend, provider) in runtime.precision's terms, for choosing the artifact."""
    if options.backend == "tensorrt":
        return "tensorrt", "gpu"
    if options.resolved_kind == "cpu":
        return "onnxruntime", "cpu"
    return "onnxruntime", "tensorrt" if options.trt_accel else "cuda"


def _artifact_key(bundle: Bundle, options: TritonOptions) -> str:
    from runtime.precision import select_artifacts

    backend, provider = _provider(options)
    if backend == "tensorrt":
        from runtime.precision import resolve_precision

        return resolve_precision(bundle.precisions, options.precision, backend=backend, provider=provider)
    (key,) = select_artifacts(bundle.precisions, [options.precision], backend=backend, provider=provider,
                              where=f"Bundle '{bundle.root}'")
    return key


def _dims(shape: list, what: str, bundle: Bundle) -> tuple[int, ...]:
    rest = shape[1:]
    if not rest or not all(isinstance(d, int) and d > 0 for d in rest):
        raise BundleError(f"Bundle '{bundle.root}' has {what} shape {shape}: Triton needs a batch axis first and "
                          "fixed positive sizes after it.", hint="Re-export it with `edgeport export`.")
    return tuple(rest)


def _engine_source(bundle: Bundle, key: str, env, warn) -> tuple[Path, dict, int, list[str]]:
    """The engine for ``key`` (refused with the rebuild command when none fits this machine)."""
    from runtime.engines.sidecar import build_command, resolve_engine

    record = resolve_engine(bundle, key, env=env, warn=warn)
    sc = record.sidecar
    profile = sc.profile or {}
    lo, hi = int(profile.get("min", 1)), int(profile.get("max", bundle.max_batch))
    if lo > 1:
        raise UsageError(f"The {key} engine {record.engine_path.name} accepts batches {lo}..{hi}, but Triton sends "
                         "batches from 1 up to max_batch_size.",
                         hint="Rebuild it with a profile from batch 1: "
                              f"{build_command(bundle.root, key, {**(sc.build_options or {}), 'min_batch': 1})}")
    gpu = sc.gpu
    notes = [f"the engine was built with {sc.product} {sc.version or '?'} for "
             f"{(gpu.name if gpu else None) or '?'} (compute capability "
             f"{(gpu.compute_capability if gpu else None) or '?'}): serve it with a Triton whose TensorRT is "
             "that exact version on that GPU model"]
    if record.dla_core is not None:
        notes.append(f"the engine runs on DLA core {record.dla_core} (Jetson)")
    return record.engine_path, sc.to_dict(), hi, notes


def _accelerator(options: TritonOptions, key: str) -> dict | None:
    if not options.trt_accel:
        return None
    base = _REGISTRY[key].cpu_variant_of or key  # the TensorRT-style graph of a CPU variant
    mode = options.trt_precision or base
    if _REGISTRY[mode].quantized != _REGISTRY[base].quantized:
        raise UsageError(f"--trt-precision {mode} with the {key} artifact: TensorRT runs the INT8 Q/DQ graph "
                         "(model.int8.onnx) only in INT8 mode, and INT8 mode only with that graph (no calibration "
                         "table is shipped for the others).",
                         hint="Use --precision int8 with --trt-precision int8, or fp32/fp16 for the float graphs.")
    params = {"precision_mode": TRT_PRECISION_MODES[mode]}
    if options.trt_workspace_mib is not None:
        params["max_workspace_size_bytes"] = str(options.trt_workspace_mib * 2**20)
    if options.trt_engine_cache is not None:
        params["trt_engine_cache_enable"] = "1"
        params["trt_engine_cache_path"] = options.trt_engine_cache
    return params


def plan_entry(bundle: Bundle, options: TritonOptions, *, env=None, warn=None) -> EntryPlan:
    """Check ``options`` against ``bundle`` and decide what the repository entry holds.

    ``env`` (a runtime.engines.device.TargetEnv) is passed to resolve_engine for the tensorrt
    backend; by default this machine is probed (which imports tensorrt).
    """
    options.validate()
    name = options.name or bundle.name
    if not valid_model_name(name):
        raise UsageError(f"The bundle's model name '{name}' is not usable as a Triton model folder name.",
                         hint="Pass --name NAME (letters, digits, '_', '.', '-').")
    key = _artifact_key(bundle, options)
    notes: list[str] = []
    engine = None
    max_batch = bundle.max_batch
    if options.backend == "tensorrt":
        source, engine, engine_max, notes = _engine_source(bundle, key, env, warn)
        if engine_max < max_batch:
            notes.append(f"max_batch_size is the engine's profile maximum {engine_max} (the bundle allows {max_batch})")
            max_batch = engine_max
        source_sha = str((engine.get("engine") or {}).get("sha256") or sha256_file(source))
    else:
        source = bundle.artifact_path(key)  # sha256-checked against the manifest
        source_sha = sha256_file(source)
    too_big = [b for b in options.preferred_batch if b > max_batch]
    if too_big:
        raise UsageError(f"--preferred-batch {too_big[0]} is above the model's max_batch_size {max_batch}.",
                         hint=f"Use sizes from 1 to {max_batch}.")
    if len(bundle.outputs) > 1:
        notes.append(f"the bundle has {len(bundle.outputs)} outputs; this model serves the classifier output "
                     f"'{bundle.output_name}' only")
    classifier = bundle.manifest.output
    in_dims = _dims(bundle.input.shape, "an input", bundle)
    out_dims = _dims(classifier.shape, "an output", bundle)
    classes = bundle.class_names
    if classes is not None and len(classes) != out_dims[-1]:
        raise BundleError(f"Bundle '{bundle.root}' names {len(classes)} classes for an output of {out_dims[-1]}.",
                          hint="Re-export it with a matching --class-names file.")
    parameters, thread_notes = _parameters(bundle, options, key, source, source_sha)
    notes += thread_notes
    spec = ModelSpec(
        name=name, backend=options.backend, max_batch_size=max_batch,
        input=Tensor(bundle.input_name, str(bundle.input.dtype), in_dims),
        output=Tensor(classifier.name, str(classifier.dtype), out_dims, LABELS_FILE if classes else None),
        kind=options.resolved_kind, instances=options.instances,
        preferred_batch=tuple(sorted(set(options.preferred_batch))), max_queue_delay_us=options.max_queue_delay_us,
        parameters=parameters, warmup_file=WARMUP_FILE if options.warmup else None,
        gpu_accelerator=_accelerator(options, key))
    return EntryPlan(spec=spec, precision=key, source=source, source_sha256=source_sha,
                     model_file=MODEL_FILES[options.backend], class_names=classes, engine=engine, notes=tuple(notes))


def default_threads(instances: int, cores: int | None = None) -> int:
    """ONNX Runtime intra-op threads per instance that do not oversubscribe: the usable cores
    (this process's CPU affinity, as a container or taskset limits it) shared by the instances."""
    if cores is None:
        from runtime.machine import usable_cores

        cores = usable_cores()
    return max(1, cores // max(1, instances))


def _parameters(bundle: Bundle, options: TritonOptions, key: str, source: Path,
                source_sha: str) -> tuple[dict, list[str]]:
    """config.pbtxt's ``parameters``: what the entry serves (``edgeport.*``, read by people and tools;
    the backends ignore keys they do not know) and the backend's own thread settings."""
    parameters = {"edgeport.model": bundle.name, "edgeport.precision": key, "edgeport.artifact": source.name,
                  "edgeport.sha256": source_sha}
    notes: list[str] = []
    if options.backend == "python":
        parameters["onnx_file"] = MODEL_FILES["python"]
        if options.threads is not None:
            parameters["intra_op_threads"] = str(options.threads)
        # Without --threads, model.py divides the *server's* usable cores by the instance count
        # when it loads: the server, not this machine, is where the cores are shared.
    elif options.backend == "onnxruntime":
        # Triton's onnxruntime backend reads a fixed number and ORT's own default is every core per
        # session, so N instances would run N x cores threads: write this machine's share instead.
        threads = options.threads if options.threads is not None else default_threads(options.instances)
        parameters["intra_op_thread_count"] = str(threads)
        if options.threads is None:
            notes.append(f"intra_op_thread_count {threads}: this machine's usable cores shared by "
                         f"{options.instances} instance(s); pass --threads N for a server with another core count")
    return parameters, notes
