"""The bundle commit cannot lose the bundle: the atomic exchange (runtime/atomic.py), its
fallback, SIGKILL at every step of the commit, names with glob characters, stale staging, the
export lock taken before any work, and the exit status of a signal after the commit."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli

FILES = ("a.txt", "b.txt", "manifest.json")


def make_tree(root: Path, version: str) -> Path:
    root.mkdir(parents=True)
    for f in FILES:
        (root / f).write_text(version)
    return root


def tree_version(root: Path) -> str | None:
    """'old' or 'new' when ``root`` is a complete bundle of one version, else None."""
    if not root.is_dir() or sorted(p.name for p in root.iterdir()) != sorted(FILES):
        return None
    versions = {(root / f).read_text() for f in FILES}
    return versions.pop() if len(versions) == 1 else None


def exchange_works(folder: Path) -> bool:
    """Whether this kernel and file system exchange two folders (probed here with ctypes, not with
    the code under test)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if not sys.platform.startswith("linux") or not hasattr(libc, "renameat2"):
        return False
    a, b = folder / ".probe-a", folder / ".probe-b"
    a.mkdir(), b.mkdir()
    try:
        return libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0  # AT_FDCWD, RENAME_EXCHANGE
    finally:
        a.rmdir(), b.rmdir()


# -- the primitive ----------------------------------------------------------------------------------
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    from runtime import atomic

    if not exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    make_tree(tmp_path / "a", "old"), make_tree(tmp_path / "b", "new")
    atomic.exchange(tmp_path / "a", tmp_path / "b")
    assert tree_version(tmp_path / "a") == "new" and tree_version(tmp_path / "b") == "old"
    with pytest.raises(FileNotFoundError):
        atomic.exchange(tmp_path / "a", tmp_path / "missing")
    assert tree_version(tmp_path / "a") == "new"  # a failed exchange moved nothing


def test_replace_dir_never_renames_the_old_folder_away_when_it_can_exchange(tmp_path, monkeypatch):
    from runtime import atomic

    if not exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    make_tree(tmp_path / "bundle", "old"), make_tree(tmp_path / "staged", "new")

    def no_rename(*a, **k):
        raise AssertionError(f"os.rename{a} would leave a moment without a bundle at the path")

    monkeypatch.setattr(atomic.os, "rename", no_rename)
    atomic.replace_dir(tmp_path / "staged", tmp_path / "bundle", tmp_path / "aside")
    assert tree_version(tmp_path / "bundle") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_fallback_swap_without_exchange(tmp_path, monkeypatch):
    from runtime import atomic

    monkeypatch.setattr(atomic, "_renameat2", lambda: None)  # as on macOS or a kernel before 3.15
    make_tree(tmp_path / "bundle", "old"), make_tree(tmp_path / "staged", "new")
    atomic.replace_dir(tmp_path / "staged", tmp_path / "bundle", tmp_path / "aside")
    assert tree_version(tmp_path / "bundle") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_file_system_refusing_the_exchange_falls_back(tmp_path, monkeypatch):
    from runtime import atomic

    def einval(*a):  # what some file systems answer to RENAME_EXCHANGE
        import ctypes

        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(atomic, "_renameat2", lambda: einval)
    make_tree(tmp_path / "bundle", "old"), make_tree(tmp_path / "staged", "new")
    with pytest.raises(atomic.ExchangeUnsupported):
        atomic.exchange(tmp_path / "staged", tmp_path / "bundle")
    atomic.replace_dir(tmp_path / "staged", tmp_path / "bundle", tmp_path / "aside")
    assert tree_version(tmp_path / "bundle") == "new"


@pytest.mark.parametrize("failure", [OSError(errno.EIO, "I/O error"), KeyboardInterrupt()])
def test_fallback_puts_the_old_folder_back_when_the_second_rename_fails(tmp_path, monkeypatch, failure):
    from runtime import atomic

    monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    make_tree(tmp_path / "bundle", "old"), make_tree(tmp_path / "staged", "new")
    real_rename, calls = os.rename, []

    def second_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise failure
        return real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", second_fails)
    with pytest.raises(type(failure)):
        atomic.replace_dir(tmp_path / "staged", tmp_path / "bundle", tmp_path / "aside")
    assert tree_version(tmp_path / "bundle") == "old"
    assert not (tmp_path / "aside").exists() and tree_version(tmp_path / "staged") == "new"


