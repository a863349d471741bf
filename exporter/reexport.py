"""Exporting over an existing bundle: what is replaced, what is kept, what is dropped.

``edgeport export`` writes OUTPUT/<name>/ as a whole (staged, then swapped in: bundle_writer.py),
so a re-export describes the complete new bundle. The rules:

- ``-o/--output`` is the parent folder. An OUTPUT that is itself a bundle is refused (exit 2):
  writing into it would nest a new bundle inside the old one.
- OUTPUT/<name> that is not a bundle (no readable manifest.json) and not empty, or a bundle
  of **another model**, is only replaced with ``--force`` (exit 2 otherwise). Another model
  means a different ``model.source`` (torchvision, seed, user, python...),
  ``model.architecture`` or ``model.num_classes`` in the manifest. New weights, input size,
  preprocessing, opset, batch range or precisions are a new export of the same model: it is
  replaced, and the log says what changed.
- Everything the old bundle holds beyond its artifacts was computed from artifacts. It is
  **carried over** into the new bundle when what it was computed from is byte-identical
  (same sha256; an export is deterministic, so re-exporting an unchanged model with the same
  options gives byte-identical files): TensorRT engines and their sidecars (source artifact
  and, for implicit-INT8 engines, calib.cache unchanged, same batch range), and report.json's
  benchmark results, verification results of other backends (golden set unchanged too),
  labeled accuracy (the FP32 reference unchanged too), lint, sensitivity ranking and
  accuracy-budget sections. Everything else is dropped, and one warning lists it (dropped
  artifacts with the option that would keep them, stale engines with the rebuild command,
  report sections, other files). With ``--no-verify`` the new bundle has no report, so the
  old report's sections are all dropped.

Adding a precision is therefore "re-export with the same options plus ``--int8``": the FP32
and FP16 artifacts come out byte-identical, and their engines and benchmarks stay.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from runtime import console
from runtime.bundle import GOLDEN, MANIFEST, Bundle
from runtime.errors import BundleError, EdgeportError, UsageError
from runtime.signing import SignatureError
from runtime.engines.sidecar import read_sidecar
from runtime.precision import export_options

EXPORT_FILES = (MANIFEST, GOLDEN, "calibration.json", "calib.cache", "report.json", "report.md", "report.html")
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".engine.json"


def looks_like_bundle(folder: Path) -> bool:
    """``folder`` holds an edgeport manifest.json (not just any file of that name)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "schema_version" in data and "artifacts" in data


def check_not_a_bundle(out_dir: Path) -> None:
    """``-o`` is the parent folder: refuse one that is itself a bundle (never nest)."""
    out_dir = Path(out_dir)
    if looks_like_bundle(out_dir):
        raise UsageError(
            f"--output '{out_dir}' is itself a bundle, and -o is the parent folder (the bundle is written to "
            f"OUTPUT/<name>/): exporting there would nest a new bundle inside it.",
            hint=f"To replace it, pass -o {out_dir.parent} --name {out_dir.name}; to keep it, choose another -o.")


@dataclasses.dataclass(frozen=True)
class Identity:
    """What makes two bundles hold the same model."""

    source: str | None
    architecture: str | None
    num_classes: int | None

    def describe(self) -> str:
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{self.architecture} ({self.source}{classes})"

    def differs(self, other: "Identity") -> bool:
        """Another model: a field known on both sides differs (an older manifest may lack one)."""
        pairs = ((self.source, other.source), (self.architecture, other.architecture),
                 (self.num_classes, other.num_classes))
        return any(a is not None and b is not None and a != b for a, b in pairs)


@dataclasses.dataclass
class Previous:
    """The folder a re-export replaces."""

    root: Path
    bundle: Bundle | None  # None: not a readable bundle
    problem: str | None = None


def _existing(final: Path, force: bool) -> Previous | None:
    if not final.exists() and not final.is_symlink():
        return None
    if not final.is_dir():
        raise EdgeportError(f"'{final}' exists and is a file, not a bundle folder.",
                            hint="Remove it or choose another --output / --name.")
    if not any(final.iterdir()):
        return None
    if not (final / MANIFEST).is_file():
        return Previous(final, None, f"it has no {MANIFEST}")
    try:
        return Previous(final, Bundle.open(final))  # with trusted keys: signature first (runtime/signing.py)
    except SignatureError:
        if not force:
            raise  # nothing of an untrusted bundle is read or carried over; --force replaces it unread
        return Previous(final, None, "its signature does not verify with the trusted keys")
    except BundleError as exc:
        return Previous(final, None, str(exc))


def precheck(out_dir: Path, name: str | None, identity: Identity | None, force: bool) -> None:
    """Before loading the model: the checks that need only the bundle name (and, for registry
    models, the architecture), so a refusal comes before seconds of importing torch."""
    if name is None:
        return
    previous = _existing(Path(out_dir) / name, force)
    if previous is not None:
        _refuse_unless_forced(previous, identity, force)


