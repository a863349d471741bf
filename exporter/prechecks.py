"""Early checks of every path and data option of ``edgeport export``, before the model loads.

A path the user typed that does not exist or is of the wrong kind is a usage error (exit 2);
data whose content cannot be used (a calibration folder whose images are all unreadable) is
a failure while working (exit 3) -- but both are found here, within a second of starting,
not after the model load, the reference run, the ONNX export and onnxsim (~20 s for a
ResNet). Only headers are read, plus one full decode per folder, so a folder of hundreds of
photos is checked in well under a second.
"""

from __future__ import annotations

from pathlib import Path

from runtime import console
from runtime.errors import UsageError

ARRAY_SUFFIXES = (".npy", ".npz")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".tar")
_HEADER_SCAN = 512  # the calibration default cap (exporter/int8/calibration.py): no need to look further


def check_paths(config) -> None:
    """Every path option of an ExportConfig: exists, right kind, usable data (see the module docstring)."""
    _check_model_path(config.request.model)
    _check_weights(config.request.weights)
    if config.int8 and config.calib_data is not None:
        check_calibration(Path(config.calib_data), channels=_known_channels(config.request))
    if config.golden_data is not None:
        _check_data(Path(config.golden_data), "--golden-data", "a folder of images or a .npy/.npz of tensors")
    if config.labeled_data is not None:
        _check_folder(Path(config.labeled_data), "--labeled-data", "an ImageFolder tree DIR/<class>/*.jpg")


def _check_model_path(model) -> None:
    if not isinstance(model, (str, Path)):
        return  # an nn.Module instance
    spec = str(model)
    if spec.lower().endswith(".onnx"):
        _check_file(Path(spec), "--model", "an existing .onnx file, e.g. --model path/to/model.onnx")
        return
    target, _, attr = spec.rpartition(":")
    if target and attr and (target.endswith(".py") or "/" in target or "\\" in target):
        _check_file(Path(target), "--model", "an existing Python file, e.g. --model my_net.py:build")


def _check_weights(weights) -> None:
    if not isinstance(weights, (str, Path)):
        return
    spec = str(weights)
    if "/" in spec or "\\" in spec or spec.endswith(_WEIGHT_SUFFIXES):
        _check_file(Path(spec), "--weights", "a checkpoint file, or --weights none for random init")


def _check_file(path: Path, option: str, expected: str) -> None:
    if not path.exists():
        raise UsageError(f"{option} '{path}' does not exist.", hint=f"Pass {expected}.")
    if path.is_dir():
        raise UsageError(f"{option} '{path}' is a folder, not a file.", hint=f"Pass {expected}.")


def _check_folder(path: Path, option: str, expected: str) -> None:
    if not path.exists():
        raise UsageError(f"{option} '{path}' does not exist.", hint=f"Pass {expected}.")
    if not path.is_dir():
        raise UsageError(f"{option} '{path}' is a file, not a folder.", hint=f"Pass {expected}.")


def _check_data(path: Path, option: str, expected: str) -> list[Path]:
    """A folder holding at least one image file, or a .npy/.npz file; returns the image files."""
    from runtime.preprocess import list_images

    if not path.exists():
        raise UsageError(f"{option} '{path}' does not exist.", hint=f"Pass {expected}.")
    if path.is_file():
        if path.suffix.lower() not in ARRAY_SUFFIXES:
            raise UsageError(f"{option} '{path}' is a file but not a .npy or .npz array.", hint=f"Pass {expected}.")
        return []
    files = list_images(path)
    if not files:
        raise UsageError(f"{option} folder '{path}' contains no image files (searched recursively for "
                         "jpg/png/bmp/webp/tif/gif).", hint=f"Pass {expected}.")
    return files


def check_calibration(path: Path, channels: int | None = None) -> None:
    """The --calib-data set is usable: it exists, holds images (or is an array file), at least
    one decodes, and the images' channel count suits a model taking ``channels`` (when known)."""
    files = _check_data(path, "--calib-data", "a folder of images typical of your inputs, or a .npy/.npz of "
                                              "preprocessed NCHW float tensors")
    if not files:
        return  # an array file: its shape is checked against the model once the model is known
    bands, problems = _scan_headers(files[:_HEADER_SCAN])
    if not bands:
        from exporter.int8.calibration import none_readable

        raise none_readable(f"{len(files[:_HEADER_SCAN])} image files checked in", path, problems)
    _warn_grayscale(path, channels, bands)


def _warn_grayscale(path: Path, channels: int | None, bands: list[int]) -> None:
    if channels == 3 and bands and all(b == 1 for b in bands):
        console.warn(f"--calib-data '{path}' holds only grayscale images, but the model takes 3-channel (RGB) "
                     "input: they are calibrated as gray RGB, so the INT8 ranges of colour inputs are likely wrong. "
                     "Pass colour images typical of your inputs")


def check_calibration_channels(config, channels: int) -> None:
    """Once the model is loaded: the grayscale check of --calib-data that ``check_paths`` could not
    make because the options did not say the model's channels (a user factory, an ONNX file)."""
    if config.calib_data is None or _known_channels(config.request) is not None:
        return  # the shipped set, or already checked before the load
    path = Path(config.calib_data)
    if path.is_dir():
        bands, _ = _scan_headers(_check_data(path, "--calib-data", "a folder of images")[:_HEADER_SCAN])
        _warn_grayscale(path, channels, bands)


def _scan_headers(files: list[Path]) -> tuple[list[int], list[tuple[str, str]]]:
    """Channel counts of the images whose header reads, and (file, problem) for the others; the
    first readable image is decoded in full so that a folder of truncated files is caught too."""
    from PIL import Image

    bands, problems, decoded = [], [], False
    for f in files:
        try:
            with Image.open(f) as img:
                if not decoded:
                    img.load()
                    decoded = True
                bands.append(1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
            problems.append((f.name, f"{type(exc).__name__}: {exc}"))
    return bands, problems


def _known_channels(request) -> int | None:
    """The model's input channels where the options say it without loading the model."""
    if request.channels is not None:
        return request.channels
    from exporter.models.registry import REGISTRY

    return 3 if isinstance(request.model, str) and request.model in REGISTRY else None
