"""Signed bundles: ``bundle.sig`` in the OpenSSF model-signing format (sigstore/model-transparency).

A bundle is made on one machine and read on another, so whoever can write it can attack the
device that reads it (docs/security.md). The manifest's digest catches accidents, not authors;
a signature made with a key the device trusts is what tells them apart.

``edgeport sign BUNDLE --key PRIVATE.pem`` signs every file of the bundle except what the device
writes later: the reports (report.json/.md/.html) and the engines with their sidecars. Every
command that reads a bundle takes ``--trusted-key PUBLIC.pem`` (repeatable, or the environment
variable ``EDGEPORT_TRUSTED_KEYS``, paths separated by ``os.pathsep``); with one, a bundle that is
unsigned, signed by another key, changed, or holds a file the signature does not cover (other
than the device's own) is refused before anything in it is read.

The signature is OpenSSF's own format, so its tool verifies an edgeport bundle too::

    model_signing verify key BUNDLE --signature BUNDLE/bundle.sig --public_key PUBLIC.pem \\
        --ignore_unsigned_files

(``--ignore_unsigned_files``: files the device wrote after signing; edgeport itself is stricter
and accepts only the device-written names below.) Key-based signing works offline; Sigstore's
keyless signing needs the network and is not offered here.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from pathlib import Path

from runtime.errors import BundleError, DependencyError, UsageError

SIGNATURE = "bundle.sig"
TRUSTED_KEYS_ENV = "EDGEPORT_TRUSTED_KEYS"
# Written on the device after signing, so never covered: reports, engines and engine sidecars.
DEVICE_FILES = ("report.json", "report.md", "report.html")
DEVICE_SUFFIXES = (".engine", ".engine.json")
INSTALL = "pip install 'edgeport[sign]'  (model-signing 1.1.1 and pyopenssl)"


def device_written(name: str) -> bool:
    """True for the files a device adds to a signed bundle (never signed, never trusted as code)."""
    return name in DEVICE_FILES or name.endswith(DEVICE_SUFFIXES)


def trusted_keys(given=()) -> list[Path]:
    """The public keys to check bundles against: ``--trusted-key`` values, else the environment's."""
    keys = [Path(k) for k in given if str(k)]
    if not keys:
        keys = [Path(k) for k in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if k.strip()]
    for key in keys:
        if not key.is_file():
            where = "--trusted-key" if given else TRUSTED_KEYS_ENV
            raise UsageError(f"{where}: no public key file at {key}.",
                             hint="Pass the PEM public key that pairs with the key the bundles are signed with.")
    return keys


class SignatureError(BundleError):
    """A trusted key was given and the bundle's signature does not verify with it."""


# The keys of the innermost ``trusting()`` block (None: no block, so Bundle.open reads the
# environment). A context variable rather than a parameter of every API function: the CLI
# declares --trusted-key once and every Bundle.open under the command sees it.
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("edgeport_trusted_keys", default=None)


@contextlib.contextmanager
def trusting(keys=()):
    """Within the block, ``Bundle.open`` checks signatures with ``keys`` (public PEM paths; none
    given: ``$EDGEPORT_TRUSTED_KEYS``; neither: no check). Yields the resolved keys."""
    resolved = tuple(trusted_keys(keys))
    token = _ACTIVE.set(resolved)
    try:
        yield resolved
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def own_bundle():
    """Within the block, no signature is checked: for a bundle this process has just written
    (an export's staging folder and its engines), which nobody has signed yet."""
    token = _ACTIVE.set(())
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_keys(given=None) -> list[Path]:
    """The keys ``Bundle.open(path, trusted_keys=given)`` checks with: ``given`` when not None
    (empty: none), else the enclosing ``trusting()`` block's, else the environment's."""
    if given is not None:
        return trusted_keys(given) if list(given) else []
    current = _ACTIVE.get()
    return list(current) if current is not None else trusted_keys(())


def check_signature(root: str | Path, given=None) -> Path | None:
    """Verify ``root`` when keys are active (see ``active_keys``); returns the key that verified it."""
    keys = active_keys(given)
    return verify_bundle(root, keys) if keys else None


def _model_signing():
    try:
        import model_signing  # noqa: F401 - the package's modules below
        import model_signing.hashing
        import model_signing.signing
        import model_signing.verifying
        import OpenSSL  # noqa: F401 - model-signing 1.1.1 imports it without declaring it
    except ImportError as exc:
        raise DependencyError(f"Signed bundles need OpenSSF's model-signing, which is not importable here ({exc}).",
                              hint=f"Install it with: {INSTALL}") from exc
    return model_signing


