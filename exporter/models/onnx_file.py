"""``--model model.onnx``: export an existing ONNX graph instead of a PyTorch model.

No PyTorch is imported on this path (onnx, onnxruntime and onnxsim only). The given graph
is prepared, then goes through the same stages as an exported one (onnxsim, FP16, INT8,
verification); the reference outputs of golden.npz are ONNX Runtime FP32 (CPU) of the
prepared graph, and the manifest says so (``reference: "onnx"``).

What is accepted, and what is done to the graph:

- exactly one input (initializers listed as inputs do not count), float32, rank 4 (NCHW);
  several inputs are refused;
- a fixed batch dimension (e.g. 1) is made dynamic: the input's and every output's first
  axis become ``batch`` and the stored intermediate shapes are dropped. The reference run
  then checks that the graph gives, at batch 8, the outputs it gives one sample at a time;
  a graph that hard-codes its batch (a Reshape to [1, 512]...) fails that check and is
  refused, with what to do;
- channels, height and width come from the graph when fixed (``--channels`` and
  ``--input-size`` must then agree); dynamic ones need ``--channels`` / ``--input-size``
  and are fixed to them in the graph;
- outputs: every graph output, float32 with the batch first; the classifier (first, or
  ``--output-name`` / ``--output-index``, a position in the graph's output list) must be
  (batch, classes) and is moved first in the graph's output list;
- the opset is the graph's own (``--opset`` cannot convert it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from runtime.bundle import sha256_file
from runtime.errors import EdgeportError, UsageError, require
from runtime.preprocess import format_hw, input_hw

BATCH = "batch"


def _dims(value_info) -> list:
    """The dimensions of a graph input/output: ints for fixed ones, names (or None) for the rest."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return []
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _read(path: Path):
    onnx = require("onnx", purpose="Exporting an ONNX model", install="pip install 'edgeport[export]'")
    if not path.is_file():
        raise UsageError(f"ONNX model '{path}' does not exist." if not path.exists() else
                            f"ONNX model path '{path}' is a folder, not a file.",
                            hint="Pass an existing .onnx file, e.g. --model path/to/model.onnx.")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise many types
        raise EdgeportError(f"'{path}' is not a readable ONNX model: {type(exc).__name__}: {str(exc)[:300]}.",
                            hint="Check the file (was it fully copied?), or export it again.") from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise EdgeportError(f"'{path}' does not pass onnx.checker: {str(exc)[:400]}.",
                            hint="Fix or re-export the ONNX model.") from exc
    return model


def _single_input(model, path: Path):
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
        raise UsageError(f"'{path}' takes {len(inputs)} inputs ({names}); edgeport exports models with exactly one "
                         "image input (NCHW).",
                         hint="Export a graph with one input (fold the others into constants), then pass it again.")
    inp = inputs[0]
    import onnx

    elem = inp.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise UsageError(f"'{path}' takes a {onnx.helper.tensor_dtype_to_np_dtype(elem)} input '{inp.name}'; edgeport "
                         "feeds float32 (normalized images).",
                         hint="Export the model with a float32 input (do the type conversion inside the model).")
    dims = _dims(inp)
    if len(dims) != 4:
        raise UsageError(f"'{path}' has an input '{inp.name}' of shape {dims or 'unknown'}; edgeport exports image "
                         "models whose input is NCHW (batch, channels, height, width).")
    return inp, dims


