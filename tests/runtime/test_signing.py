"""Signed bundles (runtime/signing.py, `edgeport sign`): OpenSSF model-signing's format, checked both
by edgeport and by OpenSSF's own `model_signing` command line (an implementation edgeport does not
control), and every way a signed bundle can be wrong is refused before anything in it is read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SIGN_SEED as SEED, invoke, run_cli

pytest.importorskip("model_signing", reason="model-signing is not installed (edgeport[sign]; make setup adds it)")


def _openssf_verify(bundle: Path, public: Path) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).with_name("model_signing")
    return subprocess.run([str(tool), "verify", "key", str(bundle), "--signature", str(bundle / "bundle.sig"),
                           "--public_key", str(public), "--ignore_unsigned_files"],
                          capture_output=True, text=True, timeout=120)


def test_openssf_tool_verifies_an_edgeport_signature(signed, keys):
    proc = _openssf_verify(signed, keys["ours"][1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    other = _openssf_verify(signed, keys["theirs"][1])
    assert other.returncode != 0


def test_signature_names_every_bundle_file(signed):
    """The DSSE payload lists each file of the bundle: none is left out of the signature."""
    import base64

    envelope = json.loads((signed / "bundle.sig").read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    covered = {r["name"] for r in statement["predicate"]["resources"]}
    reports = {"report.json", "report.md", "report.html"}  # rewritten by verify/bench on the device
    on_disk = {p.name for p in signed.iterdir() if p.name != "bundle.sig"} - reports
    assert covered == on_disk and "manifest.json" in covered and "golden.npz" in covered


def test_one_byte_change_to_any_signed_file_is_refused(signed, keys):
    from runtime.errors import BundleError
    from runtime.signing import verify_bundle

    verify_bundle(signed, [keys["ours"][1]])  # the untouched bundle verifies
    for path in sorted(p for p in signed.iterdir() if p.name != "bundle.sig" and not p.name.startswith("report.")):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        original = path.read_bytes()
        path.write_bytes(bytes(data))
        with pytest.raises(BundleError, match=f"changed: {path.name}"):
            verify_bundle(signed, [keys["ours"][1]])
        path.write_bytes(original)


def test_unsigned_other_key_and_added_files_are_refused(signed, keys):
    from runtime.errors import BundleError
    from runtime.signing import verify_bundle

    with pytest.raises(BundleError, match="did not sign it"):
        verify_bundle(signed, [keys["theirs"][1]])
    verify_bundle(signed, [keys["theirs"][1], keys["ours"][1]])  # any trusted key will do
    (signed / "model.fp16.onnx").write_bytes(b"planted")
    with pytest.raises(BundleError, match="not signed: model.fp16.onnx"):
        verify_bundle(signed, [keys["ours"][1]])
    (signed / "model.fp16.onnx").unlink()
    (signed / "bundle.sig").unlink()
    with pytest.raises(BundleError, match="not signed"):
        verify_bundle(signed, [keys["ours"][1]])


def test_device_written_files_do_not_break_the_signature(signed, keys):
    """Reports and engines come after signing, on the device; they are outside the signature."""
    from runtime.signing import verify_bundle

    for name in ("report.json", "report.md", "report.html", "model.fp16.rtx1.7.engine",
                 "model.fp16.rtx1.7.engine.json"):
        (signed / name).write_text("{}")
    assert verify_bundle(signed, [keys["ours"][1]]) == keys["ours"][1]


def test_links_in_a_bundle_are_refused_for_signing_and_verifying(signed, keys, tmp_path):
    from runtime.errors import BundleError
    from runtime.signing import verify_bundle

    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (signed / "notes.txt").symlink_to(secret)
    with pytest.raises(BundleError, match="symbolic link"):
        verify_bundle(signed, [keys["ours"][1]])
    result = invoke("sign", signed, "--key", keys["ours"][0])
    assert result.exit_code == 3 and "symbolic link" in result.output


def test_sign_usage_errors(exported, keys, tmp_path):
    missing_key = run_cli("sign", exported(*SEED), "--key", tmp_path / "nope.pem")
    assert missing_key.returncode == 2 and "no private key file" in missing_key.stderr
    not_bundle = run_cli("sign", tmp_path, "--key", keys["ours"][0])
    assert not_bundle.returncode == 2 and "not a bundle" in not_bundle.stderr
    wrong_kind = run_cli("sign", shutil.copytree(exported(*SEED), tmp_path / "b"), "--key", keys["ours"][1])
    assert wrong_kind.returncode == 3 and "private key" in wrong_kind.stderr and "Traceback" not in wrong_kind.stderr
    assert not (tmp_path / "b" / "bundle.sig").exists()
