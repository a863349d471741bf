"""What this machine has: TensorRT, the CUDA GPU, Jetson or not, DLA cores.

Probes try, in order: cuda-python (``cuda.bindings.runtime`` or the older ``cuda.cudart``),
PyTorch's CUDA API when torch is installed, then ``nvidia-smi``. Every import happens inside
a function; a machine without any of them simply has no GPU as far as edgeport can tell.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from pathlib import Path

from runtime.errors import DependencyError, EdgeportError
from runtime.engines.policy import is_jetson

TENSORRT_INSTALL = (
    "Engines are built and run on the machine that will serve them. On a Jetson, TensorRT comes "
    "with JetPack (`sudo apt install python3-libnvinfer`; create the virtual environment with "
    "--system-site-packages so it sees the system package); on a server or desktop GPU install "
    "NVIDIA's wheel (`pip install tensorrt`, from NVIDIA's package index) in the environment that runs "
    "edgeport, plus cuda-python matching the CUDA driver (`pip install 'cuda-python==12.*'` for CUDA 12, "
    "13.* for CUDA 13) or PyTorch with CUDA. Then copy the bundle folder there and run the command again."
)


def import_tensorrt(purpose: str = "Building TensorRT engines", rerun: str | None = None):
    """``import tensorrt`` or a DependencyError saying what to install and where to run.

    ``rerun`` is the exact command to repeat on the target (named in the message).
    """
    install = TENSORRT_INSTALL if rerun is None else TENSORRT_INSTALL.replace(
        "run the command again.", f"run: {rerun}")

    try:
        import tensorrt  # noqa: PLC0415 - optional, heavy
    except ImportError as exc:
        raise DependencyError(
            f"{purpose} needs NVIDIA TensorRT's Python package, and `import tensorrt` failed on this machine ({exc}).",
            hint=install,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - broken installs raise OSError/RuntimeError from native loads
        raise DependencyError(
            f"{purpose} needs NVIDIA TensorRT, and `import tensorrt` failed while loading its libraries "
            f"({type(exc).__name__}: {exc}).",
            hint="Check that TensorRT's libraries match the installed CUDA (LD_LIBRARY_PATH, JetPack version). "
            + install,
        ) from exc
    return tensorrt


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) when tensorrt imports here, else (False, why)."""
    try:
        trt = import_tensorrt()
    except DependencyError as exc:
        return False, str(exc)
    return True, str(getattr(trt, "__version__", "?"))


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.7"
    total_memory: int | None = None  # bytes (system RAM on a Jetson: it is shared)
    integrated: bool | None = None
    source: str = "?"  # which probe found it


@dataclasses.dataclass(frozen=True)
class TargetEnv:
    """The facts an engine's sidecar is compared with before it is loaded."""

    tensorrt: str | None
    gpu: GpuInfo | None
    cuda_runtime: str | None = None
    cuda_driver: str | None = None
    jetson: bool = False
    dla_cores: int | None = None  # None: not probed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cuda_version(code: int | None) -> str | None:
    """12040 -> '12.4' (CUDA's integer version encoding)."""
    if not code:
        return None
    return f"{code // 1000}.{(code % 1000) // 10}"