def _layout(req, dims: list, path: Path) -> tuple[int, tuple[int, int]]:
    """(channels, (height, width)) from the graph, --channels and --input-size."""
    c = dims[1]
    if isinstance(c, int) and c > 0:
        if req.channels is not None and req.channels != c:
            raise UsageError(f"--channels {req.channels} conflicts with '{path}', whose input has {c} channels.",
                             hint="Drop --channels.")
    elif req.channels is None:
        raise UsageError(f"'{path}' has a dynamic channel dimension ({c!r}).", hint="Pass --channels N.")
    else:
        c = req.channels
    h, w = dims[2], dims[3]
    fixed = isinstance(h, int) and h > 0 and isinstance(w, int) and w > 0
    if fixed:
        if req.input_size is not None and input_hw(req.input_size) != (h, w):
            raise UsageError(f"--input-size {format_hw(input_hw(req.input_size))} conflicts with '{path}', whose "
                             f"input is {h}x{w} (height x width).", hint="Drop --input-size.")
        return c, (h, w)
    if req.input_size is None:
        raise UsageError(f"'{path}' has a dynamic height/width ({h!r} x {w!r}).",
                         hint="Pass --input-size N or HxW: the graph is fixed to that size.")
    return c, input_hw(req.input_size)


def _set_dim(dim, value) -> None:
    if isinstance(value, int):
        dim.dim_value = value
    else:
        dim.dim_param = value


def _prepare(model, inp, dims: list, chw: tuple, path: Path) -> int | None:
    """Dynamic batch, fixed C/H/W, in place; returns the batch the graph had fixed (None: dynamic)."""
    batch_fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    shape = inp.type.tensor_type.shape
    _set_dim(shape.dim[0], BATCH)
    for dim, value in zip(list(shape.dim)[1:], chw):
        _set_dim(dim, value)
    for out in model.graph.output:
        odims = _dims(out)
        if not odims:
            continue  # shape unknown: the reference run checks the batch axis
        if batch_fixed is not None and odims[0] not in (batch_fixed, None) and not isinstance(odims[0], str):
            raise UsageError(f"'{path}' has an output '{out.name}' of shape {odims} whose first axis is not the "
                             f"batch ({batch_fixed}); edgeport needs every output batch-first.",
                             hint="Export the model so that every output starts with the batch axis.")
        _set_dim(out.type.tensor_type.shape.dim[0], BATCH)
    if batch_fixed is not None or any(not isinstance(d, int) for d in dims[1:]):
        del model.graph.value_info[:]  # shapes recorded for the fixed batch/size: ONNX Runtime re-infers them
    return batch_fixed


def _outputs(model, req, path: Path) -> list[str]:
    """The graph outputs, checked (float32), the classifier moved first; returns the model-order names."""
    import onnx

    from exporter.models.outputs import classifier_first, classifier_position, reorder_graph_outputs

    names = [o.name for o in model.graph.output]
    for o in model.graph.output:
        elem = o.type.tensor_type.elem_type
        if not o.type.HasField("tensor_type"):
            raise UsageError(f"'{path}' has a non-tensor output '{o.name}' (a sequence or map); edgeport exports "
                             "tensor outputs only.")
        if elem != onnx.TensorProto.FLOAT:
            raise UsageError(f"'{path}' has a {onnx.helper.tensor_dtype_to_np_dtype(elem)} output '{o.name}'; "
                             "edgeport verifies float32 outputs only.",
                             hint="Export the model without that output (e.g. an argmax: compute it after the model).")
    position = classifier_position(names, req.output_choice)
    reorder_graph_outputs(model, classifier_first(names, position))
    return names


@dataclasses.dataclass
class PreparedOnnx:
    """A given ONNX graph, prepared (exporter/models/registry.py turns it into a BuiltModel)."""

    model: object  # onnx.ModelProto: dynamic batch, fixed C/H/W, the classifier output first
    path: Path
    channels: int
    size: tuple[int, int]
    channels_note: str
    opset: int | None
    batch_fixed: int | None
    params: int
    weights: dict


