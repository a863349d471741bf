"""INT8 options of ``edgeport export``: which combinations mean something, and how few
calibration samples are too few.

Every option that only shapes the INT8 artifacts (``--calib-data``, ``--calib-samples``,
``--calib-method``, ``--no-int8-cpu``) is a usage error without ``--int8`` (exit 2, before the
model is loaded), as ``--max-drop`` already was: silently ignoring it would let a user believe
the bundle was calibrated as asked.
"""

from __future__ import annotations

from runtime import console
from runtime.bundle import FEW_CALIBRATION_SAMPLES
from runtime.errors import UsageError


def check_options(config) -> None:
    """INT8-only options without ``--int8``; raises UsageError (exit 2)."""
    if config.int8:
        return
    given = [flag for flag, value in (("--calib-data", config.calib_data), ("--calib-samples", config.calib_samples),
                                      ("--calib-method", config.calib_method)) if value is not None]
    if not getattr(config, "int8_cpu", True):
        given.append("--no-int8-cpu")
    if getattr(config, "int8_exclude", ()):
        given.append("--int8-exclude")
    if getattr(config, "int8_openvino", False):
        given.append("--int8-openvino")
    if given:
        raise UsageError(f"{', '.join(given)} only mean{'s' if len(given) == 1 else ''} something with --int8 "
                         "(they shape the INT8 calibration and artifacts); without it they would be ignored.",
                         hint="Add --int8, or drop " + ("it" if len(given) == 1 else "them") + ".")


def warn_few_samples(info, default_set: bool) -> None:
    """Warn when the INT8 ranges come from fewer than FEW_CALIBRATION_SAMPLES samples
    (``info``: the manifest's Int8Info; the count is also in the manifest and the reports)."""
    n = info.samples
    if n >= FEW_CALIBRATION_SAMPLES:
        return
    if default_set:
        console.warn(f"INT8 calibrated on the shipped default set: {n} generic photos, fewer than "
                     f"{FEW_CALIBRATION_SAMPLES} (NVIDIA recommends at least 500 for CNNs). Fine to try edgeport; "
                     "for deployment pass --calib-data DIR with a few hundred images typical of your inputs")
        return
    source = info.calibration_source.path if info.calibration_source else "--calib-data"
    console.warn(f"INT8 calibrated on only {n} sample(s) from {source}: with fewer than {FEW_CALIBRATION_SAMPLES} "
                 "the activation ranges can miss what the model will see (NVIDIA recommends at least 500 for "
                 "CNNs). Pass --calib-data DIR with a few hundred images typical of your inputs")
