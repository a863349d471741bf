"""A model's outputs: what edgeport exports, under which names, and which one is the classifier.

Supported (PyTorch models):

- one tensor: exported as ``logits``;
- a flat tuple or list of tensors: ``output0``, ``output1``, ...;
- a flat dict of tensors with string keys: the keys are the output names.

Every output must be a floating-point tensor whose first axis is the batch (checked on the
golden set, batch by batch). Not supported, and refused with a message: nested structures
(a tuple inside a dict...), non-tensor values (None, numbers, strings), integer or boolean
tensors (e.g. an argmax: return the scores and take the argmax after the model), outputs
without a batch axis.

The classifier output is the first one unless ``--output-name NAME`` or ``--output-index I``
(the position in the model's return value) picks another; it must be (batch, classes). It is
stored first: first in the exported graph's output list (the graph's outputs are reordered,
the others keep the model's order), in the manifest's ``outputs`` and in golden.npz. predict,
labeled accuracy, top-k metrics and Triton's labels use it; verify compares every output.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from runtime.errors import EdgeportError, UsageError

SINGLE_NAME = "logits"
SUPPORTED = ("a tensor, a flat tuple/list of tensors or a flat dict of tensors with string keys, each a "
             "floating-point tensor whose first axis is the batch")


@dataclasses.dataclass(frozen=True)
class OutputChoice:
    """``--output-name`` / ``--output-index``: which output is the classifier (None: the first)."""

    name: str | None = None
    index: int | None = None

    def __post_init__(self):
        if self.name is not None and self.index is not None:
            raise UsageError("Pass --output-name or --output-index, not both.")
        if self.index is not None and (not isinstance(self.index, int) or isinstance(self.index, bool)
                                       or self.index < 0):
            raise UsageError(f"--output-index must be a whole number of at least 0, got {self.index!r}.")


def flatten(raw, what: str) -> list[tuple[str, object]]:
    """(name, tensor) pairs of a model's return value, in the model's order (torch tensors)."""
    import torch

    if isinstance(raw, torch.Tensor):
        return [(SINGLE_NAME, raw)]
    if isinstance(raw, (tuple, list)):
        if not raw:
            raise EdgeportError(f"{what} returns an empty {type(raw).__name__}.", hint=f"It must return {SUPPORTED}.")
        pairs = [(f"output{i}", v) for i, v in enumerate(raw)]
    elif isinstance(raw, dict):
        if not raw:
            raise EdgeportError(f"{what} returns an empty dict.", hint=f"It must return {SUPPORTED}.")
        bad_keys = [k for k in raw if not isinstance(k, str) or not k]
        if bad_keys:
            raise EdgeportError(f"{what} returns a dict with key(s) {bad_keys[:3]!r}; output names must be "
                                "non-empty strings.", hint=f"It must return {SUPPORTED}.")
        pairs = list(raw.items())
    else:
        raise EdgeportError(f"{what} returns a {type(raw).__name__}, not a tensor.",
                            hint=f"It must return {SUPPORTED}.")
    for name, value in pairs:
        if not isinstance(value, torch.Tensor):
            kind = type(value).__name__
            nested = " (nested structures are not supported)" if isinstance(value, (tuple, list, dict)) else ""
            raise EdgeportError(f"{what} returns a {type(raw).__name__} whose output '{name}' is a {kind}{nested}.",
                                hint=f"Return {SUPPORTED}; wrap the model in a module that returns only those.")
    return pairs


def check_output_values(pairs: list[tuple[str, object]], batch: int, what: str, input_name: str) -> None:
    """Every output is floating point with the batch as its first axis."""
    for name, value in pairs:
        if name == input_name:
            raise EdgeportError(f"{what} has an output named '{name}', the name of the model input.",
                                hint="Rename that output (a dict key) to something else.")
        if not value.dtype.is_floating_point:
            raise EdgeportError(f"{what}'s output '{name}' is a {str(value.dtype).replace('torch.', '')} tensor; "
                                "edgeport exports and verifies floating-point outputs only.",
                                hint="Return the scores (e.g. the logits) and take argmax/thresholds after the model.")
        if value.dim() == 0 or value.shape[0] != batch:
            raise EdgeportError(f"{what}'s output '{name}' has shape {list(value.shape)} for a batch of {batch}: "
                                "it has no batch axis first, which edgeport requires of every output (the exported "
                                "graph has a dynamic batch).",
                                hint="Return per-sample outputs (batch first), or leave this one out of forward().")


def classifier_position(names: list[str], choice: OutputChoice) -> int:
    """Position (in the model's order) of the classifier output."""
    if choice.name is not None:
        if choice.name not in names:
            raise UsageError(f"--output-name '{choice.name}' is not an output of the model; its outputs are "
                             f"{', '.join(names)}.")
        return names.index(choice.name)
    if choice.index is not None:
        if choice.index >= len(names):
            raise UsageError(f"--output-index {choice.index} is out of range: the model has {len(names)} output(s) "
                             f"({', '.join(names)}).", hint=f"Pass 0..{len(names) - 1}, or --output-name NAME.")
        return choice.index
    return 0


def classifier_first(names: list[str], position: int) -> list[str]:
    """The output names with the classifier first, the others in the model's order."""
    return [names[position]] + [n for i, n in enumerate(names) if i != position]


def check_classifier(name: str, array: np.ndarray, what: str, several: bool) -> int:
    """The classifier output must be (batch, classes); returns the class count."""
    if array.ndim != 2:
        pick = (" Pick the classifier output with --output-name NAME or --output-index I." if several else "")
        raise EdgeportError(f"{what}'s classifier output '{name}' has shape {['batch', *array.shape[1:]]}; edgeport "
                            f"exports classifiers whose output is (batch, classes).{pick}")
    return int(array.shape[1])


def reorder_graph_outputs(model, order: list[str]) -> None:
    """Put the ONNX graph's outputs in ``order`` (the classifier first), in place."""
    by_name = {o.name: o for o in model.graph.output}
    if list(by_name) == list(order):
        return
    missing = [n for n in order if n not in by_name]
    if missing or len(order) != len(by_name):
        raise EdgeportError(f"The exported graph's outputs {list(by_name)} do not match the model's {order}.",
                            hint="This is a bug in edgeport; please report it with the model.")
    kept = [by_name[n] for n in order]
    copies = [type(o)() for o in kept]
    for dst, src in zip(copies, kept):
        dst.CopyFrom(src)
    del model.graph.output[:]
    model.graph.output.extend(copies)
