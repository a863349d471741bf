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
EDGEPORT = [sys.executable, "-m", "edgeport.cli"]


@pytest.fixture(scope="session", autouse=True)
def offline_env(tmp_path_factory):
    """No downloads: an empty TORCH_HOME and a closed proxy for every test (and subprocess)."""
    home = tmp_path_factory.mktemp("torch_home")
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY")}
    os.environ["TORCH_HOME"] = str(home)
    for k in ("https_proxy", "http_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        os.environ[k] = "http://127.0.0.1:9"
    # INT8 calibration ranges are cached between exports (exporter/int8/quantize.py): never in ~/.cache.
    saved["EDGEPORT_CACHE"] = os.environ.get("EDGEPORT_CACHE")
    os.environ["EDGEPORT_CACHE"] = str(tmp_path_factory.mktemp("edgeport_cache"))
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
    from edgeport.cli import cli
    from runtime import console

    console.set_quiet(False)
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    console.set_quiet(False)
    return result


def edit_manifest(root, change) -> None:
    """Apply ``change(dict)`` to ROOT/manifest.json and re-seal its digest, as a new export would
    (tests that simulate a re-export or an older bundle; a hand edit without re-sealing is
    refused by Bundle.open, which tests/runtime/test_manifest.py checks)."""
    import json

    from runtime.manifest import Manifest

    path = Path(root) / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    if data.get("digest") is not None:
        data = Manifest.parse(data).sealed().to_dict()
    path.write_text(json.dumps(data, indent=2))


_CACHE: dict = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(*export_args) -> bundle Path, built once per session per argument list.

    Tests must not modify the returned bundle; copy it first (``copy_bundle``)."""

    def build(*args: str) -> Path:
        key = tuple(args)
        if key not in _CACHE:
            out = tmp_path_factory.mktemp("bundles")
            # No TensorRT builds in shared fixtures (export's --engine auto would build on GPU machines).
            extra = () if "--engine" in args else ("--engine", "no")
            result = invoke("export", *args, *extra, "--output", str(out), "-q")
            assert result.exit_code == 0, result.output
            bundles = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
            assert len(bundles) == 1, bundles
            _CACHE[key] = bundles[0]
        return _CACHE[key]

    return build


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """A small SeedResNet trained on crops of the golden photos (tests/trained_model.py): the
    model file, checkpoint, held-out crops and calibration crops, built once per session."""
    from trained_model import build_trained_model

    return build_trained_model(tmp_path_factory.mktemp("trained_model"))


@pytest.fixture(scope="session")
def poor_calib(trained_model, tmp_path_factory) -> Path:
    """The trained model's own calibration crops, preprocessed and clipped to [-1, 1]: ranges far
    too small (a calibration that makes INT8 lose accuracy), as a .npy for --calib-data."""
    import numpy as np

    from exporter.int8.calibration import load_calibration
    from runtime.preprocess import Preprocessing

    tm = trained_model
    pre = Preprocessing(resize=round(tm.input_size / 0.875), crop=tm.input_size)
    x = load_calibration(tm.calib, pre, (3, tm.input_size, tm.input_size)).inputs()
    path = tmp_path_factory.mktemp("poor_calib") / "clipped.npy"
    np.save(path, np.clip(x, -1.0, 1.0).astype(np.float32))
    return path


@pytest.fixture
def copy_bundle(tmp_path):
    def copy(bundle: Path) -> Path:
        dst = tmp_path / bundle.name
        shutil.copytree(bundle, dst)
        return dst

    return copy


# -- signing keys and a signed bundle (tests/runtime/test_signing.py, test_trusted_keys.py) --------
SIGN_SEED = ("--model", "seed_resnet", "--weights", "none", "--int8", "--max-batch", "2")


def keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """(private PEM, public PEM) of a fresh P-256 key: what `openssl ecparam -name prime256v1` makes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    return {"ours": keypair(folder, "ours"), "theirs": keypair(folder, "theirs")}


@pytest.fixture
def signed(exported, copy_bundle, keys) -> Path:
    """A copy of a small bundle, signed with keys["ours"] by `edgeport sign`."""
    bundle = copy_bundle(exported(*SIGN_SEED))
    result = invoke("sign", bundle, "--key", keys["ours"][0])
    assert result.exit_code == 0, result.output
    assert (bundle / "bundle.sig").is_file()
    return bundle


# -- headless Chromium (report.html tests) ------------------------------------------------------
def _find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    """Path of a headless Chromium, installed outside the test run (`make setup` where it can
    use apt-get as root, and `.ci/run`); the tests that need it skip with the reason when absent.
    No test installs anything or reaches the network."""
    path = _find_chromium()
    if not path:
        pytest.skip("headless Chromium is not installed (make setup installs Debian's `chromium` where it runs "
                    "as root with apt-get; elsewhere install it by hand)")
    return path


# -- a tiny trained classifier with class names (labeled accuracy, predict, report) ------------
COLOR_CLASSES = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220),
                 "yellow": (230, 210, 40), "magenta": (200, 50, 200), "cyan": (40, 200, 210)}
