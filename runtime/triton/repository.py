"""Writing one model into a Triton model repository, atomically.

Layout of ``<repository>/<name>/``::

    config.pbtxt          checked against Triton's ModelConfig schema before anything is written
    labels.txt            the bundle's class names (classification extension), when it has them
    warmup/golden_input.raw   one golden input as raw FP32 bytes (model_warmup)
    edgeport.json         where the entry comes from (bundle, artifact, sha256): never mixed up
    1/model.onnx | 1/model.plan | 1/model.py + 1/model.onnx

How it stays consistent:

- The repository folder itself is locked (fcntl) while writing, so two concurrent writes
  into one repository never interleave; the second fails fast.
- The entry is staged in a hidden folder *next to* the repository (its parent folder), never
  inside it: Triton treats every sub-folder of the repository as a model, hidden ones
  included, and a server starting beside a half-written folder would fail to load it.
  Only when the parent folder is not writable, or on another file system, is the entry
  staged inside the repository (with a warning).
- The swap is one atomic exchange of the staged entry with the old one (runtime/atomic.py,
  with a fallback that puts the old entry back on any error); an interruption, SIGKILL
  included, leaves the old or the new entry, and the next run cleans up leftovers of dead
  runs (or restores the old entry when a fallback swap was killed in the middle). Leftovers
  are matched by exact prefix, never by glob: ``*`` or ``[`` in a name touch only its own.
- An existing entry is replaced only when it serves the same model file (same sha256, e.g.
  other options) or with ``force``: a folder holding another model is never overwritten
  or mixed with this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np

from runtime import atomic
from runtime.bundle import Bundle, sha256_file
from runtime.errors import EdgeportError, UsageError
from runtime.fsutil import LockHeld, lock_file
from runtime.triton.config import WARMUP_DIR, build_config, check_schema, render_pbtxt
from runtime.triton.plan import LABELS_FILE, EntryPlan, TritonOptions, plan_entry

PROVENANCE = "edgeport.json"
CONFIG = "config.pbtxt"
VERSION = "1"
PYTHON_MODEL = Path(__file__).with_name("python_backend_model.py")


@dataclasses.dataclass(frozen=True)
class TritonModel:
    """The repository entry that ``write_repository`` wrote."""

    name: str
    path: Path  # <repository>/<name>
    backend: str
    precision: str  # the bundle's artifact key
    files: tuple[str, ...]  # relative to path
    config_text: str
    schema: str | None  # "tritonclient X" when checked against Triton's schema, None when skipped
    replaced: bool  # an entry with the same model file was there before
    max_batch_size: int
    kind: str
    instances: int
    notes: tuple[str, ...] = ()

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG


def write_repository(bundle: Bundle, repository: str | Path, options: TritonOptions = TritonOptions(), *,
                     env=None, log=lambda s: None, warn=lambda s: None) -> TritonModel:
    """Write ``<repository>/<name>/`` for one artifact of ``bundle``; returns what was written.

    Every option is checked and config.pbtxt is parsed against Triton's schema before the
    repository is touched. ``env`` is for the tensorrt backend (see plan_entry).
    """
    plan = plan_entry(bundle, options, env=env, warn=warn)
    text = render_pbtxt(build_config(plan.spec), _comment(bundle, plan))
    schema = None
    if options.schema_check:
        schema = f"tritonclient {check_schema(text, plan.spec)}"
    else:
        warn("config.pbtxt was not checked against Triton's ModelConfig schema (--no-schema-check): Triton reports "
             "any schema error only when it loads the model")
    repo = _prepare(Path(repository))
    with _locked(repo):
        root, prefix = _staging_place(repo, plan.spec.name, warn)
        _recover(root, prefix, repo / plan.spec.name)
        final = repo / plan.spec.name
        replaced = _check_existing(final, plan, options.force)
        staging = root / f"{prefix}tmp-{os.getpid()}"
        try:
            with _guard(staging):
                staging.mkdir()
                files = _stage(staging, bundle, plan, text, options)
                log(f"staged {len(files)} files for '{plan.spec.name}' in {staging}")
                _swap(staging, final, root / f"{prefix}old-{os.getpid()}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return TritonModel(name=plan.spec.name, path=final, backend=options.backend, precision=plan.precision,
                       files=tuple(files), config_text=text, schema=schema, replaced=replaced,
                       max_batch_size=plan.spec.max_batch_size, kind=plan.spec.kind,
                       instances=plan.spec.instances, notes=plan.notes)


# -- the repository folder -------------------------------------------------------------------------
def _prepare(repo: Path) -> Path:
    """Create the repository folder; an unusable one is a UsageError before any work."""
    repo = repo.absolute()
    if repo.exists() and not repo.is_dir():
        raise UsageError(f"--repository '{repo}' exists and is a file, not a folder.",
                         hint="Pass a folder for the model repository (it is created when missing).")
    try:
        repo.mkdir(parents=True, exist_ok=True)
        # A file, not a folder: Triton takes every sub-folder of the repository for a model.
        probe = repo / f".edgeport-write-test-{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"Cannot write the Triton model repository '{repo}': {exc.strerror or exc}.",
                         hint="Choose another --repository folder or fix its permissions.") from exc
    return repo


@contextlib.contextmanager
def _locked(repo: Path):
    """An exclusive lock on the repository folder for the duration of one write."""
    try:
        with lock_file(repo, wait=False):
            yield
    except LockHeld:
        raise EdgeportError(f"Another edgeport triton command is writing into '{repo}' right now.",
                            hint="Wait for it to finish, then run this one again.") from None


def _staging_place(repo: Path, name: str, warn) -> tuple[Path, str]:
    """(folder, name prefix) for the staged and the set-aside entry; see the module docstring."""
    parent = repo.parent
    try:
        same_fs = parent.stat().st_dev == repo.stat().st_dev
    except OSError:
        same_fs = False
    if same_fs and os.access(parent, os.W_OK | os.X_OK):
        return parent, f".{repo.name}.{name}.edgeport-"
    warn(f"staging '{name}' inside the repository ({parent} is not writable or is another file system): a Triton "
         "server polling the repository may log an error for the hidden folder while it exists")
    return repo, f".{name}.edgeport-"


def _recover(root: Path, prefix: str, final: Path) -> None:
    """With the lock held, staged folders of dead runs are removed; an entry set aside by a swap
    cut by SIGKILL is restored when nothing is at the path."""
    for kind in ("tmp-", "old-"):
        for p in atomic.leftovers(root, prefix + kind):
            pid = atomic.pid_of(p, prefix + kind)
            if pid is None or (pid != os.getpid() and atomic.pid_alive(pid)):
                continue  # another entry's folder, or a live run's
            if kind == "old-":
                atomic.restore_aside(final, p, CONFIG)
            else:
                atomic.remove(p)


def read_provenance(entry: Path) -> dict | None:
    """The entry's edgeport.json, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((entry / PROVENANCE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _check_existing(final: Path, plan: EntryPlan, force: bool) -> bool:
    """True when an entry will be replaced; a UsageError when it holds another model and not ``force``."""
    if not (final.exists() or final.is_symlink()):
        return False
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        return False
    prov = read_provenance(final) if final.is_dir() else None
    served = (prov or {}).get("model_file") or {}
    if served.get("sha256") == plan.source_sha256:
        return True
    if force:
        return True
    if not final.is_dir() or final.is_symlink():
        what = "is a file or a link, not a model folder"
    elif prov is None:
        what = "holds a model that edgeport did not write (no edgeport.json)"
    else:
        bundle = prov.get("bundle") or {}
        what = (f"holds another model: {bundle.get('model', '?')} {prov.get('precision', '?')} (model file sha256 {str(served.get('sha256'))[:16]}..., this one is "
                f"{plan.source_sha256[:16]}...)")
    raise UsageError(f"The repository entry '{final}' {what}; edgeport never overwrites or mixes two models in "
                     "one folder.", hint="Pass --force to replace it, or --name NAME to add this model beside it.")


