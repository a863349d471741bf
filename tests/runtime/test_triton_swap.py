"""Writing a Triton entry touches only its own leftovers: a repository folder whose name holds
glob characters (``re*``) never matches another repository's staged or set-aside entries."""

from __future__ import annotations

import subprocess
import sys

import pytest

SEED = ("--model", "seed_resnet", "--no-verify")


@pytest.fixture(scope="module")
def seed_bundle(exported):
    return exported(*SEED)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_glob_repository_name_touches_only_its_own_leftovers(tmp_path, seed_bundle):
    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository

    dead = _dead_pid()
    # Leftovers of runs into the sibling repository "reX", which the pattern ".re*.m.edgeport-*" would match.
    others = [tmp_path / f".reX.m.edgeport-tmp-{dead}", tmp_path / f".reX.m.edgeport-old-{dead}"]
    for p in others:
        p.mkdir()
        (p / "config.pbtxt").write_text('name: "m"\n')
    entry = write_repository(Bundle.open(seed_bundle), tmp_path / "re*", TritonOptions(name="m"))
    assert (entry.path / "config.pbtxt").is_file()
    for p in others:
        assert (p / "config.pbtxt").read_text() == 'name: "m"\n', p
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["re*", *(p.name for p in others)])


def test_rewriting_an_entry_exchanges_it_and_leaves_nothing_behind(tmp_path, seed_bundle):
    from runtime.bundle import Bundle
    from runtime.triton import TritonOptions, write_repository

    repo = tmp_path / "repo"
    b = Bundle.open(seed_bundle)
    write_repository(b, repo, TritonOptions(name="m"))
    entry = write_repository(b, repo, TritonOptions(name="m", instances=2))
    assert entry.replaced and "count: 2" in (repo / "m" / "config.pbtxt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    assert sorted(p.name for p in repo.iterdir()) == ["m"]