def check_replace(final: Path, identity: Identity, force: bool) -> Previous | None:
    """With the bundle's lock held and the model loaded: refuse (exit 2), or say what is
    replaced. Returns the previous folder (for ``carry_over``), or None."""
    previous = _existing(final, force)
    if previous is None:
        return None
    _refuse_unless_forced(previous, identity, force)
    if previous.bundle is None:
        console.warn(f"replacing '{final}', which is not a readable bundle ({previous.problem}) (--force)")
        return previous
    old = _identity(previous.bundle)
    if old.differs(identity):
        console.warn(f"replacing '{final}', a bundle of another model: {old.describe()} -> {identity.describe()} "
                     "(--force)")
    else:
        console.log(f"replacing bundle '{final}' (same model, {identity.describe()}): what the new files leave "
                    "byte-identical keeps its engines and report entries")
    return previous


def _identity(bundle: Bundle) -> Identity:
    m = bundle.manifest.model
    return Identity(m.source, m.architecture, m.num_classes)


def _refuse_unless_forced(previous: Previous, identity: Identity | None, force: bool) -> None:
    if force:
        return
    where = previous.root
    if previous.bundle is None:
        count = sum(1 for _ in where.iterdir())
        raise UsageError(
            f"'{where}' exists and is not a readable edgeport bundle ({previous.problem}); exporting there would "
            f"delete its {count} entr{'y' if count == 1 else 'ies'}.",
            hint="Choose another --output / --name, or pass --force to replace it.")
    if identity is None:
        return
    old = _identity(previous.bundle)
    if old.differs(identity):
        raise UsageError(
            f"'{where}' holds a bundle of another model, {old.describe()}; this export is {identity.describe()} and "
            "would replace it.",
            hint="Choose another --name (or --output), or pass --force to replace it.")


def _changes(old, new) -> list[str]:
    """What differs between two manifests' export settings, in words."""
    def weights(m):
        sha = m.weights.extra.get("sha256")
        return f"{m.weights.spec}" + (f" (sha256 {sha[:12]})" if sha else "")

    def facts(m):
        return {"weights": weights(m), "input": "x".join(str(d) for d in m.input.chw), "opset": m.opset,
                "max batch": m.input.max_batch, "precisions": ",".join(m.artifacts)}

    before, after = facts(old), facts(new)
    out = [f"{k} {before[k]} -> {after[k]}" for k in before if before[k] != after[k]]
    if old.preprocessing != new.preprocessing:
        out.append("preprocessing")
    if old.model.class_names != new.model.class_names:
        out.append("class names")
    return out


# -- carrying over ---------------------------------------------------------------------------------
@dataclasses.dataclass
class _Compare:
    """Which of the old bundle's inputs the new bundle left byte-identical."""

    old: object  # Manifest
    new: object  # Manifest
    engines: set = dataclasses.field(default_factory=set)  # engine files carried over
    engine_precisions: set = dataclasses.field(default_factory=set)

    def same(self, precision: str | None) -> bool:
        a, b = self.old.artifacts.get(precision), self.new.artifacts.get(precision)
        return a is not None and b is not None and a.sha256 is not None and a.sha256 == b.sha256

    @property
    def golden_same(self) -> bool:
        a, b = self.old.golden, self.new.golden
        return a is not None and b is not None and a.sha256 == b.sha256

    def calib_cache_same(self) -> bool:
        a = self.old.int8.trt_calibration_cache if self.old.int8 else None
        b = self.new.int8.trt_calibration_cache if self.new.int8 else None
        return a is not None and b is not None and a.sha256 == b.sha256

    def row_valid(self, precision: str | None, backend: str | None, artifact: str | None, *, golden: bool) -> bool:
        """A per-artifact report row (of ``backend``; ``artifact``: the file it ran, when recorded)
        still describes the new bundle."""
        if not self.same(precision) or (golden and not self.golden_same):
            return False
        if (backend or "onnxruntime") != "onnxruntime":  # TensorRT, TensorRT-RTX: run through an engine
            return artifact in self.engines if artifact else precision in self.engine_precisions
        return True


def carry_over(previous: Previous | None, staged, manifest, *, verify: bool, fresh: set = frozenset()) -> None:
    """Copy into the staged bundle what the old one computed from inputs the new one left
    unchanged (engines, report sections), and warn about everything else it drops.
    ``fresh``: report sections the new export writes itself."""
    if previous is None:
        return
    known = set(EXPORT_FILES)
    dropped: list[str] = []
    kept: list[str] = []
    if previous.bundle is not None:
        cmp = _Compare(previous.bundle.manifest, manifest)
        changes = _changes(cmp.old, manifest)
        if changes:
            console.log(f"changed since the previous export: {'; '.join(changes)}")
        known |= {e.file for e in cmp.old.artifacts.values()}
        dropped += _dropped_artifacts(cmp)
        engine_files = _carry_engines(previous.root, staged, cmp, kept, dropped)
        known |= engine_files
        _carry_report(previous.root, staged, cmp, verify, fresh, kept, dropped)
    other = sorted(p.name for p in previous.root.iterdir() if p.name not in known)
    if other:
        dropped.append(f"other files: {', '.join(other[:8])}{' ...' if len(other) > 8 else ''}")
    if kept:
        console.log("kept from the previous bundle (computed from byte-identical files): " + "; ".join(kept))
    if dropped:
        console.warn(f"the re-export drops from '{previous.root}': " + "; ".join(dropped))


