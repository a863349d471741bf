"""Weights: torchvision's named weights, checkpoints on disk, or random init.

``--weights`` takes ``DEFAULT``, a torchvision enum name (``IMAGENET1K_V2``), ``none`` or a
PATH. Checkpoints are loaded with ``torch.load(weights_only=True)``: a pickle that would
run code is refused unless ``--trust-checkpoint`` is given (unsafe, documented as such).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

from runtime.bundle import sha256_file
from runtime.errors import EdgeportError, UsageError

# torchvision's DenseNet checkpoints predate a module rename: "norm.1" -> "norm1" etc.
# This is the same remapping torchvision applies in densenet._load_state_dict.
_DENSENET_LEGACY = re.compile(
    r"(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))"
)

# No option named here: `--weights auto` also ends in random init (when nothing is cached), and
# "(--weights none)" then read as if the user had typed it.
RANDOM_NOTE = "random-init weights (seed 0): only fidelity to PyTorch is meaningful, not task accuracy"


def named_weights(model_name: str, spec: str):
    """The torchvision weights enum member for ``spec``, or None when ``spec`` is not a name."""
    if spec.lower() == "none" or _looks_like_path(spec):
        return None
    import torchvision.models as tvm

    enum = tvm.get_model_weights(model_name)
    members = list(enum.__members__)
    if spec in members:
        return enum[spec]
    if spec.upper() in members:
        return enum[spec.upper()]
    raise UsageError(
        f"'{spec}' is neither a weights name of {model_name} nor an existing file.",
        hint=f"Weights names: {', '.join(members)}; or 'none', or a path to a checkpoint.",
    )


def _looks_like_path(spec: str) -> bool:
    return (os.sep in spec or "/" in spec or spec.endswith((".pth", ".pt", ".ckpt", ".bin", ".tar"))
            or Path(spec).exists())


def remap_densenet_keys(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        m = _DENSENET_LEGACY.fullmatch(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def auto_weights(model_name: str) -> str:
    """``--weights auto``: DEFAULT when its file is already cached, else ``none`` (no download)."""
    import torchvision.models as tvm

    default = tvm.get_model_weights(model_name).DEFAULT
    cached = _cache_file(default.url)
    if cached.is_file():
        return "DEFAULT"
    from runtime import console

    console.log(f"--weights auto: {default} is not cached at {cached}; using random init instead "
                "(no download attempted)")
    return "none"


def _cache_file(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def load_named_weights(module, model_name: str, weights, log=lambda s: None) -> dict:
    """Load torchvision's named weights, from TORCH_HOME's cache or by downloading once."""
    import torch

    url = weights.url
    cached = _cache_file(url)
    if not cached.is_file():
        log(f"downloading {weights} from {url} into {cached.parent}")
    try:
        # torch.hub writes its "Downloading: ..." line to stdout, which `--json` keeps for JSON alone.
        with contextlib.redirect_stdout(sys.stderr):
            state_dict = torch.hub.load_state_dict_from_url(url, progress=not cached.is_file(), check_hash=True,
                                                            map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        if cached.is_file():
            raise EdgeportError(f"The cached weights file {cached} could not be loaded ({exc}).",
                                hint="Delete it and download it again.") from exc
        raise EdgeportError(
            f"Weights {weights} for {model_name} are not cached and could not be downloaded ({exc}).",
            hint=(f"On a machine with internet access download {url} and put it at {cached} "
                  f"(folder {cached.parent}; set TORCH_HOME to use another cache), "
                  "or pass --weights PATH to a checkpoint, or --weights none for random init."),
        ) from exc
    if model_name.startswith("densenet"):
        state_dict = remap_densenet_keys(state_dict)
    _load_into(module, state_dict, f"{weights}")
    return {
        "spec": str(weights).split(".")[-1],
        "name": str(weights),
        "url": url,
        "file": str(cached),
        "random_init": False,
        "description": f"torchvision {weights} (ImageNet top-1 "
                       f"{weights.meta.get('_metrics', {}).get('ImageNet-1K', {}).get('acc@1', '?')})",
    }


def apply_weights(module, req, family: str, log=lambda s: None) -> dict:
    """Random init (``none``) or a checkpoint PATH; named weights are torchvision-only."""
    spec = req.weights
    if spec.lower() == "none":
        log(f"using {RANDOM_NOTE}")
        return {"spec": "none", "random_init": True, "description": "random init (seed 0)", "note": RANDOM_NOTE}
    if not _looks_like_path(spec):
        if spec.upper() == "DEFAULT" or spec.isupper():
            raise UsageError(f"Named weights ('{spec}') exist only for torchvision models, not for '{req.model}'.",
                             hint="Pass --weights PATH to a checkpoint, or --weights none.")
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"Weights file '{path}' does not exist.",
                            hint="Check the path, or use --weights none for random init.")
    if path.is_dir():
        raise UsageError(f"Weights path '{path}' is a folder, not a checkpoint file.")
    state_dict = load_checkpoint(path, trust=req.trust_checkpoint)
    if family == "torchvision" and req.model.startswith("densenet"):
        state_dict = remap_densenet_keys(state_dict)
    _load_into(module, state_dict, str(path))
    log(f"loaded weights from {path}")
    return {"spec": str(path), "file": str(path.resolve()), "sha256": sha256_file(path), "random_init": False,
            "description": f"checkpoint {path.name}", "trusted_pickle": bool(req.trust_checkpoint)}


def load_checkpoint(path: Path, trust: bool = False) -> dict:
    """Read a state_dict or a checkpoint dict (``state_dict``/``model`` keys, ``module.`` stripped)."""
    import pickle

    import torch

    _check_checkpoint_format(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        # The safe unpickler names the GLOBAL it blocked; anything else means a corrupt file.
        blocked = [ln.strip() for ln in str(exc).splitlines() if "global" in ln.lower()]
        if not blocked:
            raise EdgeportError(
                f"'{path}' is not a readable PyTorch checkpoint (truncated or corrupt?): "
                f"{[ln for ln in str(exc).splitlines() if ln.strip()][-2][:200]}",
                hint="Check the file (its size and sha256) or save it again.") from exc
        raise EdgeportError(
            f"Refused to load '{path}': it is not a plain tensor checkpoint; unpickling it could execute "
            f"arbitrary code ({blocked[0][:200]}).",
            hint="Re-save it as a state_dict (torch.save(model.state_dict(), path)), or, only if you trust "
                 "where it came from, pass --trust-checkpoint (unsafe: runs the pickle's code).",
        ) from exc
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, ImportError, KeyError, IndexError,
            TypeError) as exc:  # the unpickler fails on a corrupt stream with whatever its opcodes hit
        raise EdgeportError(
            f"'{path}' is not a readable PyTorch checkpoint (truncated or corrupt?): {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Check the file (its size and sha256) or save it again.",
        ) from exc
    return extract_state_dict(obj, path)


def _check_checkpoint_format(path: Path) -> None:
    """torch.save writes a zip archive (PyTorch >= 1.6) or a pickle (protocol 2+ starts with 0x80);
    anything else (a text file, an ONNX graph) is named as such, not as a failed unpickling."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise EdgeportError(f"--weights: cannot read '{path}' ({exc.strerror or exc}).",
                            hint="Pass a readable .pth/.pt checkpoint.") from exc
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return
    kind = "empty" if not head else "text, not a PyTorch checkpoint" if _is_text(path) else \
        "not a PyTorch checkpoint (neither the zip archive nor the pickle torch.save writes)"
    raise EdgeportError(f"--weights: '{path}' is {kind}.",
                        hint="Pass a file written by torch.save (a state_dict or a checkpoint dict), a torchvision "
                             "weights name, or none.")