COLOR_MODEL = """
import torch.nn as nn


def build(num_classes=6):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))
"""


def color_image(rng, name: str, size: int = 24):
    """A noisy photo-like image of one colour class: noise, brightness, and a blob."""
    import numpy as np

    img = np.asarray(COLOR_CLASSES[name], dtype=np.float32) + rng.normal(0, 25, (size, size, 3))
    y, x = rng.integers(0, size - size // 2, 2)
    img[y:y + size // 2, x:x + size // 2] *= rng.uniform(0.6, 1.2)
    return np.clip(img * rng.uniform(0.75, 1.15), 0, 255).astype(np.uint8)


def write_color_images(root: Path, per_class: int, seed: int, flat: bool = False) -> list[tuple[str, str]]:
    """Write ``per_class`` PNGs per colour under ``root`` (ImageFolder, or flat); returns (file, class)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = []
    for name in COLOR_CLASSES:
        folder = root if flat else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fname = f"{name}_{i:03d}.png"
            Image.fromarray(color_image(rng, name)).save(folder / fname)
            written.append((fname if flat else f"{name}/{fname}", name))
    return written


@pytest.fixture(scope="session")
def color_bundle(tmp_path_factory, exported):
    """A 6-class colour classifier trained here (~1 s), exported with --fp16 and --class-names.

    Unlike random-init nets it has real task accuracy, so labeled accuracy and predict can be
    checked against the truth."""
    import numpy as np
    import torch

    from exporter.models.registry import load_user_factory
    from runtime.preprocess import Preprocessing, normalize, resize_crop

    work = tmp_path_factory.mktemp("color_model")
    model_file = work / "color_net.py"
    model_file.write_text(COLOR_MODEL)
    names_file = work / "classes.txt"
    names_file.write_text("\n".join(COLOR_CLASSES) + "\n")
    factory, _ = load_user_factory(f"{model_file}:build")
    # Train on exactly what the bundle will be fed: --input-size 16 -> resize 18, crop 16.
    pre = Preprocessing(resize=18, crop=16)
    rng = np.random.default_rng(0)
    from PIL import Image

    xs, ys = [], []
    for label, name in enumerate(COLOR_CLASSES):
        for _ in range(40):
            xs.append(resize_crop(Image.fromarray(color_image(rng, name)), pre))
            ys.append(label)
    x = torch.from_numpy(normalize(np.stack(xs), pre))
    y = torch.tensor(ys)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only fight over the 2 cores
    try:
        torch.manual_seed(0)
        model = factory()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        for _ in range(120):
            idx = torch.randint(0, len(x), (64,), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    ckpt = work / "color_net.pth"
    torch.save(model.state_dict(), ckpt)
    return exported("--model", f"{model_file}:build", "--weights", str(ckpt), "--num-classes", "6",
                    "--input-size", "16", "--fp16", "--class-names", str(names_file))


# -- hardware markers: `gpu` needs an NVIDIA GPU, `trt` needs TensorRT --------------------------
def _gpu_missing_reason() -> str | None:
    """None when a CUDA GPU is visible (nvidia-smi, a Jetson, or torch.cuda), else why not."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            if subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0:
                return None
        except (OSError, subprocess.SubprocessError):
            pass
    if Path("/etc/nv_tegra_release").exists():  # Jetson: no nvidia-smi before JetPack 6
        return None
    try:
        import torch

        if torch.cuda.is_available():
            return None
    except ImportError:
        pass
    return "needs an NVIDIA GPU: nvidia-smi, /etc/nv_tegra_release and torch.cuda found none here"


def _trt_missing_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken native install
        return f"needs TensorRT: `import tensorrt` failed ({type(exc).__name__}: {exc})"
    return None


def _rtx_missing_reason() -> str | None:
    import platform

    try:
        from runtime.engines.rtx import import_tensorrt_rtx

        import_tensorrt_rtx()
    except Exception as exc:  # noqa: BLE001 - DependencyError, or a broken native install
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return (f"needs NVIDIA TensorRT-RTX, which has no wheel for {platform.machine()} "
                    "(x86_64 Linux and Windows only)")
        return f"needs NVIDIA TensorRT-RTX (`pip install 'edgeport[rtx]'`; `make setup` installs it): {exc}"
    return None


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests without a visible GPU, `trt` tests without TensorRT and `rtx` tests without
    TensorRT-RTX, saying why."""
    reasons = {}
    for item in items:
        for marker, probe in (("gpu", _gpu_missing_reason), ("trt", _trt_missing_reason),
                              ("rtx", _rtx_missing_reason)):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                reasons[marker] = probe()
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
