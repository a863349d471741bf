"""A real Triton Inference Server for tests and benchmarks: pytriton's tritonserver binary.

``nvidia-pytriton`` (PyPI) ships Triton 2.51's ``tritonserver`` with the python backend only.
It runs from its own virtual environment, ``.venv-triton`` (tests/triton-requirements.txt):
the python backend stub runs models with the first ``python`` on PATH, and that environment
needs numpy < 2, while the main .venv has numpy 2. ``make setup`` creates it;
Tests never create it (no network inside a test): they skip with the reason when it is missing.

``TritonServer`` copies the backend and the stub for the venv's Python into a private
backends folder, starts the server on 127.0.0.1 with free ports, waits for
/v2/health/ready, and stops it by its PID (then its process group, for stub leftovers).
Nothing here imports edgeport: the server must serve the repository on its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "tests" / "triton-requirements.txt"
STAMP = ".edgeport-installed"


def venv_dir() -> Path:
    return Path(os.environ.get("EDGEPORT_TRITON_VENV", REPO / ".venv-triton"))


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path | None = None) -> Path:
    """The Triton venv `make setup` made (its stamp holds the requirements it was installed from).

    Raises RuntimeError saying so when it is missing or stale: tests never install anything.
    """
    venv = venv or venv_dir()
    stamp = venv / STAMP
    if stamp.is_file() and stamp.read_text() == REQUIREMENTS.read_text() and venv_python(venv).exists():
        return venv
    raise RuntimeError(f"{venv} is missing or was installed from other requirements; `make setup` creates it")


def _site_packages(venv: Path) -> Path:
    out = subprocess.run([str(venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _python_facts(venv: Path) -> tuple[str, str]:
    """(major.minor, the folder holding libpython) of the venv's interpreter."""
    code = "import sys, sysconfig; print(f'{sys.version_info[0]}.{sys.version_info[1]}'); " \
           "print(sysconfig.get_config_var('LIBDIR'))"
    out = subprocess.run([str(venv_python(venv)), "-c", code], capture_output=True, text=True, check=True)
    version, libdir = out.stdout.split()
    return version, libdir


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (the server binds them moments later)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TritonServer:
    """tritonserver serving ``repository``; use as a context manager or call start()/stop()."""

    def __init__(self, repository: Path, workdir: Path, venv: Path | None = None, extra_args: tuple = ()):
        self.repository = Path(repository)
        self.workdir = Path(workdir)
        self.venv = venv or venv_dir()
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "tritonserver.log"
        self.http_port = self.grpc_port = self.metrics_port = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _layout(self) -> tuple[Path, Path, dict]:
        """(tritonserver binary, backends folder, environment) for this venv."""
        site = _site_packages(self.venv)
        server_dir = site / "pytriton" / "tritonserver"
        version, libdir = _python_facts(self.venv)
        stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise RuntimeError(f"pytriton has no python backend stub for Python {version} ({stub})")
        backends = self.workdir / "backends"
        python_backend = backends / "python"
        if not python_backend.is_dir():
            python_backend.mkdir(parents=True)
            for f in (server_dir / "backends" / "python").iterdir():
                if f.is_file():
                    shutil.copy2(f, python_backend / f.name)
            shutil.copy2(stub, python_backend / stub.name)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["LD_LIBRARY_PATH"] = os.pathsep.join([str(site / "nvidia_pytriton.libs"), libdir,
                                                  env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
        # No proxy for 127.0.0.1 (the tests' closed proxy must not catch the stub's local traffic).
        env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
        return server_dir / "bin" / "tritonserver", backends, env

    def start(self, timeout: float = 120, attempts: int = 3) -> "TritonServer":
        binary, backends, env = self._layout()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
            cmd = [str(binary), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                   "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                   "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
                   "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                   "--allow-gpu-metrics=false", *self.extra_args]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                             start_new_session=True)
            if self._wait_ready(timeout):
                return self
            text = self.log_tail()
            self.stop()
            if "Address already in use" not in text or attempt == attempts - 1:
                raise RuntimeError(f"tritonserver did not become ready:\n{text}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                with opener.open(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return True
            time.sleep(0.25)
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the server's PID, then SIGKILL to its process group if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # python backend stubs it may have left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
