"""What machine a benchmark ran on, and which INT8 kernels its CPU can use safely.

Everything here reads files and standard-library facts only (no torch, no onnx), so it
works on a Jetson and inside tests. ``/proc/cpuinfo`` is Linux-only; elsewhere the CPU
flags are unknown and callers must treat VNNI as absent (the safe choice).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# Flags that give x86 CPUs an int8 dot product that sums u8*s8 products in 32 bits.
# Without one of them ONNX Runtime's u8s8 kernels use VPMADDUBSW, whose pairwise int16
# sum saturates: weights must then be quantized to 7 bits (reduce_range).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
_SHOWN_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "fphp")


def _read_cpuinfo(path: Path = CPUINFO) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def parse_cpuinfo(text: str) -> dict:
    """CPU model name and feature flags from the text of /proc/cpuinfo (x86 or ARM layout)."""
    model, flags = None, set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and model is None:
            model = value.strip() or None
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {"model": model, "flags": flags}


def cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
    """The CPU feature flags (empty when unknown)."""
    text = _read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    return parse_cpuinfo(text)["flags"]


def has_vnni(flags: set[str] | None = None) -> bool:
    """True when the CPU has an int8 dot-product instruction (AVX512-VNNI, AVX-VNNI or AMX).

    Unknown flags (non-Linux) count as no VNNI: reduce_range then costs a little accuracy
    but never overflows.
    """
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in VNNI_FLAGS)


def cpu_model(cpuinfo_text: str | None = None) -> str:
    """A human-readable CPU name ("AMD EPYC", "Intel(R) Xeon(R) ..."), or platform's guess."""
    text = _read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    return parse_cpuinfo(text)["model"] or platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1/5/15-minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def library_versions(extra: tuple[str, ...] = ()) -> dict:
    """Versions of the runtime libraries (only those installed)."""
    import importlib.metadata as md

    from runtime.engines.registry import ENGINE_RUNTIMES

    out = {"python": platform.python_version()}
    engines = tuple(d for rt in ENGINE_RUNTIMES.values() for d in rt.distributions)
    for dist in ("edgeport", "numpy", "onnxruntime", "onnxruntime-gpu", *engines, "openvino",
                 *extra):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def describe_machine(threads: int | None = None, extra_versions: tuple[str, ...] = ()) -> dict:
    """The machine section of a benchmark: CPU, cores, threads, flags, OS and versions."""
    flags = cpu_flags()
    info = {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads": threads,
        "vnni": has_vnni(flags),
        "cpu_flags": sorted(f for f in flags if f in _SHOWN_FLAGS),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "versions": library_versions(extra_versions),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime_providers"] = list(ort.get_available_providers())
    except ImportError:
        pass
    return info


def machine_fingerprint(machine: dict) -> tuple:
    """What must match for two benchmark runs to be comparable (CPU, cores, GPU)."""
    return (machine.get("cpu"), machine.get("arch"), machine.get("usable_cores"), machine.get("gpu"))


def describe_machine_line(machine: dict) -> str:
    """One line: CPU, cores, threads, load, ONNX Runtime version."""
    versions = machine.get("versions") or {}
    ort = versions.get("onnxruntime") or versions.get("onnxruntime-gpu")
    parts = [f"{machine.get('cpu')} ({machine.get('arch')}), {machine.get('usable_cores')} usable cores",
             f"threads {machine.get('threads') or 'default'}", f"VNNI {'yes' if machine.get('vnni') else 'no'}"]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    if ort:
        parts.append(f"onnxruntime {ort}")
    from runtime.engines.registry import ENGINE_RUNTIMES

    for dist in (d for rt in ENGINE_RUNTIMES.values() for d in rt.distributions):
        if versions.get(dist):
            parts.append(f"{dist} {versions[dist]}")
    load = machine.get("load_avg_before"), machine.get("load_avg_after")
    if all(load):
        parts.append(f"load avg {load[0][0]} -> {load[1][0]}")
    return "; ".join(parts)


def int8_cpu_warning(manifest, flags: set[str] | None = None) -> str | None:
    """A warning when an int8-cpu graph with 8-bit weights runs on a CPU without VNNI/AMX.

    Such a graph was quantized on a VNNI machine (no reduce_range); on CPUs without an int8
    dot product ONNX Runtime's u8s8 kernels can saturate and lose accuracy.
    """
    info = manifest.int8_cpu
    if info is not None and info.reduce_range is False and not has_vnni(flags):
        where = info.quantized_on.get("cpu", "a CPU with VNNI")
        return (f"model.int8-cpu.onnx was quantized on {where} with 8-bit weights (no reduce_range), but this CPU has "
                "no VNNI/AMX: its u8s8 kernels can saturate. Re-export on this machine (edgeport export --int8) "
                "to get 7-bit weights, and check the accuracy with `edgeport verify`.")
    return None