def test_fallback_holds_a_signal_until_both_renames_are_done(tmp_path, monkeypatch):
    from runtime import atomic

    monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    make_tree(tmp_path / "bundle", "old"), make_tree(tmp_path / "staged", "new")
    real_rename, seen = os.rename, []

    def rename_then_ctrl_c(src, dst):
        real_rename(src, dst)
        if not seen:
            seen.append(tree_version(tmp_path / "bundle"))
            os.kill(os.getpid(), signal.SIGINT)  # arrives between the two renames

    monkeypatch.setattr(atomic.os, "rename", rename_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        atomic.replace_dir(tmp_path / "staged", tmp_path / "bundle", tmp_path / "aside")
    assert seen == [None]  # the signal really came while no bundle was at the path...
    assert tree_version(tmp_path / "bundle") == "new"  # ...and was held until the new one was in place


# -- SIGKILL at every step of StagedBundle.commit ----------------------------------------------------
KILL_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path

    out, mode, kill_at, sig = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    armed, calls = [False], [0]

    def hooked(fn):
        def wrapper(*a, **k):
            if armed[0]:
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), sig)  # before this step
                if calls[0] == -kill_at:
                    r = fn(*a, **k)
                    os.kill(os.getpid(), sig)  # after this step
                    return r
            return fn(*a, **k)
        return wrapper

    for name in ("rename", "replace", "unlink", "rmdir"):
        setattr(os, name, hooked(getattr(os, name)))
    try:
        from runtime import atomic
    except ImportError:
        atomic = None
    if atomic is not None:
        real = atomic._renameat2
        atomic._renameat2 = (lambda: None) if mode == "fallback" else (lambda: hooked(real()))
    from exporter.bundle_writer import StagedBundle

    with StagedBundle(out, "net") as staged:
        for f in ("a.txt", "b.txt", "manifest.json"):
            staged.write_text(f, "new")
        armed[0] = True
        staged.commit()
    print("steps", calls[0])