# -- the entry --------------------------------------------------------------------------------------
def _stage(staging: Path, bundle: Bundle, plan: EntryPlan, text: str, options: TritonOptions) -> list[str]:
    """Write every file of the entry under ``staging``; returns their relative paths."""
    version = staging / VERSION
    version.mkdir()
    files = []
    shutil.copyfile(plan.source, version / plan.model_file)
    if sha256_file(version / plan.model_file) != plan.source_sha256:
        raise EdgeportError(f"The copy of {plan.source} in the repository does not match its sha256 (disk error?).",
                            hint="Check the disk and run the command again.")
    files.append(f"{VERSION}/{plan.model_file}")
    if options.backend == "python":
        shutil.copyfile(PYTHON_MODEL, version / "model.py")
        files.append(f"{VERSION}/model.py")
    if plan.class_names:
        labels = "".join(" ".join(str(n).split()) + "\n" for n in plan.class_names)  # one label per line
        (staging / LABELS_FILE).write_text(labels, encoding="utf-8")
        files.append(LABELS_FILE)
    if plan.spec.warmup_file:
        (staging / WARMUP_DIR).mkdir()
        sample = bundle.golden().inputs(bundle.preprocessing)[:1]
        np.ascontiguousarray(sample, dtype=plan.spec.input.dtype).tofile(staging / WARMUP_DIR / plan.spec.warmup_file)
        files.append(f"{WARMUP_DIR}/{plan.spec.warmup_file}")
    (staging / PROVENANCE).write_text(json.dumps(_provenance(bundle, plan, options), indent=2) + "\n")
    files.append(PROVENANCE)
    (staging / CONFIG).write_text(text)
    files.append(CONFIG)
    return sorted(files)