def import_cudart():
    """cuda-python's runtime module (new and old layouts) or None."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python 11.x / 12.x before cuda.bindings

        return cudart
    except ImportError:
        return None


def _probe_cudart(device: int = 0):
    cudart = import_cudart()
    if cudart is None:
        return None, None, None
    try:
        err, count = cudart.cudaGetDeviceCount()
        runtime_v = cudart.cudaRuntimeGetVersion()
        driver_v = cudart.cudaDriverGetVersion()
        rt = _cuda_version(runtime_v[1]) if int(runtime_v[0]) == 0 else None
        drv = _cuda_version(driver_v[1]) if int(driver_v[0]) == 0 else None
        if int(err) != 0 or not count:
            return None, rt, drv
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) != 0:
            return None, rt, drv
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        info = GpuInfo(name=name.split("\x00")[0].strip(), compute_capability=f"{prop.major}.{prop.minor}",
                       total_memory=int(prop.totalGlobalMem), integrated=bool(prop.integrated), source="cuda-python")
        return info, rt, drv
    except Exception:  # noqa: BLE001 - a broken CUDA install means "no GPU" here
        return None, None, None


def optional_import(name: str):
    """The module, or None when it is not installed or fails to import (never raises)."""
    import importlib

    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - ImportError, or a broken native install
        return None


def _probe_torch(device: int = 0):
    torch = optional_import("torch")  # only reached without cuda-python; never at module level
    if torch is None:
        return None, None
    try:
        if not torch.cuda.is_available():
            return None, None
        p = torch.cuda.get_device_properties(device)
        info = GpuInfo(name=p.name, compute_capability=f"{p.major}.{p.minor}", total_memory=int(p.total_memory),
                       integrated=bool(getattr(p, "is_integrated", False)) or None, source="torch")
        return info, torch.version.cuda
    except Exception:  # noqa: BLE001
        return None, None


def parse_nvidia_smi(text: str) -> GpuInfo | None:
    """First line of ``nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader,nounits``."""
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[1].replace(".", "").isdigit():
            try:
                mem = int(float(parts[2])) * (1 << 20)
            except ValueError:
                mem = None
            return GpuInfo(name=parts[0], compute_capability=parts[1], total_memory=mem, integrated=False,
                           source="nvidia-smi")
    return None


def _probe_nvidia_smi():
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else None


def jetson_facts(root: str | Path = "/") -> tuple[str | None, bool]:
    """(device-tree model text, whether /etc/nv_tegra_release exists) under ``root``."""
    root = Path(root)
    model = None
    for rel in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        try:
            model = (root / rel).read_bytes().decode(errors="replace").strip("\x00\n ")
            break
        except OSError:
            continue
    return model, (root / "etc/nv_tegra_release").exists()


@functools.lru_cache(maxsize=1)
def probe_gpu() -> tuple[GpuInfo | None, str | None, str | None]:
    """(GPU 0, CUDA runtime version, CUDA driver version); (None, ...) without a visible GPU."""
    info, rt, drv = _probe_cudart()
    if info is None:
        tinfo, trt_cuda = _probe_torch()
        if tinfo is not None:
            info, rt = tinfo, rt or trt_cuda
    if info is None:
        info = _probe_nvidia_smi()
    return info, rt, drv


def count_dla_cores(trt) -> int | None:
    """DLA cores TensorRT sees (creating a Builder initialises CUDA: only probed when DLA matters)."""
    try:
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        return int(getattr(builder, "num_DLA_cores", 0) or 0)
    except Exception:  # noqa: BLE001
        return None


def probe_env(trt=None, *, dla: bool = False) -> TargetEnv:
    """This machine as sidecars see it. ``trt`` is the imported tensorrt module (or None)."""
    gpu, rt, drv = probe_gpu()
    model, tegra = jetson_facts()
    jetson = is_jetson(model_text=model, tegra_release=tegra, integrated=gpu.integrated if gpu else None,
                       compute_capability=gpu.compute_capability if gpu else None) if (gpu or tegra) else False
    return TargetEnv(
        tensorrt=str(trt.__version__) if trt is not None else None,
        gpu=gpu, cuda_runtime=rt, cuda_driver=drv, jetson=jetson,
        dla_cores=count_dla_cores(trt) if (dla and trt is not None) else None,
    )


def require_gpu(env: TargetEnv, purpose: str = "Building TensorRT engines") -> GpuInfo:
    if env.gpu is None:
        raise EdgeportError(
            f"{purpose} needs an NVIDIA GPU, and none is visible here (checked cuda-python, PyTorch and nvidia-smi; "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}).",
            hint="Run on the Jetson or GPU server that will serve the model; install cuda-python matching the "
            "CUDA driver (`pip install 'cuda-python==12.*'`) so edgeport can query the GPU.",
        )
    return env.gpu
