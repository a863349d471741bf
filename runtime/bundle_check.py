"""The strict half of the bundle reader: the ranges, shapes and names of manifest.json, the
array headers of golden.npz, and the manifest against the ONNX graph a runner loaded.

runtime/manifest.py checks each field's JSON type; this module checks what the types cannot
say (a positive batch within a bound, an input shape that fits the preprocessing, a file name
inside the bundle, golden arrays of the sizes the manifest declares). Every refusal is a
``BundleError`` that names the field, so a malformed bundle never reaches a KeyError, a
TypeError or an 8 GiB allocation further on. ``Bundle.open`` and ``Bundle.golden`` call it.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from runtime.errors import BundleError, UsageError
from runtime.manifest import REFERENCES, FileEntry, Manifest, show
from runtime.preprocess import Preprocessing

# Bounds that no real classifier bundle comes near; they keep a hostile or corrupt manifest
# from sizing buffers (max_batch x input) or golden arrays beyond what a device can hold.
MAX_BATCH = 4096
MAX_DIM = 1 << 20
MAX_SAMPLES = 100_000
MAX_GOLDEN_BYTES = 4 << 30
MAX_TEXT = 1024  # characters of a class name or a golden sample name
DTYPES = ("float32", "float16")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HINT = "Re-export the bundle with `edgeport export`."


def fail(where: str, text: str, hint: str | None = None):
    raise BundleError(f"manifest.json: {where} {text}.", hint=hint or _HINT)


def check_int(value, where: str, lo: int = 1, hi: int = MAX_DIM) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        kind = "a positive integer" if lo == 1 else f"an integer of at least {lo}"
        fail(where, f"must be {kind} no larger than {hi}, got {show(value)}")
    return value


def check_text(value, where: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value or len(value) > limit or _CONTROL.search(value):
        fail(where, f"must be a non-empty string of at most {limit} characters without control characters, "
                    f"got {show(value)}")
    return value


# -- manifest.json -------------------------------------------------------------------------------
def check_manifest(m: Manifest) -> Preprocessing:
    """Refuse any value of ``m`` out of range or inconsistent; the checked preprocessing."""
    check_text(m.model.name, "model.name", 255)
    if m.reference not in REFERENCES:
        fail("reference", f"must be one of {', '.join(REFERENCES)}, got {show(m.reference)}")
    _check_input(m)
    _check_outputs(m)
    pre = check_preprocessing(m.preprocessing)
    if tuple(m.input.shape[1:]) != pre.chw:
        fail("input.shape", f"{show(m.input.shape)} does not fit the preprocessing, which makes "
                            f"{pre.chw[0]}-channel {pre.chw[1]}x{pre.chw[2]} inputs (preprocessing.channels / crop)")
    _check_classes(m)
    _check_files(m)
    return pre


def check_shape(shape, where: str, rank: int | None = None, min_rank: int = 1) -> None:
    """``[batch, d1, ...]``: a named (dynamic) batch, then positive whole dimensions."""
    if (rank is not None and len(shape) != rank) or len(shape) < min_rank:
        want = f"{rank} dimensions" if rank is not None else f"at least {min_rank} dimensions"
        fail(where, f"must have {want} (the batch first), got {show(shape)}")
    if not isinstance(shape[0], str) or not shape[0]:
        fail(f"{where}[0]", f"must name the dynamic batch dimension (\"batch\"), got {show(shape[0])}")
    for i, d in enumerate(shape[1:], 1):
        check_int(d, f"{where}[{i}]")


def _check_input(m: Manifest) -> None:
    spec = m.input
    check_text(spec.name, "input.name")
    if spec.dtype not in DTYPES:
        fail("input.dtype", f"must be one of {', '.join(DTYPES)}, got {show(spec.dtype)}")
    check_shape(spec.shape, "input.shape", rank=4)
    check_int(spec.min_batch, "input.min_batch", hi=MAX_BATCH)
    check_int(spec.max_batch, "input.max_batch", hi=MAX_BATCH)
    if spec.min_batch > spec.max_batch:
        fail("input.min_batch", f"({spec.min_batch}) must not exceed input.max_batch ({spec.max_batch})")


def _check_outputs(m: Manifest) -> None:
    if not m.outputs:
        fail("outputs", "lists no outputs")
    seen = {m.input.name}
    for i, spec in enumerate(m.outputs):
        where = f"outputs[{i}]"
        check_text(spec.name, f"{where}.name")
        if spec.name in seen:
            fail(f"{where}.name", f"{show(spec.name)} repeats the name of the input or another output")
        seen.add(spec.name)
        if spec.dtype not in DTYPES:
            fail(f"{where}.dtype", f"must be one of {', '.join(DTYPES)}, got {show(spec.dtype)}")
        # The classifier (the first output) needs a class dimension after the batch.
        check_shape(spec.shape, f"{where}.shape", min_rank=2 if i == 0 else 1)


def check_preprocessing(d: dict) -> Preprocessing:
    """The manifest's preprocessing section, each field checked, as a ``Preprocessing``."""
    for key in ("resize", "crop", "mean", "std"):
        if key not in d:
            fail("preprocessing", f"lacks '{key}'")
    check_int(d["resize"], "preprocessing.resize")
    crop = d["crop"]
    if isinstance(crop, list) and len(crop) == 2:
        for i, v in enumerate(crop):
            check_int(v, f"preprocessing.crop[{i}]")
    else:
        check_int(crop, "preprocessing.crop")
    channels = check_int(d.get("channels", 3), "preprocessing.channels", hi=4096)
    for key in ("mean", "std"):
        values = d[key]
        if not isinstance(values, list) or len(values) not in (1, channels) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values):
            fail(f"preprocessing.{key}", f"must be a list of {channels} finite numbers (one per channel) or one, "
                                         f"got {show(values)}")
    if any(v <= 0 for v in d["std"]):
        fail("preprocessing.std", f"values must be positive (inputs are divided by them), got {show(d['std'])}")
    interpolation = d.get("interpolation", "bilinear")
    if not isinstance(interpolation, str):
        fail("preprocessing.interpolation", f"must be a string, got {show(interpolation)}")
    try:
        return Preprocessing.from_dict(d)
    except (UsageError, TypeError, ValueError) as exc:
        fail("preprocessing", f"is inconsistent: {str(exc).rstrip('.')}")


