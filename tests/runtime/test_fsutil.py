"""runtime/fsutil.py: the one file lock and the one cache folder."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from runtime.fsutil import LockHeld, cache_root, lock_file


def test_cache_root_order(tmp_path, monkeypatch):
    assert cache_root({"EDGEPORT_CACHE": str(tmp_path / "c"), "XDG_CACHE_HOME": "/x"}) == tmp_path / "c"
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "edgeport"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root({}) == tmp_path / "home" / ".cache" / "edgeport"


def _try_lock(path: str, queue) -> None:
    try:
        with lock_file(path, wait=False):
            queue.put("got it")
    except LockHeld:
        queue.put("held")


def _other_process(path) -> str:
    """What a second process sees when it asks for the lock without waiting."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_try_lock, args=(str(path), queue))
    proc.start()
    proc.join(30)
    return queue.get(timeout=5)


def test_lock_is_exclusive_across_processes_and_released(tmp_path):
    path = tmp_path / "x.lock"
    with lock_file(path):
        assert path.is_file()
        assert _other_process(path) == "held"
    assert _other_process(path) == "got it"


def test_lock_on_a_folder(tmp_path):
    with lock_file(tmp_path, wait=False):
        assert _other_process(tmp_path) == "held"


def test_lock_refuses_a_planted_symlink(tmp_path):
    """A symlink at the lock's path is not followed: the file it points to is neither created nor opened."""
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    link = tmp_path / "x.lock"
    os.symlink(target, link)
    with pytest.raises(OSError):
        with lock_file(link):
            pass
    assert not target.exists()


def test_export_lock_refuses_a_planted_symlink(tmp_path):
    """The bundle writer's lock goes through lock_file: a symlink at OUT/.<name>.lock is an error, not followed."""
    from exporter.bundle_writer import StagedBundle
    from runtime.errors import EdgeportError

    victim = tmp_path / "victim"
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / ".m.lock")
    with pytest.raises(EdgeportError, match="symbolic link"):
        with StagedBundle(out, "m"):
            pass
    assert not victim.exists() and not any(p.name.startswith(".m.tmp") for p in out.iterdir())
