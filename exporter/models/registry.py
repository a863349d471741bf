"""The model registry: torchvision classifiers, the seed architectures, user factories
(exporter/models/factories.py) and ONNX files (exporter/models/onnx_file.py).

Each entry carries its default input size and preprocessing; torchvision weights bring
their own (V1 and V2 differ: ResNet-50 V2 resizes to 232). Building a model never touches
the network unless named weights are requested and not cached (see weights.py).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Callable

from runtime.errors import UsageError
from runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, format_hw, input_hw

from exporter.options import option
from exporter.models.factories import load_user_factory  # noqa: F401  (re-exported: tests and older callers import it here)

TORCHVISION_MODELS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
    "densenet121", "densenet161", "densenet169", "densenet201",
)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # torchvision | seed
    input_size: int
    resize: int
    num_classes: int
    description: str


REGISTRY: dict[str, ModelEntry] = {
    **{n: ModelEntry(n, "torchvision", 224, 256, 1000, "torchvision ImageNet classifier") for n in TORCHVISION_MODELS},
    "seed_resnet": ModelEntry("seed_resnet", "seed", 32, 32, 10,
                              "CIFAR-style ResNet-18 from the seed article's BasicBlock"),
    "seed_densenet": ModelEntry("seed_densenet", "seed", 32, 32, 10,
                                "CIFAR-style DenseNet from the seed article's DenseBlock + TransBlock"),
}


@dataclasses.dataclass
class ModelRequest:
    """What the user asked for: a registry name, ``file.py:factory`` / ``module:factory``, an
    ONNX file (``model.onnx``), or an ``nn.Module`` instance (Python API).

    ``weights`` None means the model's default: ``DEFAULT`` for torchvision models, random
    init for seed and user models, the module's own weights for an instance.
    ``input_size``: N (square) or (height, width) / "HxW". ``channels``: the input's channel
    count when the model's first convolution does not tell it. ``mean``/``std``: one value
    per channel, or one for all. ``preprocessing`` (a runtime.preprocess.Preprocessing)
    overrides input_size/mean/std. ``factory_args``: keyword arguments of a user factory.
    ``output_name`` / ``output_index``: which output is the classifier (exporter/models/outputs.py).
    """

    model: object
    # Export options (exporter/options.py generates `edgeport export`'s flags from these specs).
    weights: str | None = option(
        None, "DEFAULT, a torchvision weights name (IMAGENET1K_V2), none (random init), a checkpoint PATH, or auto "
              "(DEFAULT if already cached in TORCH_HOME, else random init; never downloads). Default: DEFAULT for "
              "torchvision models, none for seed and user models.", "--weights", "-w")
    trust_checkpoint: bool = option(False, "UNSAFE: allow checkpoints that need full unpickling (can execute code). "
                                           "Only for files you trust.", "--trust-checkpoint", kind=bool)
    factory_args: dict | None = option(
        None, "Keyword argument for a FILE.py:FACTORY (repeatable); VALUE is a Python literal (64, 0.5, True, "
              "[1, 2]) or else a string. Recorded in the manifest.", "--factory-arg", multiple=True,
        metavar="KEY=VALUE")
    num_classes: int | None = option(None, "Classes of the model's head.", "--num-classes", kind=int, low=1)
    input_size: object = option(None, "Input size: N (square) or HxW, height x width, e.g. 224x160 (default: the "
                                      "model's own, e.g. 224).", "--input-size", metavar="N|HxW",
                                cli_value="input_size")  # int | (h, w) | "HxW"
    channels: int | None = option(None, "Input channels, when the model's first nn.Conv2d does not tell them "
                                        "(default: read from it; 1 = grayscale images, 3 = RGB).", "--channels",
                                  kind=int, low=1)
    mean: tuple[float, ...] | None = option(None, "Normalization mean: one value per channel, or one for all "
                                                  "(default: ImageNet's for 3 channels).", "--mean",
                                            cli_value="per_channel")
    std: tuple[float, ...] | None = option(None, "Normalization std: one value per channel, or one for all "
                                                 "(default: ImageNet's for 3 channels).", "--std",
                                           cli_value="per_channel")
    output_name: str | None = option(None, "A model with several outputs: the classifier output, by name "
                                           "(default: the first output).", "--output-name", metavar="NAME")
    output_index: int | None = option(None, "A model with several outputs: the classifier output, by position "
                                            "(0 = first).", "--output-index", kind=int, low=0, metavar="I")
    preprocessing: Preprocessing | None = option(None, "A runtime.preprocess.Preprocessing replacing input_size, "
                                                       "mean and std (Python API only).")

    @property
    def label(self) -> str:
        """How logs name the model."""
        if isinstance(self.model, (str, Path)):
            return str(self.model)
        return f"{type(self.model).__name__} (nn.Module instance)"

    @property
    def output_choice(self):
        from exporter.models.outputs import OutputChoice

        return OutputChoice(self.output_name, self.output_index)


@dataclasses.dataclass
class BuiltModel:
    """A model in eval mode (or a prepared ONNX graph) plus everything the manifest records about it."""

    module: object  # torch.nn.Module; None for an ONNX model
    name: str
    source: str  # torchvision | seed | user | python | onnx
    spec: str
    num_classes: int
    class_names: list[str] | None
    preprocessing: Preprocessing
    weights: dict
    restore: Callable[[], None] | None = None  # puts a caller's module back in its training mode
    channels_note: str = ""  # where the channel count came from (error messages)
    factory_args: dict | None = None
    factory_signature: str | None = None  # a user factory that takes no num_classes: its signature
    onnx_model: object = None  # the given ONNX graph, prepared (exporter/models/onnx_file.py)
    opset: int | None = None  # the given ONNX graph's opset
    batch_fixed: int | None = None  # the given ONNX graph's fixed batch, made dynamic
    params: int | None = None  # the given ONNX graph's parameter count (initializer elements)


def is_onnx_model(spec) -> bool:
    """``--model model.onnx``: an existing ONNX file instead of a PyTorch model."""
    return isinstance(spec, (str, Path)) and str(spec).lower().endswith(".onnx")


def is_user_model(spec) -> bool:
    return isinstance(spec, str) and ":" in spec and spec not in REGISTRY and not is_onnx_model(spec)


def check_model_name(spec) -> None:
    """Refuse an unknown registry name before anything heavy is imported (a usage error)."""
    if isinstance(spec, str) and not is_user_model(spec) and not is_onnx_model(spec) and spec not in REGISTRY:
        raise UsageError(f"Unknown model '{spec}'.", hint=suggest(spec))


def default_name(req: ModelRequest) -> str:
    """The bundle's folder name when no --name is given, known before the model is built (the
    export takes its lock on that name before any work)."""
    spec = req.model
    if is_onnx_model(spec):
        return Path(spec).stem
    if not isinstance(spec, str):
        return type(spec).__name__.lower()
    if is_user_model(spec):
        target, _, attr = spec.rpartition(":")
        return f"{Path(target).stem}_{attr}" if target.endswith(".py") else attr
    return REGISTRY[spec].name


def check_request(req: ModelRequest) -> None:
    """Cheap checks of the request, before torch is imported (usage errors)."""
    check_model_name(req.model)
    if isinstance(req.weights, str) and is_onnx_model(req.weights):
        raise UsageError(f"--weights '{req.weights}' is an ONNX file, not a PyTorch checkpoint.",
                         hint=f"Export the ONNX model itself with --model {req.weights} (no --weights: its weights "
                              "are inside the graph).")
    if req.input_size is not None:
        h, w = input_hw(req.input_size)
        if min(h, w) < 8:
            raise UsageError(f"--input-size {format_hw((h, w))} is too small; use at least 8 pixels a side.")
    if req.channels is not None and (not isinstance(req.channels, int) or req.channels < 1):
        raise UsageError(f"--channels must be a whole number of at least 1, got {req.channels!r}.")
    if req.num_classes is not None and req.num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {req.num_classes}.")
    req.output_choice  # noqa: B018 - validates --output-name / --output-index
    if isinstance(req.model, str) and req.model in REGISTRY:  # registry models take RGB: check counts now
        channels = req.channels or 3
        for label, values in (("mean", req.mean), ("std", req.std)):
            if values is not None:
                _norm_values(values, channels, label, f"{req.model} takes RGB images")
    if req.factory_args and not is_user_model(req.model):
        raise UsageError("--factory-arg applies to a user factory (--model file.py:factory or module:factory), "
                         f"not to '{req.label}'.")


def resolve_weights(req: ModelRequest) -> str:
    """The weights spec to load: ``None`` (the default) and ``auto`` resolved per model family."""
    weights = req.weights
    entry = REGISTRY.get(req.model) if isinstance(req.model, str) else None
    torchvision = entry is not None and entry.family == "torchvision"
    if weights is None:
        return "DEFAULT" if torchvision else "none"
    if weights == "auto":
        if not torchvision:
            return "none"  # only torchvision models have named weights to look for
        from exporter.models.weights import auto_weights

        return auto_weights(entry.name)
    return weights


def suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    if close:
        return f"Did you mean {', '.join(close)}?"
    return ("Run `edgeport models` for the list, pass a factory as path/to/file.py:factory, or an ONNX file "
            "as path/to/model.onnx.")


def torchvision_weights_enum(name: str):
    import torchvision.models as tvm

    return tvm.get_model_weights(name)


# -- channels and preprocessing ----------------------------------------------------------------
def first_conv_channels(module) -> tuple[int | None, str]:
    """in_channels of the first ``nn.Conv2d`` in module order (``named_modules``), and where it is.

    Module order is the order the layers were assigned in ``__init__``, usually the order the
    input meets them; a model whose first declared convolution is not its input layer (a
    side branch declared first, or a stem that is not a Conv2d) needs ``--channels N``."""
    import torch.nn as nn

    for name, m in module.named_modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels), f"read from its first convolution '{name or type(m).__name__}'"
    return None, "no nn.Conv2d found: assumed"


def model_channels(req: ModelRequest, module) -> tuple[int, str]:
    """The input's channel count: --channels, else the first convolution, else the preprocessing, else 3."""
    if req.channels is not None:
        return req.channels, "given by --channels"
    found, note = first_conv_channels(module)
    if found is not None:
        return found, note
    if req.preprocessing is not None:
        return req.preprocessing.channels, "given by the preprocessing"
    return 3, f"{note} 3; pass --channels N if that is wrong"