def _check_classes(m: Manifest) -> None:
    """Class names must name exactly the classifier output's classes (predict and labeled
    accuracy index them by the output's positions)."""
    classes = m.output.shape[-1]
    if m.model.num_classes is not None and m.model.num_classes != classes:
        fail("model.num_classes", f"({show(m.model.num_classes)}) differs from the classifier output "
                                  f"'{m.output.name}', which has {classes} classes (outputs[0].shape)")
    names = m.model.class_names
    if names is None:
        return
    if len(names) != classes:
        raise BundleError(
            f"manifest.json lists {len(names)} class names, but the classifier output '{m.output.name}' has "
            f"{classes} classes (model.class_names, outputs[0].shape).",
            hint=f"Re-export with --class-names FILE of exactly {classes} lines (one name per class, in index order).")
    for i, name in enumerate(names):
        check_text(name, f"model.class_names[{i}]")


def check_file_name(name, where: str) -> str:
    """A plain file name inside the bundle folder: no path, no parent, no hidden or device name."""
    check_text(name, where, 255)
    if name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\:"):
        fail(where, f"must be a plain file name inside the bundle (no '/', '\\', ':', or leading '.'), "
                    f"got {show(name)}")
    return name


def check_file(entry: FileEntry, where: str, sha_required: bool = True) -> None:
    check_file_name(entry.file, f"{where}.file")
    if entry.sha256 is not None or sha_required:
        if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
            fail(f"{where}.sha256", f"must be the file's sha256 (64 lowercase hex digits), got {show(entry.sha256)}")
    if entry.bytes is not None:
        check_int(entry.bytes, f"{where}.bytes", lo=0, hi=1 << 50)


def _check_files(m: Manifest) -> None:
    from runtime.precision import artifact_keys

    known = artifact_keys()
    if not m.artifacts:
        fail("artifacts", "lists no artifacts")
    for key, entry in m.artifacts.items():
        if key not in known:
            fail("artifacts", f"has an unknown key {show(key)}; edgeport knows {', '.join(known)}")
        check_file(entry, f"artifacts.{key}")
    if m.golden is not None:
        check_file(m.golden, "golden")
        check_int(m.golden.samples, "golden.samples", hi=MAX_SAMPLES)
        check_int(m.golden.skipped, "golden.skipped", lo=0, hi=1 << 40)
    if m.int8 is not None:
        check_int(m.int8.samples, "int8.samples", lo=0, hi=1 << 40)
        for name in ("calibration", "trt_calibration_cache"):
            entry = getattr(m.int8, name)
            if entry is not None:
                check_file(entry, f"int8.{name}", sha_required=False)


# -- golden.npz ----------------------------------------------------------------------------------
def golden_key(position: int) -> str:
    """golden.npz's key for the reference of the manifest's output at ``position``."""
    return "outputs" if position == 0 else f"outputs_{position}"


