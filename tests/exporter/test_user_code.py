"""User code (a ``--model file.py:factory``) cannot break edgeport's output, exit status or
output folder: its prints go to stderr, its exits and BaseExceptions become one error (exit 3),
its chdir moves nothing."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import run_cli

NET = '''
import os
import sys

import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        print("FORWARD PRINT")
        return self.body(x)
'''


def write_model(folder: Path, body: str) -> Path:
    path = folder / "usernet.py"
    path.write_text(NET + textwrap.dedent(body))
    return path


def export(folder: Path, factory: str, *extra: str):
    # Relative paths, run from ``folder``: what a factory's chdir would move.
    return run_cli("export", "--model", f"usernet.py:{factory}", "--no-verify", "--engine", "no", "-o", "out",
                   *extra, cwd=folder)


def test_prints_and_chdir_of_user_code_leave_json_and_the_output_alone(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_model(tmp_path, f'''
        print("IMPORT PRINT")

        def build(num_classes=10):
            print("FACTORY PRINT")
            os.system("echo SHELL PRINT")  # the C library's stdout, not sys.stdout
            os.chdir({str(elsewhere)!r})
            return Net(num_classes)
    ''')
    r = export(tmp_path, "build", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # only edgeport's JSON envelope on stdout
    for text in ("IMPORT PRINT", "FACTORY PRINT", "SHELL PRINT", "FORWARD PRINT"):
        assert text in r.stderr and text not in r.stdout
    assert Path(data["bundle"]) == tmp_path / "out" / "usernet_build"
    assert (tmp_path / "out" / "usernet_build" / "manifest.json").is_file()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("body,what", [
    ("def build(num_classes=10):\n    sys.exit(0)\n", "called sys.exit(0)"),
    ("def build(num_classes=10):\n    raise SystemExit('bye')\n", "called sys.exit('bye')"),
    ("class Stop(BaseException):\n    pass\n\n\ndef build(num_classes=10):\n    raise Stop('halt')\n",
     "raised Stop: halt."),
    ("def build(num_classes=10):\n    raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
])
def test_exits_and_base_exceptions_of_a_factory_are_one_error(tmp_path, body, what):
    write_model(tmp_path, body)
    r = export(tmp_path, "build")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("edgeport: error:")]
    assert len(err) == 1 and "'usernet.py:build'" in err[0] and what in err[0], r.stderr
    assert not (tmp_path / "out" / "usernet_build").exists()


def test_sys_exit_in_the_forward_pass_is_an_error_not_a_silent_success(tmp_path):
    write_model(tmp_path, '''
        class Quitter(Net):
            def forward(self, x):
                sys.exit(0)


        def build(num_classes=10):
            return Quitter(num_classes)
    ''')
    r = export(tmp_path, "build")
    assert r.returncode == 3 and "called sys.exit(0)" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "usernet_build").exists()
