"""The bundle's TensorRT calibration cache (calib.cache), for implicit INT8 (DLA on TensorRT <= 10.7).

One module writes it (``write_table``, called by ``edgeport export --int8``) and reads it
(``parse_table``, ``parse_header``, ``retarget``, ``find_calibration_cache``). It is
TensorRT's text format: a header line ``TRT-<version>-<Algorithm>`` then one
``tensor_name: <hex float32 scale>`` line per tensor of model.onnx. The builder replays it
through a calibrator that never asks for data, so the device needs no calibration images.
"""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from pathlib import Path

from runtime.errors import BundleError

DEFAULT_NAME = "calib.cache"
TABLE_VERSION = "100300"  # the header the export writes (retarget() rewrites it on the device)

# Header algorithm -> the tensorrt calibrator class that reads such a cache.
CALIBRATORS = {
    "EntropyCalibration2": "IInt8EntropyCalibrator2",
    "EntropyCalibration": "IInt8EntropyCalibrator",
    "MinMaxCalibration": "IInt8MinMaxCalibrator",
    "LegacyCalibration": "IInt8LegacyCalibrator",
}


@dataclasses.dataclass(frozen=True)
class CacheHeader:
    trt_code: int | None  # e.g. 8601 for 8.6.1, 100300 for 10.3.0
    algorithm: str
    calibrator: str  # tensorrt class name


def parse_header(data: bytes) -> CacheHeader:
    """Read the first line of a TensorRT calibration cache."""
    first = data.split(b"\n", 1)[0].decode("ascii", errors="replace").strip()
    m = re.fullmatch(r"TRT-(\d+)-(\w+)", first)
    if not m or m.group(2) not in CALIBRATORS:
        raise BundleError(
            f"The calibration cache does not start with a TensorRT header like 'TRT-8601-EntropyCalibration2' "
            f"(found {first[:60]!r}).",
            hint="Re-export the bundle with `edgeport export ... --int8` to regenerate it.")
    return CacheHeader(int(m.group(1)), m.group(2), CALIBRATORS[m.group(2)])


def version_code(version) -> int:
    """NV_TENSORRT_VERSION as calibration headers write it: 8.6.1 -> 8601, 10.3.0 -> 100300."""
    if version.major >= 10:
        return version.major * 10000 + version.minor * 100 + version.patch
    return version.major * 1000 + version.minor * 100 + version.patch


def retarget(data: bytes, version) -> tuple[bytes, bool]:
    """The cache with its header's version set to the running TensorRT's (True if changed).

    The scales do not depend on the TensorRT version; only the header names one, and the
    export cannot know which TensorRT the device has, so the header is made to match.
    """
    header = parse_header(data)
    code = version_code(version)
    if header.trt_code == code:
        return data, False
    rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return f"TRT-{code}-{header.algorithm}\n".encode() + rest, True


def find_calibration_cache(bundle) -> Path:
    """The checked path (sha256 verified) of the bundle's TensorRT calibration cache, which
    ``export --int8`` records in the manifest's ``int8.trt_calibration_cache``."""
    int8 = bundle.manifest.int8
    if int8 is not None and int8.trt_calibration_cache is not None:
        return bundle.checked_file(int8.trt_calibration_cache, "the TensorRT calibration cache")
    raise BundleError(
        f"Bundle '{bundle.root}' has no TensorRT calibration cache ({DEFAULT_NAME}, recorded in manifest.json under "
        "int8.trt_calibration_cache), which implicit INT8 on DLA needs.",
        hint="Re-export with `edgeport export ... --int8` (it writes the cache), or build int8 for the GPU "
        "(drop --dla-core), which uses the Q/DQ graph instead.")


def write_table(ranges: dict, tensor_names: list[str], version: str = TABLE_VERSION,
                calibrator: str = "EntropyCalibration2") -> str:
    """TensorRT's calibration table: a header, then ``name: <big-endian float32 scale in hex>``.

    scale = amax / 127. The header names IInt8EntropyCalibrator2 whatever method computed
    the ranges: it is the calibrator ``trtexec --calib`` and Polygraphy use by default, and
    TensorRT ignores a cache whose calibrator type differs from the one reading it.
    Tensors whose range is zero are left out (TensorRT keeps those layers in float).
    """
    lines = [f"TRT-{version}-{calibrator}"]
    for name in tensor_names:
        if name not in ranges:
            continue
        amax = max(abs(ranges[name][0]), abs(ranges[name][1]))
        if not (math.isfinite(amax) and amax > 0):
            continue
        lines.append(f"{name}: {struct.pack('>f', amax / 127.0).hex()}")
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}) from a TensorRT calibration table."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache (no TRT-<version>-<calibrator> header)")
    scales = {}
    for ln in lines[1:]:
        name, _, value = ln.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(value.strip()))[0]
    return lines[0], scales
