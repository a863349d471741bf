"""The model registry: torchvision classifiers, the seed architectures, user factories.

Each entry carries its default input size and preprocessing; torchvision weights bring
their own (V1 and V2 differ: ResNet-50 V2 resizes to 232). Building a model never touches
the network unless named weights are requested and not cached (see weights.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable

from runtime.errors import EdgeportError, UsageError
from runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

TORCHVISION_MODELS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
    "densenet121", "densenet161", "densenet169", "densenet201",
)
SEED_MODELS = ("seed_resnet", "seed_densenet")


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
    """What the user asked for: a registry name, ``file.py:factory`` / ``module:factory``, or
    an ``nn.Module`` instance (Python API).

    ``weights`` None means the model's default: ``DEFAULT`` for torchvision models, random
    init for seed and user models, the module's own weights for an instance.
    ``preprocessing`` (a runtime.preprocess.Preprocessing) overrides input_size/mean/std.
    """

    model: object
    weights: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    trust_checkpoint: bool = False
    preprocessing: Preprocessing | None = None

    @property
    def label(self) -> str:
        """How logs name the model."""
        if isinstance(self.model, str):
            return self.model
        return f"{type(self.model).__name__} (nn.Module instance)"


@dataclasses.dataclass
class BuiltModel:
    """A model in eval mode plus everything the manifest records about it."""

    module: object  # torch.nn.Module
    name: str
    source: str  # torchvision | seed | user
    spec: str
    num_classes: int
    class_names: list[str] | None
    preprocessing: Preprocessing
    weights: dict
    restore: Callable[[], None] | None = None  # puts a caller's module back in its training mode


def is_user_model(spec) -> bool:
    return isinstance(spec, str) and ":" in spec and spec not in REGISTRY


def check_model_name(spec) -> None:
    """Refuse an unknown registry name before anything heavy is imported (a usage error)."""
    if isinstance(spec, str) and not is_user_model(spec) and spec not in REGISTRY:
        raise UsageError(f"Unknown model '{spec}'.", hint=suggest(spec))


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
        from .weights import auto_weights

        return auto_weights(entry.name)
    return weights


def suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    if close:
        return f"Did you mean {', '.join(close)}?"
    return "Run `edgeport models` for the list, or pass a factory as path/to/file.py:factory."


def torchvision_weights_enum(name: str):
    import torchvision.models as tvm

    return tvm.get_model_weights(name)


def _scaled_preprocessing(resize: int, crop: int, input_size: int | None, mean, std, interpolation="bilinear"):
    if input_size and input_size != crop:
        resize = int(round(input_size * resize / crop))
        crop = input_size
    return Preprocessing(resize=resize, crop=crop, mean=tuple(mean), std=tuple(std), interpolation=interpolation)


def load_user_factory(spec: str) -> tuple[Callable, str]:
    """Resolve ``path/to/file.py:factory`` or ``package.module:factory``."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise UsageError(f"--model '{spec}' must look like path/to/file.py:factory or package.module:factory.")
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise EdgeportError(f"Model file '{path}' does not exist.",
                                hint="Pass an existing Python file, e.g. --model my_net.py:build.")
        mod_name = f"edgeport_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise EdgeportError(f"Importing model file '{path}' failed: {type(exc).__name__}: {exc}",
                                hint="Fix the file (run it with python to see the full error, or add --debug).") from exc
        finally:
            sys.path.pop(0)
        where = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001
            raise EdgeportError(f"Cannot import module '{target}': {type(exc).__name__}: {exc}",
                                hint="Check that it is installed or on PYTHONPATH, or pass a file path.") from exc
        where = target
    factory = getattr(module, attr, None)
    if factory is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise EdgeportError(f"'{where}' has no attribute '{attr}'.",
                            hint=f"Callables it defines: {', '.join(public[:10]) or 'none'}.")
    if not callable(factory):
        raise EdgeportError(f"'{where}:{attr}' is a {type(factory).__name__}, not a callable factory.")
    return factory, where


def _call_factory(factory, spec: str, num_classes: int | None):
    import torch.nn as nn

    kwargs = {}
    if num_classes is not None:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        if "num_classes" in params or any(p.kind == p.VAR_KEYWORD for p in params.values()):
            kwargs["num_classes"] = num_classes
    try:
        module = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise EdgeportError(f"The factory '{spec}' raised {type(exc).__name__}: {exc}",
                            hint="Fix the factory; rerun with --debug for the traceback.") from exc
    if not isinstance(module, nn.Module):
        raise EdgeportError(f"The factory '{spec}' returned a {type(module).__name__}, not a torch.nn.Module.",
                            hint="It must return the model instance (e.g. `return MyNet()`).")
    return module


def build_model(req: ModelRequest, log=lambda s: None) -> BuiltModel:
    """Build the requested model, load its weights and put it in eval mode."""
    mean = req.mean or IMAGENET_MEAN
    std = req.std or IMAGENET_STD
    if req.input_size is not None and req.input_size < 8:
        raise UsageError(f"--input-size {req.input_size} is too small; use at least 8 pixels.")
    if req.num_classes is not None and req.num_classes < 1:
        raise UsageError(f"--num-classes must be at least 1, got {req.num_classes}.")
    if not isinstance(req.model, str):
        return _from_instance(req, mean, std)
    built = _build_named(dataclasses.replace(req, weights=resolve_weights(req)), mean, std, log)
    if req.preprocessing is not None:
        built.preprocessing = req.preprocessing
    return built