def _comment(bundle: Bundle, plan: EntryPlan) -> str:
    """config.pbtxt's first lines: what the entry serves, for a person reading the repository (the
    int8-cpu graph, say, is copied as 1/model.onnx like the fp32 one)."""
    from runtime import __version__

    return (f"Written by edgeport {__version__}: {bundle.name}, {plan.precision} artifact {plan.source.name} "
            f"served as {VERSION}/{plan.model_file}\nsha256 {plan.source_sha256} (parameters edgeport.*)")


def _provenance(bundle: Bundle, plan: EntryPlan, options: TritonOptions) -> dict:
    from runtime import __version__

    # No path of the bundle: the repository is copied to servers where the export machine's folders
    # mean nothing (and name its users); the model name and the sha256 identify the source.
    data = {
        "edgeport": __version__,
        "bundle": {"model": bundle.name},
        "backend": options.backend,
        "precision": plan.precision,
        "source": plan.source.name,
        "model_file": {"file": f"{VERSION}/{plan.model_file}", "sha256": plan.source_sha256},
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k not in ("force",)},
    }
    if plan.engine is not None:
        data["engine"] = {k: plan.engine.get(k) for k in ("runtime", "version", "gpu", "profile", "dla_core",
                                                          "built_at")}
    return data


def _swap(staging: Path, final: Path, old: Path) -> None:
    """Put the staged entry in place of ``final`` (see the module docstring); a file or link there
    (replaced only with --force) is exchanged like a folder, then removed without following it."""
    atomic.replace_dir(staging, final, old)


@contextlib.contextmanager
def _guard(path: Path):
    """Disk full and permission errors while staging become one clear message."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise EdgeportError(f"No space left on the device while writing '{path}'.",
                                hint="Free some disk space; nothing was left half-written in the repository.") from exc
        raise EdgeportError(f"Cannot write '{path}': {exc.strerror or exc}.",
                            hint="Check the permissions of the repository and its parent folder; nothing was left "
                                 "half-written in the repository.") from exc