def _signed_files(root: Path) -> list[str]:
    """The names a signature covers; refuses anything that is not a regular file (links, folders)."""
    names = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        mode = os.lstat(entry.path).st_mode
        if not stat.S_ISREG(mode):
            kind = "symbolic link" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode) else "special file"
            raise SignatureError(f"{root}/{entry.name} is a {kind}; a bundle holds regular files only, so it cannot be "
                              "signed or trusted.", hint="Remove it and export the bundle again.")
        if entry.name != SIGNATURE and not device_written(entry.name):
            names.append(entry.name)
    return names


def _ignored(root: Path) -> list[str]:
    """Names the hashing skips: the signature itself and every device-written file present."""
    return [SIGNATURE, *DEVICE_FILES, *(n for n in os.listdir(root) if n.endswith(DEVICE_SUFFIXES))]


def sign_bundle(root: str | Path, private_key: str | Path) -> Path:
    """Write ``root/bundle.sig`` with the elliptic-curve PEM ``private_key``; returns its path."""
    root, key = Path(root), Path(private_key)
    if not (root / "manifest.json").is_file():
        raise UsageError(f"{root} is not a bundle (no manifest.json).", hint="Pass a folder `edgeport export` wrote.")
    if not key.is_file():
        raise UsageError(f"--key: no private key file at {key}.", hint="Pass an elliptic-curve private key in PEM.")
    ms = _model_signing()
    _signed_files(root)  # refuse links and folders before hashing
    hashing = ms.hashing.Config().set_ignored_paths(paths=_ignored(root), ignore_git_paths=False)
    tmp = root / f".{SIGNATURE}.tmp"
    try:
        ms.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(hashing).sign(root, tmp)
        os.replace(tmp, root / SIGNATURE)
    except (ValueError, TypeError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"Signing {root} with {key} failed: {exc}.",
                          hint="Pass an unencrypted elliptic-curve private key in PEM (e.g. openssl ecparam "
                               "-genkey -name prime256v1 -noout -out key.pem).") from exc
    return root / SIGNATURE


def verify_bundle(root: str | Path, keys) -> Path:
    """Refuse ``root`` unless ``bundle.sig`` verifies with one of ``keys`` (public PEM paths).

    Runs before anything in the bundle is parsed: the manifest is covered like every other file.
    Returns the key that verified it."""
    root = Path(root)
    sig = root / SIGNATURE
    if not sig.is_file() or sig.is_symlink():
        raise SignatureError(f"{root} is not signed (no {SIGNATURE}), and a trusted key was given.",
                          hint="Sign it on the export host with `edgeport sign BUNDLE --key PRIVATE.pem`, or "
                               "drop --trusted-key to read unsigned bundles.")
    ms = _model_signing()
    _signed_files(root)
    problems = []
    for key in keys:
        hashing = ms.hashing.Config().set_ignored_paths(paths=_ignored(root), ignore_git_paths=False)
        try:
            ms.verifying.Config().use_elliptic_key_verifier(public_key=key).set_hashing_config(hashing).verify(root, sig)
            return Path(key)
        except Exception as exc:  # noqa: BLE001 - model-signing raises ValueError and sigstore's own errors
            problems.append(_reason(key, exc))
    raise SignatureError(f"{root}/{SIGNATURE} does not verify: {'; '.join(problems)}.",
                      hint="Re-export and sign the bundle with a trusted key; never run a bundle that fails this.")


def _reason(key, exc: Exception) -> str:
    """One clause per key: another signer, or which files differ (names, not raw digests)."""
    import re

    text = " ".join(str(exc).split())
    if "key mismatch" in text.lower() or "public key" in text.lower():
        return f"{key} did not sign it"
    text = text.replace("\\", "")  # the message is a repr()'d list: quotes come escaped
    changed = re.findall(r"Hash mismatch for '([^']+)'", text)
    extra = re.findall(r"Extra files found in model '[^']*': ([^\]\"']+)", text)
    missing = re.findall(r"Missing files in model '[^']*': ([^\]\"']+)", text)
    parts = [f"changed: {', '.join(changed)}"] if changed else []
    parts += [f"not signed: {m.strip()}" for m in extra] + [f"missing: {m.strip()}" for m in missing]
    if parts:
        return f"with {key} the files differ from what was signed ({'; '.join(parts)})"
    return f"with {key}: {type(exc).__name__}: {text[:200]}"
