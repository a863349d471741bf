"""The reference outputs of the golden set: PyTorch FP32 for a PyTorch model, ONNX Runtime FP32
(CPU) for a given ONNX graph. This forward pass also proves that the model takes the input
layout (channels, height x width) and tells which outputs it returns (exporter/models/outputs.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import format_hw


@dataclasses.dataclass
class Reference:
    """The golden images, their normalized inputs and the reference outputs on them."""

    gold: object  # golden.GoldenImages
    inputs: np.ndarray
    all_outputs: dict  # {name: array}, the classifier first, then the model's order
    model_order: list  # the output names in the model's own order (torch.onnx.export's output_names)
    num_classes: int
    kind: str = "pytorch"  # the manifest's ``reference``: pytorch | onnx

    @property
    def outputs(self) -> np.ndarray:
        """The classifier output (N x classes)."""
        return next(iter(self.all_outputs.values()))

    @property
    def label(self) -> str:
        return "ONNX Runtime FP32 of the given model" if self.kind == "onnx" else "PyTorch FP32"


def golden_set(config, pre):
    from exporter import golden as G

    if config.golden_data:
        return G.folder_images(config.golden_data, pre, config.golden_samples)
    return G.builtin_images(pre)


def _run_torch(config, built, inputs) -> tuple[list, list]:
    from exporter import golden as G
    from exporter.onnx_export import INPUT_NAME
    from exporter.models.outputs import classifier_first, classifier_position

    pre = built.preprocessing
    try:
        pairs = G.reference_outputs(built.module, inputs, what=built.name, input_name=INPUT_NAME)
    except EdgeportError:
        raise
    except Exception as exc:  # noqa: BLE001 - shape errors from arbitrary models
        raise EdgeportError(
            f"{built.name} cannot take {format_hw(pre.size)} inputs (height x width) with {pre.channels} channel(s) "
            f"({built.channels_note}): {type(exc).__name__}: {str(exc)[:300].rstrip('.')}.",
            hint=("Pass the channel count the model's input layer takes with --channels N." if "channel" in str(exc)
                  else "Choose another --input-size (N or HxW, e.g. the model's default), or --channels N if the "
                       "channel count is wrong.")) from exc
    names = [n for n, _ in pairs]
    order = classifier_first(names, classifier_position(names, config.request.output_choice))
    return pairs, order


def _run_onnx(config, built, inputs) -> tuple[list, list]:
    from exporter.models.onnx_file import check_batch_independent, reference_outputs

    batch = min(8, config.max_batch)
    pairs = reference_outputs(built.onnx_model, inputs, batch=batch, batch_fixed=built.batch_fixed)
    if built.batch_fixed is not None and batch > 1:
        check_batch_independent(built.onnx_model, inputs, pairs, built.batch_fixed)
    names = [n for n, _ in pairs]  # the graph's outputs, already classifier first (onnx_model._outputs)
    return pairs, names


def compute_reference(config, built) -> Reference:
    """Reference outputs of every model output on the golden set, checked against the options."""
    from exporter.models.outputs import check_classifier

    pre = built.preprocessing
    gold = golden_set(config, pre)
    inputs = gold.inputs(pre)
    onnx = built.onnx_model is not None
    pairs, order = (_run_onnx if onnx else _run_torch)(config, built, inputs)
    by_name = dict(pairs)
    all_outputs = {n: by_name[n] for n in order}
    classifier = order[0]
    num_classes = check_classifier(classifier, all_outputs[classifier], built.name, len(order) > 1)
    if built.num_classes and num_classes != built.num_classes:
        hint = "Check --num-classes and the factory."
        if built.factory_signature:
            hint = (f"The factory takes no num_classes argument, so --num-classes cannot set it: its signature is "
                    f"{built.factory_signature}. Drop --num-classes, or give the factory a num_classes parameter "
                    "(or pass its own argument with --factory-arg KEY=VALUE).")
        raise EdgeportError(f"{built.name} returns {num_classes} classes (output '{classifier}'), but "
                            f"{built.num_classes} were requested.", hint=hint)
    if config.class_names is not None and len(config.class_names) != num_classes:
        raise UsageError(f"--class-names lists {len(config.class_names)} names, but {built.name} returns "
                         f"{num_classes} classes (output '{classifier}').",
                         hint="Write exactly one name per class, in index order.")
    model_order = order if onnx else [n for n, _ in pairs]
    return Reference(gold, inputs, all_outputs, model_order, num_classes, "onnx" if onnx else "pytorch")