def _norm_values(values, channels: int, label: str, note: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if len(values) not in (1, channels):
        raise UsageError(f"--{label} has {len(values)} values, but the model input has {channels} channel(s) "
                         f"({note}).", hint=f"Pass {channels} value(s), one per channel, or a single value for all "
                                            "channels (or --channels N if the channel count is wrong).")
    return values * channels if len(values) == 1 else values


def make_preprocessing(req: ModelRequest, channels: int, note: str, resize: int, crop: int,
                       interpolation: str = "bilinear", mean=None, std=None) -> Preprocessing:
    """The model's preprocessing: its defaults (resize/crop, mean/std) scaled to --input-size and
    overridden by --mean/--std; ``req.preprocessing`` (Python API) wins when given."""
    if req.preprocessing is not None:
        if req.preprocessing.channels != channels:
            raise UsageError(f"The preprocessing is for {req.preprocessing.channels}-channel inputs, but the model "
                             f"takes {channels} ({note}).",
                             hint=f"Pass Preprocessing(..., channels={channels}), or channels=N if the model's "
                                  "channel count was read wrongly.")
        return req.preprocessing
    size = input_hw(req.input_size) if req.input_size is not None else (crop, crop)
    if size != (crop, crop):
        resize = int(round(max(size) * resize / crop))
    mean = req.mean if req.mean is not None else (mean or (IMAGENET_MEAN if channels == 3 else None))
    std = req.std if req.std is not None else (std or (IMAGENET_STD if channels == 3 else None))
    if mean is None or std is None:
        from runtime import console

        console.warn(f"the model takes {channels}-channel inputs and no --mean/--std was given for them: pixels "
                     "are only scaled to [0, 1] (mean 0, std 1); pass the normalization the model was trained "
                     "with (e.g. --mean 0.1307 --std 0.3081 for MNIST)")
    mean = _norm_values(mean if mean is not None else (0.0,), channels, "mean", note)
    std = _norm_values(std if std is not None else (1.0,), channels, "std", note)
    return Preprocessing(resize=resize, crop=size, mean=mean, std=std, interpolation=interpolation,
                         channels=channels)


def build_model(req: ModelRequest, log=lambda s: None) -> BuiltModel:
    """Build the requested model, load its weights and put it in eval mode (an ONNX file: load and
    prepare its graph, exporter/models/onnx_file.py)."""
    check_request(req)
    if is_onnx_model(req.model):
        return _from_onnx(req, log)
    if not isinstance(req.model, str):
        built = _from_instance(req)
    else:
        built = _build_named(dataclasses.replace(req, weights=resolve_weights(req)), log)
    require_single_input(built.module, req.label)
    return built


def require_single_input(module, label: str) -> None:
    """Refuse a module whose forward needs more than one input, before any tracing (a usage error).

    edgeport's graphs, engines and runners feed one NCHW image tensor; a second required
    argument would otherwise surface as torch's TypeError deep inside the export.
    """
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C++ forward: nothing to read, tracing decides
        return
    required = [p.name for p in params if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if len(required) > 1:
        raise UsageError(
            f"{label}: its forward({', '.join(required)}) takes {len(required)} inputs; edgeport exports "
            "single-input models only (one NCHW image tensor).",
            hint="Wrap it in a module whose forward(x) supplies the other inputs (as constants or computed from "
                 "x), or give them default values.")


def _from_onnx(req: ModelRequest, log) -> BuiltModel:
    """An ONNX file, prepared by exporter/models/onnx_file.py (no torch)."""
    from exporter.models.onnx_file import prepare_onnx_model

    g = prepare_onnx_model(req, log=log)
    h, w = g.size
    pre = make_preprocessing(dataclasses.replace(req, input_size=g.size), g.channels, g.channels_note,
                             int(round(max(h, w) / 0.875)), max(h, w))
    return BuiltModel(module=None, name=g.path.stem, source="onnx", spec=str(g.path), num_classes=req.num_classes or 0,
                      class_names=None, preprocessing=pre, weights=g.weights, channels_note=g.channels_note,
                      onnx_model=g.model, opset=g.opset, batch_fixed=g.batch_fixed, params=g.params)


def _build_user(req: ModelRequest, log) -> BuiltModel:
    """A user factory, called with --factory-arg arguments, with its weights loaded, in eval mode."""
    import torch

    from exporter.models import factories as F
    from exporter.models import weights as W

    args = F.parse_factory_args(req.factory_args)
    with F.user_code(req.model):  # its prints to stderr, its exits to errors, its chdir undone
        factory, _ = F.load_user_factory(req.model)
        torch.manual_seed(0)
        module = F.call_factory(factory, req.model, req.num_classes, args)
    channels, note = model_channels(req, module)
    size = 224
    pre = make_preprocessing(req, channels, note, int(round(size / 0.875)), size)
    name = default_name(req)
    weights = W.apply_weights(module, req, family="user", log=log)
    return BuiltModel(module.eval(), name=name, source="user", spec=req.model, num_classes=req.num_classes or 0,
                      class_names=None, preprocessing=pre, weights=weights, channels_note=note,
                      factory_args=F.recorded_args(args),
                      factory_signature=None if F.takes_num_classes(factory) else F.signature_text(factory, req.model))


def _build_named(req: ModelRequest, log) -> BuiltModel:
    """A registry model or a user factory, with its weights loaded, in eval mode."""
    from exporter.models import weights as W

    if is_user_model(req.model):
        return _build_user(req, log)
    entry = REGISTRY[req.model]
    import torch

    torch.manual_seed(0)
    if entry.family == "seed":
        from exporter.models import seed as seed_models

        module = getattr(seed_models, entry.name)(num_classes=req.num_classes or entry.num_classes)
        channels, note = model_channels(req, module)
        pre = make_preprocessing(req, channels, note, entry.resize, entry.input_size)
        weights = W.apply_weights(module, req, family="seed", log=log)
        return BuiltModel(module.eval(), name=entry.name, source="seed", spec=entry.name,
                          num_classes=req.num_classes or entry.num_classes, class_names=None,
                          preprocessing=pre, weights=weights, channels_note=note)

    import torchvision.models as tvm

    named = W.named_weights(entry.name, req.weights)
    if named is not None:
        if req.num_classes not in (None, len(named.meta["categories"])):
            raise UsageError(f"--num-classes {req.num_classes} conflicts with {named}, which has "
                             f"{len(named.meta['categories'])} classes.",
                             hint="Drop --num-classes, or use --weights none / a checkpoint of your own.")
        t = named.transforms()
        module = tvm.get_model(entry.name, weights=None)
        channels, note = model_channels(req, module)
        pre = make_preprocessing(req, channels, note, t.resize_size[0], t.crop_size[0], t.interpolation.value,
                                 mean=t.mean, std=t.std)
        weights = W.load_named_weights(module, entry.name, named, log=log)
        return BuiltModel(module.eval(), name=entry.name, source="torchvision", spec=entry.name,
                          num_classes=len(named.meta["categories"]), class_names=list(named.meta["categories"]),
                          preprocessing=pre, weights=weights, channels_note=note)
    num_classes = req.num_classes or entry.num_classes
    module = tvm.get_model(entry.name, weights=None, num_classes=num_classes)
    channels, note = model_channels(req, module)
    pre = make_preprocessing(req, channels, note, entry.resize, entry.input_size)
    weights = W.apply_weights(module, req, family="torchvision", log=log)
    return BuiltModel(module.eval(), name=entry.name, source="torchvision", spec=entry.name,
                      num_classes=num_classes, class_names=None, preprocessing=pre, weights=weights,
                      channels_note=note)


def _from_instance(req: ModelRequest) -> BuiltModel:
    """An ``nn.Module`` passed from Python: exported with its own weights, in eval mode for
    the export and put back in its training mode afterwards (``BuiltModel.restore``)."""
    import torch.nn as nn

    module = req.model
    if not isinstance(module, nn.Module):
        raise UsageError(f"model must be a registry name, 'file.py:factory', 'module:factory', a path to an .onnx "
                         f"file or a torch.nn.Module, got a {type(module).__name__}.")
    if req.weights not in (None, "current"):
        raise UsageError(f"weights={req.weights!r} cannot be applied to an nn.Module instance: edgeport exports the "
                         "module's own weights.", hint="Load the checkpoint into the module first "
                                                        "(module.load_state_dict(...)), then export it.")
    channels, note = model_channels(req, module)
    size = 224
    pre = make_preprocessing(req, channels, note, int(round(size / 0.875)), size)
    cls = type(module)
    was_training = module.training
    return BuiltModel(module.eval(), name=cls.__name__.lower(), source="python",
                      spec=f"{cls.__module__}.{cls.__qualname__}", num_classes=req.num_classes or 0,
                      class_names=None, preprocessing=pre,
                      weights={"spec": "module", "random_init": False,
                               "description": f"the weights of the {cls.__name__} instance passed to edgeport.export"},
                      restore=lambda: module.train(was_training), channels_note=note)


def count_macs(module, input_chw) -> tuple[int, int]:
    """(parameters, multiply-accumulates) for one input of shape ``input_chw`` (C, H, W; an int
    N means 3 x N x N), counting Conv2d and Linear."""
    import torch
    import torch.nn as nn

    if isinstance(input_chw, int):
        input_chw = (3, input_chw, input_chw)
    macs = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs[0] += out.numel() * k

    def linear_hook(m, inp, out):
        macs[0] += out.numel() * m.in_features

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_chw))
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in module.parameters())
    return params, macs[0]