def _build_named(req: ModelRequest, mean, std, log) -> BuiltModel:
    """A registry model or a user factory, with its weights loaded, in eval mode."""
    from . import weights as W

    if is_user_model(req.model):
        import torch

        factory, where = load_user_factory(req.model)
        torch.manual_seed(0)
        module = _call_factory(factory, req.model, req.num_classes)
        size = req.input_size or 224
        pre = _scaled_preprocessing(int(round(size / 0.875)), size, None, mean, std)
        stem = req.model.rpartition(":")[2]
        name = Path(req.model.rpartition(":")[0]).stem + "_" + stem if where.endswith(".py") else stem
        weights = W.apply_weights(module, req, family="user", log=log)
        return BuiltModel(module.eval(), name=name, source="user", spec=req.model,
                          num_classes=req.num_classes or 0, class_names=None, preprocessing=pre, weights=weights)

    check_model_name(req.model)
    entry = REGISTRY[req.model]
    import torch

    torch.manual_seed(0)
    if entry.family == "seed":
        from . import seed_models

        module = getattr(seed_models, entry.name)(num_classes=req.num_classes or entry.num_classes)
        pre = _scaled_preprocessing(entry.resize, entry.input_size, req.input_size, mean, std)
        weights = W.apply_weights(module, req, family="seed", log=log)
        return BuiltModel(module.eval(), name=entry.name, source="seed", spec=entry.name,
                          num_classes=req.num_classes or entry.num_classes, class_names=None,
                          preprocessing=pre, weights=weights)

    import torchvision.models as tvm

    named = W.named_weights(entry.name, req.weights)
    if named is not None:
        if req.num_classes not in (None, len(named.meta["categories"])):
            raise UsageError(f"--num-classes {req.num_classes} conflicts with {named}, which has "
                             f"{len(named.meta['categories'])} classes.",
                             hint="Drop --num-classes, or use --weights none / a checkpoint of your own.")
        t = named.transforms()
        pre = _scaled_preprocessing(t.resize_size[0], t.crop_size[0], req.input_size,
                                    req.mean or t.mean, req.std or t.std, t.interpolation.value)
        module = tvm.get_model(entry.name, weights=None)
        weights = W.load_named_weights(module, entry.name, named, log=log)
        return BuiltModel(module.eval(), name=entry.name, source="torchvision", spec=entry.name,
                          num_classes=len(named.meta["categories"]), class_names=list(named.meta["categories"]),
                          preprocessing=pre, weights=weights)
    num_classes = req.num_classes or entry.num_classes
    module = tvm.get_model(entry.name, weights=None, num_classes=num_classes)
    pre = _scaled_preprocessing(entry.resize, entry.input_size, req.input_size, mean, std)
    weights = W.apply_weights(module, req, family="torchvision", log=log)
    return BuiltModel(module.eval(), name=entry.name, source="torchvision", spec=entry.name,
                      num_classes=num_classes, class_names=None, preprocessing=pre, weights=weights)


def _from_instance(req: ModelRequest, mean, std) -> BuiltModel:
    """An ``nn.Module`` passed from Python: exported with its own weights, in eval mode for
    the export and put back in its training mode afterwards (``BuiltModel.restore``)."""
    import torch.nn as nn

    module = req.model
    if not isinstance(module, nn.Module):
        raise UsageError(f"model must be a registry name, 'file.py:factory', 'module:factory' or a torch.nn.Module, "
                         f"got a {type(module).__name__}.")
    if req.weights not in (None, "current"):
        raise UsageError(f"weights={req.weights!r} cannot be applied to an nn.Module instance: edgeport exports the "
                         "module's own weights.", hint="Load the checkpoint into the module first "
                                                        "(module.load_state_dict(...)), then export it.")
    size = req.input_size or 224
    pre = req.preprocessing or _scaled_preprocessing(int(round(size / 0.875)), size, None, mean, std)
    cls = type(module)
    was_training = module.training
    return BuiltModel(module.eval(), name=cls.__name__.lower(), source="python",
                      spec=f"{cls.__module__}.{cls.__qualname__}", num_classes=req.num_classes or 0,
                      class_names=None, preprocessing=pre,
                      weights={"spec": "module", "random_init": False,
                               "description": f"the weights of the {cls.__name__} instance passed to edgeport.export"},
                      restore=lambda: module.train(was_training))


def count_macs(module, input_size: int) -> tuple[int, int]:
    """(parameters, multiply-accumulates) for one image, counting Conv2d and Linear."""
    import torch
    import torch.nn as nn

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
            module(torch.zeros(1, 3, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for p in module.parameters())
    return params, macs[0]


def compute_model_rows(names=None) -> list[dict]:
    """Rows for `edgeport models`, computed: torchvision's weight metadata, seed models built and
    counted here. Needs torch and torchvision; ``exporter/model_table.py`` keeps the result."""
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
            from . import seed_models

            module = getattr(seed_models, entry.name)(num_classes=entry.num_classes)
            params, macs = count_macs(module.eval(), entry.input_size)
            rows.append({
                "name": entry.name, "family": entry.family, "params_m": params / 1e6, "gmacs": macs / 1e9,
                "input_size": entry.input_size, "resize": entry.resize,
                "weights": ["none", "PATH"], "classes": entry.num_classes,
            })
    return rows


def list_models() -> list[dict]:
    """Rows for `edgeport models`: name, params, GMACs, input size, weights.

    Read from the precomputed table (exporter/model_table.py), so listing imports neither
    torch nor torchvision (seconds) and builds no model; a registry entry missing from the
    table is computed (needs torch). tests/test_cli_messages.py recomputes the table."""
    from .model_table import ROWS

    table = {r["name"]: r for r in ROWS}
    missing = [n for n in REGISTRY if n not in table]
    computed = {r["name"]: r for r in compute_model_rows(missing)} if missing else {}
    return [dict(table.get(n) or computed[n]) for n in REGISTRY]
