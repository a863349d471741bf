"""An engine and its sidecar are replaced as a pair: a rebuild that fails to write (a full disk)
leaves the old, working pair in place, never an engine orphaned by a deleted sidecar."""

from __future__ import annotations

import errno
import tempfile

import pytest

from runtime.bundle import Bundle
from runtime.engines.sidecar import EngineSidecar, list_engines, write_engine
from runtime.errors import EdgeportError
from trt_fake import make_bundle, sidecar_dict

NAME = "model.fp16.sm87.trt10.3.0.engine"


def _sidecar(bundle) -> EngineSidecar:
    art = bundle.manifest.artifacts["fp16"]
    return EngineSidecar.from_dict(sidecar_dict(source={"artifact": "fp16", "file": art.file, "sha256": art.sha256}),
                                   "test.engine.json")


@pytest.mark.parametrize("fail_at", [1, 2])  # the engine's temp file, the sidecar's
def test_a_rebuild_on_a_full_disk_keeps_the_old_engine_and_sidecar(tmp_path, monkeypatch, fail_at):
    bundle = Bundle.open(make_bundle(tmp_path / "net"))
    write_engine(bundle.root, NAME, b"old plan", _sidecar(bundle))
    before = {p.name: p.read_bytes() for p in bundle.root.iterdir()}
    real_mkstemp, calls = tempfile.mkstemp, []

    def full_disk(*a, **k):
        calls.append(a)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(EdgeportError, match="Cannot write the engine"):
        write_engine(bundle.root, NAME, b"new plan", _sidecar(bundle))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in bundle.root.iterdir()} == before  # nothing old gone, nothing new left
    [record] = list_engines(bundle)
    assert record.engine_path.read_bytes() == b"old plan"
    assert record.sidecar.engine.bytes == len(b"old plan")


def test_a_rebuild_replaces_both_and_leaves_no_temp_files(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path / "net"))
    write_engine(bundle.root, NAME, b"old plan", _sidecar(bundle))
    names = sorted(p.name for p in bundle.root.iterdir())
    write_engine(bundle.root, NAME, b"new plan", _sidecar(bundle))
    assert sorted(p.name for p in bundle.root.iterdir()) == names
    [record] = list_engines(bundle)
    assert record.engine_path.read_bytes() == b"new plan" and record.sidecar.engine.bytes == len(b"new plan")