def _dropped_artifacts(cmp: _Compare) -> list[str]:
    gone = [p for p in cmp.old.artifacts if p not in cmp.new.artifacts]
    out = []
    if gone:
        files = [cmp.old.artifacts[p].file for p in gone]
        if "int8" in gone:
            files += ["calibration.json", "calib.cache"]
        options = list(export_options(gone)) or ["the options that wrote them"]
        out.append(f"the {', '.join(gone)} artifact{'s' if len(gone) > 1 else ''} ({', '.join(files)}): "
                   f"re-export with {' and '.join(options)} to keep {'them' if len(gone) > 1 else 'it'}")
    return out


def _carry_engines(old_root: Path, staged, cmp: _Compare, kept: list, dropped: list) -> set[str]:
    """Link (or copy) still-valid engines and their sidecars into the staged bundle; returns the
    old engine file names (all of them are accounted for, kept or listed as dropped)."""
    names: set[str] = set()
    stale = []
    for sidecar in sorted(old_root.glob("*" + SIDECAR_SUFFIX)):
        engine = sidecar.name[: -len(".json")]
        names |= {sidecar.name, engine}
        why = _engine_stale(sidecar, old_root / engine, cmp) or _carry_checked(old_root, staged, engine)
        if why:
            stale.append(f"{engine} ({why})")
            continue
        cmp.engines.add(engine)
        cmp.engine_precisions.add(read_sidecar(staged.path(sidecar.name)).precision)
    orphans = sorted(p.name for p in old_root.glob("*" + ENGINE_SUFFIX) if p.name not in names)
    names |= set(orphans)
    stale += [f"{n} (no sidecar)" for n in orphans]
    if cmp.engines:
        kept.append(f"{len(cmp.engines)} TensorRT engine(s) ({', '.join(sorted(cmp.engines))})")
    if stale:
        dropped.append(f"{len(stale)} TensorRT engine(s) built from files that changed or are gone: "
                       f"{', '.join(stale)}; rebuild on the device with `edgeport build {old_root}`")
    return names


def _carry_checked(old_root: Path, staged, engine: str) -> str | None:
    """Link an engine and its sidecar into the staged bundle, then check the staged copies (the
    files that will be published, so nothing can be swapped after the check): regular files
    only, and the engine's sha256 the one its sidecar records. Returns why not, having removed
    them; None when both were kept. A link to a file outside the bundle is never carried."""
    from runtime.fsutil import open_regular, sha256_fileobj

    names = (engine, engine + ".json")
    for name in names:
        staged.add_file(old_root / name, name)
    why = None
    try:
        expected = read_sidecar(staged.path(names[1])).engine.sha256
        with open_regular(staged.path(engine)) as f:
            if sha256_fileobj(f) != expected:
                why = "its sha256 is not the one its sidecar records"
    except BundleError as exc:
        why = f"not a regular file of the bundle: {exc}"
    if why:
        for name in names:
            staged.path(name).unlink(missing_ok=True)
    return why


def _engine_stale(sidecar_path: Path, engine: Path, cmp: _Compare) -> str | None:
    try:
        sidecar = read_sidecar(sidecar_path)
    except BundleError as exc:  # malformed (or a link): the engine is dropped, the reason kept
        return f"unreadable sidecar: {exc}"
    if engine.is_symlink() or not engine.is_file():
        return "not a regular file" if engine.is_symlink() else "incomplete"
    new = cmp.new.artifacts.get(sidecar.source.artifact)
    if new is None:
        return f"its source, the {sidecar.source.artifact} artifact, is not in the new bundle"
    if new.sha256 != sidecar.source.sha256:
        return f"{new.file} changed"
    if sidecar.calibration_cache and not cmp.calib_cache_same():
        return "calib.cache changed"
    if (cmp.old.input.max_batch, cmp.old.input.shape) != (cmp.new.input.max_batch, cmp.new.input.shape):
        return "the input or batch range changed"
    return None


def _carry_report(old_root: Path, staged, cmp: _Compare, verify: bool, fresh: set, kept: list,
                  dropped: list) -> None:
    """The old report's sections that still describe the new bundle, written into the staged
    bundle (export's verification then merges its own results into it)."""
    from runtime.report.summary import read_report

    path = old_root / "report.json"
    if not path.is_file():
        return
    try:
        old = read_report(path)
    except BundleError:
        dropped.append("report.json (not an edgeport report)")
        return
    if not verify:
        dropped.append("every report.json section (--no-verify writes no report; run `edgeport verify` and "
                       "`edgeport bench` on the new bundle)")
        return
    report, notes = old.carry_over(cmp, fresh)
    kept += notes.kept
    dropped += [f"report.json: {n}" for n in notes.dropped]
    if not report.empty:
        staged.write_text("report.json", json.dumps(report.to_dict(), indent=2) + "\n")