def compute_model_rows(names=None) -> list[dict]:
    """Rows for `edgeport models`, computed: torchvision's weight metadata, seed models built and
    counted here. Needs torch and torchvision; ``exporter/models/table.py`` keeps the result."""
    rows = []
    for entry in REGISTRY.values():
        if names is not None and entry.name not in names:
            continue
        if entry.family == "torchvision":
            enum = torchvision_weights_enum(entry.name)
            default = enum.DEFAULT
            members = [w for w in enum.__members__ if w != "DEFAULT"]
            t = default.transforms()
            rows.append({
                "name": entry.name, "family": entry.family,
                "params_m": default.meta["num_params"] / 1e6, "gmacs": default.meta["_ops"],
                "input_size": t.crop_size[0], "resize": t.resize_size[0],
                "weights": ["none"] + [f"{n}{' (DEFAULT)' if enum[n] is default else ''}" for n in members],
                "classes": len(default.meta["categories"]),
            })
        else:
            from exporter.models import seed as seed_models

            module = getattr(seed_models, entry.name)(num_classes=entry.num_classes)
            params, macs = count_macs(module.eval(), entry.input_size)
            rows.append({
                "name": entry.name, "family": entry.family, "params_m": params / 1e6, "gmacs": macs / 1e9,
                "input_size": entry.input_size, "resize": entry.resize,
                "weights": ["none", "PATH"], "classes": entry.num_classes,
            })
    return rows


def list_models() -> list[dict]:
    """Rows for `edgeport models`, from the precomputed table (exporter/models/table.py: no torch,
    no model built); an entry missing there is computed. tests/edgeport/test_cli_messages.py
    recomputes the table."""
    from exporter.models.table import ROWS

    table = {r["name"]: r for r in ROWS}
    missing = [n for n in REGISTRY if n not in table]
    computed = {r["name"]: r for r in compute_model_rows(missing)} if missing else {}
    return [dict(table.get(n) or computed[n]) for n in REGISTRY]