def prepare_onnx_model(req, log=lambda s: None) -> PreparedOnnx:
    """``--model model.onnx``: read, check and prepare the graph (see the module docstring)."""
    path = Path(req.model)
    for option, value in (("--weights", req.weights), ("--factory-arg", req.factory_args),
                          ("--trust-checkpoint", req.trust_checkpoint or None)):
        if value:
            raise UsageError(f"{option} does not apply to an ONNX model: its weights are inside the graph.",
                             hint=f"Drop {option}.")
    model = _read(path)
    inp, dims = _single_input(model, path)
    channels, size = _layout(req, dims, path)
    batch_fixed = _prepare(model, inp, dims, (channels, *size), path)
    names = _outputs(model, req, path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    log(f"{path.name}: ONNX opset {opset}, input '{inp.name}' {['batch', channels, *size]}"
        + (f" (fixed batch {batch_fixed} made dynamic)" if batch_fixed is not None else "")
        + f", outputs {', '.join(names)}")
    return PreparedOnnx(
        model=model, path=path, channels=channels, size=size, opset=opset, batch_fixed=batch_fixed,
        channels_note="read from the ONNX graph's input" if isinstance(dims[1], int) else "given by --channels",
        params=sum(int(np.prod(t.dims)) for t in model.graph.initializer),
        weights={"spec": "onnx", "random_init": False, "file": str(path.resolve()), "sha256": sha256_file(path),
                 "description": f"the weights inside {path.name}"})


def reference_outputs(model, inputs: np.ndarray, batch: int = 8,
                      batch_fixed: int | None = None) -> list[tuple[str, np.ndarray]]:
    """ONNX Runtime FP32 (CPU) outputs of the prepared graph, every output, in the graph's order."""
    from runtime.runners.onnxruntime import OnnxRuntimeRunner, import_ort

    runner = OnnxRuntimeRunner(model.SerializeToString(), what="the given ONNX model")
    runner.run_options = import_ort().RunOptions()
    runner.run_options.log_severity_level = 4  # the failure becomes our error message, not ORT's log line
    size = min(batch, len(inputs))
    try:
        outputs = runner.infer_batched(inputs, batch)
    except EdgeportError:
        raise
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types
        fixed = (f" The graph was exported for batch {batch_fixed} and edgeport made its batch dynamic: it "
                 "probably hard-codes that batch (e.g. a Reshape to a fixed size)." if batch_fixed else "")
        raise EdgeportError(
            f"ONNX Runtime cannot run the given model on a batch of {size} {list(inputs.shape[1:])} inputs: "
            f"{type(exc).__name__}: {str(exc)[:300].rstrip('.')}.{fixed}",
            hint="Re-export the model with a dynamic batch axis (e.g. torch.onnx.export(..., dynamic_axes="
                 "{'input': {0: 'batch'}, 'output': {0: 'batch'}})), then export it with edgeport again.") from exc
    return [(n, v.astype(np.float32)) for n, v in outputs.items()]


def check_batch_independent(model, inputs: np.ndarray, batched: list[tuple[str, np.ndarray]], batch_fixed: int,
                            samples: int = 4, tolerance: float = 1e-4) -> None:
    """A graph whose fixed batch was made dynamic must give one sample alone what it gives in a batch."""
    singles = [reference_outputs(model, inputs[i:i + 1], batch=1, batch_fixed=batch_fixed)
               for i in range(min(samples, len(inputs)))]
    for k, (name, values) in enumerate(batched):
        alone = np.concatenate([s[k][1] for s in singles]).reshape(len(singles), -1)
        together = values[:len(singles)].reshape(len(singles), -1)
        span = np.maximum(np.abs(together).max(axis=1, keepdims=True), 1e-6)
        err = float((np.abs(alone - together) / span).max())
        if not err <= tolerance:
            raise EdgeportError(
                f"The given model was exported for batch {batch_fixed}; with its batch made dynamic, output '{name}' "
                f"differs between a batch of {min(8, len(inputs))} and single samples (by {err:.3g} of its range), "
                "so it mixes samples (a hard-coded batch in a Reshape or similar).",
                hint="Re-export the model with a dynamic batch axis, then export it with edgeport again.")
