"""verify/bench and the bundle folder they write reports into (issue 18, deliver 6): a folder
they cannot write is refused before the work; a write that fails after the work (disk full)
costs the report, never the verdict."""

from __future__ import annotations

import errno
import tempfile

import pytest

from conftest import invoke
from trt_fake import make_bundle


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "net", precisions=("fp32", "fp16"))


def _read_only_folder(monkeypatch, folder):
    """Creating a file in ``folder`` fails as on a read-only mount (the tests may run as root,
    for whom chmod changes nothing); everywhere else mkstemp works."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if str(kwargs.get("dir")) == str(folder):
            raise PermissionError(errno.EROFS, "Read-only file system", str(folder))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _disk_full(monkeypatch):
    import runtime.report.summary as summary

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(summary, "atomic_write_text", full)


@pytest.mark.parametrize("command, work", [("verify", "runtime.verify.verify_bundle"),
                                           ("bench", "runtime.benchmark.run_benchmarks")])
def test_an_unwritable_bundle_is_refused_before_the_work(bundle, monkeypatch, command, work):
    module, name = work.rsplit(".", 1)
    calls = []
    monkeypatch.setattr(__import__(module, fromlist=[name]), name, lambda *a, **k: calls.append(a))
    _read_only_folder(monkeypatch, bundle)
    before = sorted(p.name for p in bundle.iterdir())
    result = invoke(command, bundle)
    assert result.exit_code == 3, result.output
    assert f"Cannot write the reports of bundle '{bundle}'" in result.output and "Read-only file system" in result.output
    assert calls == []  # refused before any artifact ran
    assert sorted(p.name for p in bundle.iterdir()) == before


def test_verify_prints_the_verdict_when_the_report_cannot_be_written(bundle, monkeypatch):
    _disk_full(monkeypatch)
    result = invoke("verify", bundle)
    assert result.exit_code == 0, result.output  # the verdict's status: every check passed
    assert "| fp32 |" in result.stdout and "| fp16 |" in result.stdout and "PASS" in result.stdout
    assert f"{bundle / 'report.json'}" in result.stderr and "No space left on device" in result.stderr
    assert "report:" not in result.stdout  # no report is claimed
    assert not (bundle / "report.json").exists()


def test_a_failing_verdict_keeps_its_exit_status_when_the_report_cannot_be_written(bundle, monkeypatch):
    _disk_full(monkeypatch)
    result = invoke("verify", bundle, "--tol", "fp32.cosine_min=1.5")
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "No space left on device" in result.stderr


def test_bench_prints_its_table_when_the_report_cannot_be_written(bundle, monkeypatch):
    _disk_full(monkeypatch)
    result = invoke("bench", bundle, "--precision", "fp32", "--iterations", "2", "--warmup", "0")
    assert result.exit_code == 0, result.output
    assert "| fp32 |" in result.stdout and "report:" not in result.stdout
    assert f"{bundle / 'report.json'}" in result.stderr and "No space left on device" in result.stderr
