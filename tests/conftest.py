"""Shared fixtures. Tests write only under tmp_path / tmp_path_factory, never the tree.

Exports are the slow part, so bundles used by several tests are built once per session
(``exported`` caches by its arguments). No test touches the network: TORCH_HOME points to a
per-session empty folder and proxies point to a closed local port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
EDGEPORT = [sys.executable, "-m", "exporter.cli"]


@pytest.fixture(scope="session", autouse=True)
def offline_env(tmp_path_factory):
    """No downloads: an empty TORCH_HOME and a closed proxy for every test (and subprocess)."""
    home = tmp_path_factory.mktemp("torch_home")
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY")}
    os.environ["TORCH_HOME"] = str(home)
    for k in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        os.environ[k] = "http://127.0.0.1:9"
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_cli(*args: str, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run `edgeport ARGS...` in a subprocess (real exit codes, real stderr)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run([*EDGEPORT, *map(str, args)], cwd=cwd or REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def invoke(*args: str):
    """Run the CLI in-process (fast) with click's CliRunner; returns the click Result."""
    from exporter.cli import cli
    from runtime import console

    console.set_quiet(False)
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    console.set_quiet(False)
    return result


_CACHE: dict = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(*export_args) -> bundle Path, built once per session per argument list.

    Tests must not modify the returned bundle; copy it first (``copy_bundle``)."""

    def build(*args: str) -> Path:
        key = tuple(args)
        if key not in _CACHE:
            out = tmp_path_factory.mktemp("bundles")
            result = invoke("export", *args, "--output", str(out), "-q")
            assert result.exit_code == 0, result.output
            bundles = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
            assert len(bundles) == 1, bundles
            _CACHE[key] = bundles[0]
        return _CACHE[key]

    return build


@pytest.fixture
def copy_bundle(tmp_path):
    def copy(bundle: Path) -> Path:
        dst = tmp_path / bundle.name
        shutil.copytree(bundle, dst)
        return dst

    return copy
