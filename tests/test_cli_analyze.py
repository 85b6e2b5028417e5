"""``bwsk analyze``: outputs, flags, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_report_common import toy_analysis

from bwsk.cli import analyze as analyze_cli
from bwsk.cli import main


@pytest.fixture
def fake_analysis(monkeypatch):
    """Stand in for loading + proving so the CLI plumbing is tested on its own."""
    calls = []

    def fake(spec, weights, shapes, console):
        calls.append((spec, weights, shapes))
        return toy_analysis(layers=3)

    monkeypatch.setattr(analyze_cli, "load_and_analyze", fake)
    return calls


def test_writes_json_and_dot_and_prints_summary(tmp_path, monkeypatch, capsys, fake_analysis):
    monkeypatch.setenv("PATH", str(tmp_path / "no-graphviz"))
    rc = main(["analyze", "toy", "--json", str(tmp_path / "r.json"),
               "--dot", str(tmp_path / "out.svg")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "K"
    assert (tmp_path / "out.dot").read_text().startswith("digraph")
    assert "3 × h.0" in out and "verdict K" in out
    assert f"bwsk: Graphviz 'dot' not found: wrote {tmp_path / 'out.dot'}; install graphviz " \
           f"to get {tmp_path / 'out.svg'}" in err
    assert fake_analysis == [("toy", True, {})]


def test_quiet_term_and_flags(tmp_path, capsys, fake_analysis):
    rc = main(["analyze", "m.onnx", "--quiet", "--term", "--no-weights",
               "--input-shape", "input_ids=1,16", "--input-shape", "mask=1,16",
               "--dot", str(tmp_path / "g.dot")])
    out, err = capsys.readouterr()
    assert rc == 0 and out == "\\x. softmax x\n" and err == ""
    assert fake_analysis == [("m.onnx", False, {"input_ids": (1, 16), "mask": (1, 16)})]


@pytest.mark.parametrize("shape, message", [
    ("input_ids", "expected NAME=D1,D2"), ("x=1,a", "expected NAME=D1,D2"),
    ("x=0,3", "must be positive"),
])
def test_bad_input_shape_is_one_line_exit_2(capsys, fake_analysis, shape, message):
    rc = main(["analyze", "m.onnx", "--input-shape", shape])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert fake_analysis == []


def test_unwritable_output_is_one_line_exit_2(tmp_path, capsys, fake_analysis):
    rc = main(["analyze", "m.onnx", "--quiet", "--json", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("bwsk: error: cannot write") and err.count("\n") == 1


def _bwsk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bwsk", "analyze", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in proc.stderr
