"""--trusted-key / $EDGEPORT_TRUSTED_KEYS / Bundle.open(trusted_keys=...): with a trusted key, every
command that reads a bundle checks its signature before reading anything else in it.

"Before anything is read" is shown by corrupting model.onnx: read unchecked, it would be refused by
its sha256 ("does not match the sha256"); with a trusted key the refusal names the signature instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO, SIGN_SEED as SEED, invoke

pytest.importorskip("model_signing", reason="model-signing is not installed (edgeport[sign]; make setup adds it)")

IMAGE = REPO / "exporter" / "assets" / "golden" / "camera.jpg"
SHA_REFUSAL = "does not match the sha256"

# command -> the arguments after `edgeport COMMAND BUNDLE` (tmp: a folder for outputs)
COMMANDS = {
    "verify": lambda tmp: ["--precision", "fp32"],
    "bench": lambda tmp: ["--precision", "fp32", "--iterations", "2", "--warmup", "0"],
    "predict": lambda tmp: [IMAGE],
    "report": lambda tmp: [],
    "build": lambda tmp: ["--runtime", "tensorrt-rtx", "--precision", "fp32"],
    "triton": lambda tmp: ["--repository", tmp / "repo"],
    "lint": lambda tmp: [],
    "sensitivity": lambda tmp: ["--sensitivity-samples", "2", "--no-report"],
}


def _run(command: str, bundle: Path, tmp: Path, *extra):
    return invoke(command, bundle, *COMMANDS[command](tmp), *extra)


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_bundle_command_checks_the_signature_first(command, signed, keys, tmp_path):
    ours, theirs = str(keys["ours"][1]), str(keys["theirs"][1])
    unchecked = _run(command, signed, tmp_path / "a")
    checked = _run(command, signed, tmp_path / "b", "--trusted-key", ours)
    # The right key changes nothing: the command does what it does without one (build: the same
    # outcome, a built engine or the same missing-library error on a machine without TensorRT-RTX).
    assert checked.exit_code == unchecked.exit_code, checked.output
    assert "bundle.sig" not in checked.output
    if command != "build":
        assert checked.exit_code == 0, checked.output

    _corrupt(signed / "model.onnx")
    changed = _run(command, signed, tmp_path / "c", "--trusted-key", ours)
    assert changed.exit_code == 3 and "changed: model.onnx" in changed.output, changed.output
    assert SHA_REFUSAL not in changed.output
    other = _run(command, signed, tmp_path / "d", "--trusted-key", theirs)
    assert other.exit_code == 3 and "did not sign it" in other.output, other.output
    (signed / "bundle.sig").unlink()
    unsigned = _run(command, signed, tmp_path / "e", "--trusted-key", ours)
    assert unsigned.exit_code == 3 and "is not signed" in unsigned.output, unsigned.output


def test_a_corrupt_artifact_read_unchecked_gives_another_error(signed, tmp_path):
    """The control of the test above: without a key, the corrupt model.onnx is caught later, by its sha256."""
    _corrupt(signed / "model.onnx")
    result = _run("verify", signed, tmp_path)
    assert result.exit_code == 3 and SHA_REFUSAL in result.output and "bundle.sig" not in result.output


def test_the_environment_variable_pins_keys_and_the_option_overrides_it(signed, keys, tmp_path, monkeypatch):
    from runtime.signing import TRUSTED_KEYS_ENV

    monkeypatch.setenv(TRUSTED_KEYS_ENV, f"{tmp_path / 'absent.pem'}:{keys['theirs'][1]}")
    missing = _run("verify", signed, tmp_path)
    assert missing.exit_code == 2 and "absent.pem" in missing.output
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys["theirs"][1]))
    refused = _run("verify", signed, tmp_path)
    assert refused.exit_code == 3 and "did not sign it" in refused.output
    assert _run("verify", signed, tmp_path, "--trusted-key", keys["ours"][1]).exit_code == 0
    monkeypatch.setenv(TRUSTED_KEYS_ENV, f"{keys['theirs'][1]}:{keys['ours'][1]}")  # any of them will do
    assert _run("verify", signed, tmp_path).exit_code == 0


def test_bundle_open_takes_trusted_keys(signed, keys, monkeypatch):
    from runtime.bundle import Bundle
    from runtime.errors import BundleError
    from runtime.signing import TRUSTED_KEYS_ENV, trusting

    assert Bundle.open(signed, trusted_keys=[keys["ours"][1]]).name
    _corrupt(signed / "manifest.json")  # not even the manifest is parsed first
    with pytest.raises(BundleError, match="changed: manifest.json"):
        Bundle.open(signed, trusted_keys=[keys["ours"][1]])
    with pytest.raises(BundleError, match="changed: manifest.json"), trusting([keys["ours"][1]]):
        Bundle.open(signed)
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(keys["ours"][1]))
    with pytest.raises(BundleError, match="changed: manifest.json"):
        Bundle.open(signed)
    with pytest.raises(BundleError, match="manifest.json") as unchecked:
        Bundle.open(signed, trusted_keys=())  # explicitly none: the reader's own refusal
    assert "bundle.sig" not in str(unchecked.value)


def test_reexport_over_a_bundle_checks_its_signature(signed, keys):
    args = (*SEED, "--output", signed.parent, "--name", signed.name, "--engine", "no", "-q")
    _corrupt(signed / "model.onnx")
    refused = invoke("export", *args, "--trusted-key", keys["ours"][1])
    assert refused.exit_code == 3 and "changed: model.onnx" in refused.output, refused.output
    assert (signed / "bundle.sig").is_file()  # refused: the folder is untouched
    forced = invoke("export", *args, "--force", "--trusted-key", keys["ours"][1])
    assert forced.exit_code == 0, forced.output
    assert not (signed / "bundle.sig").exists()  # the new bundle is not signed until `edgeport sign`
    assert invoke("sign", signed, "--key", keys["ours"][0]).exit_code == 0
    again = invoke("export", *args, "--trusted-key", keys["ours"][1])
    assert again.exit_code == 0, again.output