def golden_layout(m: Manifest, samples_key: str) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """{array name: (dtype, shape)} the manifest declares for golden.npz (``images`` or ``inputs``)."""
    n = m.golden.samples
    c, h, w = (int(d) for d in m.input.shape[1:])
    layout = {"images": (np.dtype(np.uint8), (n, h, w, c))} if samples_key == "images" else {
        "inputs": (np.dtype(np.float32), (n, c, h, w))}
    for i, spec in enumerate(m.outputs):
        layout[golden_key(i)] = (np.dtype(np.float32), (n, *(int(d) for d in spec.shape[1:])))
    return layout


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header bytes) of one .npy member, decompressing only its header."""
    fmt = np.lib.format
    with zf.open(info) as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
        return tuple(shape), dtype, f.tell()


def golden_headers(path: Path) -> dict[str, tuple[tuple, np.dtype, int, int]]:
    """{array name: (shape, dtype, header bytes, uncompressed member bytes)} of an .npz."""
    headers = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None or key in headers:
                raise ValueError(f"member {show(info.filename)} is not one numpy array")
            shape, dtype, header = _npy_header(zf, info)
            headers[key] = (shape, dtype, header, info.file_size)
    return headers


def check_golden(m: Manifest, path: Path, source=None) -> list[str]:
    """Compare golden.npz's array headers with the manifest before anything is decompressed;
    the array names to load. ``source``: the file already opened (and hashed) at ``path``."""
    try:
        headers = golden_headers(path if source is None else source)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a readable golden set ({exc}).", hint=_HINT) from exc
    samples_key = "images" if "images" in headers else "inputs"
    layout = golden_layout(m, samples_key)
    total = sum(dtype.itemsize * int(np.prod(shape)) for dtype, shape in layout.values())
    if total > MAX_GOLDEN_BYTES:
        fail("golden.samples", f"({m.golden.samples}) with the input and output shapes declares {total / 2**30:.1f} "
                               f"GiB of golden arrays, more than the {MAX_GOLDEN_BYTES >> 30} GiB edgeport reads")
    n = m.golden.samples
    names = headers.get("names")
    if names is None or names[1].kind != "U" or names[0] != (n,) or names[1].itemsize > 4 * MAX_TEXT:
        got = "no names array" if names is None else f"names of {names[1].str} {list(names[0])}"
        raise BundleError(f"{path}: golden.samples says {n} samples, so 'names' must hold {n} strings of at most "
                          f"{MAX_TEXT} characters; found {got}.", hint=_HINT)
    layout["names"] = (names[1], (n,))
    extra = sorted(set(headers) - set(layout))
    missing = sorted(set(layout) - set(headers))
    if extra or missing:
        raise BundleError(f"{path} does not hold the arrays manifest.json declares ({len(m.outputs)} output(s)): "
                          f"missing {missing or 'none'}, unexpected {extra or 'none'}.", hint=_HINT)
    for key, (dtype, shape) in layout.items():
        got_shape, got_dtype, header, size = headers[key]
        if got_dtype.hasobject:
            raise BundleError(f"{path}: array '{key}' holds Python objects (pickled data), which edgeport never "
                              "loads.", hint=_HINT)
        if got_dtype != dtype or got_shape != shape:
            raise BundleError(f"{path}: array '{key}' is {got_dtype.str} {list(got_shape)}, but manifest.json "
                              f"declares {dtype.str} {list(shape)} (golden.samples, input.shape, outputs[i].shape).",
                              hint=_HINT)
        if size != header + dtype.itemsize * int(np.prod(shape)):
            raise BundleError(f"{path}: array '{key}' declares {size} bytes in the archive, which does not fit its "
                              f"header ({list(shape)} of {dtype.str}).", hint=_HINT)
    return list(layout)


def check_golden_values(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Reference outputs and preprocessed inputs must be finite (a NaN would pass no comparison)."""
    for key, arr in arrays.items():
        if arr.dtype.kind == "f":
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            if bad:
                raise BundleError(f"{path}: array '{key}' holds {bad} non-finite values (NaN or Inf).", hint=_HINT)


# -- the ONNX graph ------------------------------------------------------------------------------
def check_graph_io(m: Manifest, inputs, outputs, artifact: str) -> None:
    """The manifest's input and outputs against those the loaded graph declares (``TensorSpec``s:
    name, dtype, shape with ints for fixed and None/str for dynamic dimensions)."""
    graph_in = {t.name: t for t in inputs}
    if set(graph_in) != {m.input.name}:
        fail("input.name", f"{show(m.input.name)} is not the input of {artifact}, which takes "
                           f"{', '.join(map(show, graph_in)) or 'nothing'}")
    _same_shape(m.input.shape, graph_in[m.input.name].shape, "input.shape", artifact)
    fixed = graph_in[m.input.name].shape[0]
    if isinstance(fixed, int) and m.input.max_batch > fixed:
        fail("input.max_batch", f"({m.input.max_batch}) exceeds the fixed batch {fixed} of {artifact}")
    graph_out = {t.name: t for t in outputs}
    names = [o.name for o in m.outputs]
    if set(graph_out) != set(names):
        fail("outputs", f"names {', '.join(map(show, names))}, but {artifact} outputs "
                        f"{', '.join(map(show, graph_out))}")
    for i, spec in enumerate(m.outputs):
        _same_shape(spec.shape, graph_out[spec.name].shape, f"outputs[{i}].shape", artifact)


def _same_shape(declared: list, graph: tuple, where: str, artifact: str) -> None:
    """Same rank; every dimension fixed in both agrees; a dimension the graph fixes is fixed here too."""
    shown = "[" + ", ".join("?" if d is None else str(d) for d in graph) + "]"
    mismatch = len(declared) != len(graph) or any(
        isinstance(g, int) and (d != g if isinstance(d, int) else i > 0)
        for i, (d, g) in enumerate(zip(declared, graph)))
    if mismatch:
        fail(where, f"{show(declared)} does not match {artifact}, which declares {shown}")