''')


def _run_kill_script(script: Path, out: Path, mode: str, kill_at: int, sig: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, str(script), str(out), mode, str(kill_at), str(int(sig))],
                          env=env, capture_output=True, text=True, timeout=120)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


@pytest.mark.parametrize("mode,sig", [("exchange", signal.SIGKILL), ("fallback", signal.SIGTERM),
                                      ("fallback", signal.SIGKILL)])
def test_a_signal_at_any_step_of_the_commit_leaves_a_complete_bundle(tmp_path, mode, sig):
    """Each step of the commit (every rename, exchange, unlink and rmdir it makes) is killed
    before and after it; the bundle path holds the complete old or new bundle at once, except
    for SIGKILL between the two renames of the fallback, where the next export restores it."""
    from exporter.bundle_writer import StagedBundle

    if mode == "exchange" and not exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system or file system")
    script = tmp_path / "commit.py"
    script.write_text(KILL_SCRIPT)
    steps = None
    for step in range(1, 40):
        for kill_at in (step, -step):
            out = tmp_path / f"out{kill_at}"
            make_tree(out / "net", "old")
            r = _run_kill_script(script, out, mode, kill_at, sig)
            if r.returncode == 0:  # no such step: the commit is done
                steps = int(r.stdout.split()[-1])
                assert tree_version(out / "net") == "new" and _leftovers(out) == []
                break
            assert r.returncode == -sig, r.stderr
            at_path = tree_version(out / "net")
            if not (mode == "fallback" and sig == signal.SIGKILL):
                assert at_path in ("old", "new"), (kill_at, sorted(os.listdir(out)))
            with StagedBundle(out, "net"):  # the next export's recovery
                pass
            assert tree_version(out / "net") in ("old", "new"), (kill_at, sorted(os.listdir(out)))
            if at_path is not None:
                assert tree_version(out / "net") == at_path  # recovery never goes back in time
            assert _leftovers(out) == [], kill_at
            shutil.rmtree(out)
        if steps is not None:
            break
    assert steps is not None and steps >= (1 if mode == "exchange" else 2)


SYSCALLS = "rename,renameat,renameat2,unlink,unlinkat,rmdir"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_a_signal_injected_at_every_rename_and_unlink_syscall_leaves_a_complete_bundle(tmp_path, sig):
    """strace delivers the signal at the N-th rename/unlink/rmdir system call of the process, for
    every N until the commit completes (the exchange, then the removal of the old bundle)."""
    from exporter.bundle_writer import StagedBundle

    script = tmp_path / "commit.py"
    script.write_text(KILL_SCRIPT)
    probe = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode()[:200]}")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    for n in range(1, 40):
        out = tmp_path / f"out{n}"
        make_tree(out / "net", "old")
        r = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={SYSCALLS}",
                            "-e", f"inject={SYSCALLS}:signal={sig}:when={n}",
                            sys.executable, str(script), str(out), "exchange", "0", "9"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert tree_version(out / "net") in ("old", "new"), (n, r.stderr[-500:], sorted(os.listdir(out)))
        if "steps" in r.stdout:  # the commit ran to its end: every syscall of it was hit once
            assert tree_version(out / "net") == "new" and _leftovers(out) == []
            break
        with StagedBundle(out, "net"):  # the next export's recovery
            pass
        assert tree_version(out / "net") in ("old", "new") and _leftovers(out) == []
    else:
        pytest.fail("the commit never completed")
    assert n > 2  # the exchange and the removal of the old bundle were both hit


# -- names with glob characters, stale staging ----------------------------------------------------------
def test_a_glob_name_touches_only_its_own_leftovers(tmp_path):
    from exporter.bundle_writer import StagedBundle

    dead = _dead_pid()
    others = [f".seedX.tmp-{dead}", f".seedX.old-{dead}", f".seed1.tmp-{dead}"]
    for name in others:
        make_tree(tmp_path / name, "old")
    make_tree(tmp_path / "seedX", "new")  # seedX is there: its set-aside copy is not restored over it
    with StagedBundle(tmp_path, "seed*") as staged:
        for f in FILES:
            staged.write_text(f, "new")
        staged.commit()
    assert tree_version(tmp_path / "seed*") == "new"
    for name in others:
        assert tree_version(tmp_path / name) == "old", name


def test_stale_staging_of_a_dead_export_is_removed_a_live_ones_kept(tmp_path):
    from exporter.bundle_writer import StagedBundle

    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        make_tree(tmp_path / f".net.tmp-{dead}", "old")
        make_tree(tmp_path / f".net.tmp-{live.pid}", "old")
        make_tree(tmp_path / f".net.tmp-{dead}x", "old")  # not a staging name
        with StagedBundle(tmp_path, "net"):
            pass
        assert not (tmp_path / f".net.tmp-{dead}").exists()
        assert (tmp_path / f".net.tmp-{live.pid}").is_dir() and (tmp_path / f".net.tmp-{dead}x").is_dir()
    finally:
        live.kill()
        live.wait()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("name", ["a/b", "..", ".", "x\n", ".hidden", "a\x1b[31m"])
def test_bad_names_are_usage_errors_before_the_model_loads(tmp_path, name):
    from conftest import invoke

    t0 = time.perf_counter()
    r = invoke("export", "--model", "seed_resnet", "--no-verify", "--name", name, "-o", tmp_path / "o")
    assert r.exit_code == 2, r.output
    assert "is not a usable bundle name" in r.output and "loading model" not in r.output
    assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "o").exists()


# -- the lock before any work --------------------------------------------------------------------------------
def test_a_second_export_fails_at_once_before_running_the_model_code(tmp_path):
    import fcntl

    marker = tmp_path / "factory-ran"
    (tmp_path / "net.py").write_text(textwrap.dedent(f'''
        import pathlib
        import torch.nn as nn
        pathlib.Path({str(marker)!r}).write_text("imported")

        def build(num_classes=10):
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
    '''))
    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out / ".net_build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running export holds
        r = run_cli("export", "--model", str(tmp_path / "net.py") + ":build", "--no-verify", "-o", out)
    finally:
        os.close(fd)
    assert r.returncode == 3 and "Another edgeport export is writing" in r.stderr, r.stderr
    assert not marker.exists()  # refused before the model file was even imported
    assert "loading model" not in r.stderr


# -- a signal after the commit ---------------------------------------------------------------------------------
AFTER_COMMIT = textwrap.dedent('''
    import os, signal, sys
    import exporter.bundle_writer as bw
    from edgeport.cli import main

    real = bw.StagedBundle.commit

    def commit_then_signal(self):
        final = real(self)
        os.kill(os.getpid(), int(sys.argv[1]))
        return final

    bw.StagedBundle.commit = commit_then_signal
    main(sys.argv[2:])
''')


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_right_after_the_commit_says_the_bundle_is_complete(tmp_path, sig, code):
    script = tmp_path / "after.py"
    script.write_text(AFTER_COMMIT)
    out = tmp_path / "o"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(script), str(int(sig)), "export", "--model", "seed_resnet", "--no-verify",
                        "--engine", "no", "-o", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == code, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("edgeport: interrupted") and f"the bundle '{out / 'seed_resnet'}' is complete" in last
    assert "Traceback" not in r.stderr
    assert json.loads((out / "seed_resnet" / "manifest.json").read_text())["model"]["name"] == "seed_resnet"
    assert _leftovers(out) == []