def _is_text(path: Path) -> bool:
    with open(path, "rb") as f:
        sample = f.read(4096)
    if len(sample) == 4096:
        sample = sample[:-3]  # a multi-byte character cut at the end is still text
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def extract_state_dict(obj, path) -> dict:
    import torch

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net", "ema"):
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise EdgeportError(f"'{path}' holds no state_dict of tensors (found: {keys}).",
                            hint="Save with torch.save(model.state_dict(), path) or a dict with a 'state_dict' key.")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _strip_wrapper_prefix(state_dict: dict, own: dict) -> dict:
    """Drop a wrapper prefix shared by every key (``model.``, ``net.``, ``backbone.`` ...,
    as training frameworks such as Lightning save them) when that makes the keys fit."""
    if not state_dict or set(state_dict) & set(own):
        return state_dict
    prefixes = {k.split(".", 1)[0] for k in state_dict}
    if len(prefixes) != 1 or not all("." in k for k in state_dict):
        return state_dict
    stripped = {k.split(".", 1)[1]: v for k, v in state_dict.items()}
    return stripped if set(stripped) & set(own) else state_dict


def _load_into(module, state_dict: dict, source: str) -> None:
    own = module.state_dict()
    state_dict = _strip_wrapper_prefix(state_dict, own)
    # BatchNorm fills in a missing num_batches_tracked itself (old checkpoints lack it).
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched)):
            if items:
                shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
                parts.append(f"{len(items)} {label} ({shown})")
        raise EdgeportError(
            f"The weights in '{source}' do not fit this model: " + "; ".join(parts) + ".",
            hint="Check --model (and --num-classes) against the architecture the checkpoint was trained for.",
        )
    module.load_state_dict(state_dict, strict=True)
