"""``bwsk analyze``: outputs, flags, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_report_common import toy_analysis

from bwsk.cli import analyze as analyze_cli
from bwsk.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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


def _relu_model(dim) -> onnx.ModelProto:
    """y = relu(x @ 2I): K, with a witness built from two negative inputs."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [dim, 4])
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "relu_net", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def static_onnx(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_relu_model(2), path)
    return path


def test_real_onnx_model_json_contract(tmp_path, static_onnx, capsys):
    rc = main(["analyze", str(static_onnx), "--quiet", "--json", str(tmp_path / "r.json")])
    assert rc == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["verdict"] == "K" and doc["summary"]["ops"] == 2
    a, b = (np.asarray(doc["witness"][k]["x"], dtype=np.float32) for k in ("a", "b"))
    assert a.shape == b.shape == (2, 4) and np.abs(a - b).max() >= 1e-3
    relu = lambda v: np.maximum(v @ (2 * np.eye(4, dtype=np.float32)), 0)  # noqa: E731
    np.testing.assert_allclose(relu(a), relu(b), rtol=1e-4, atol=1e-5)


def test_dynamic_shape_needs_input_shape(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(_relu_model("batch"), path)
    assert main(["analyze", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--input-shape x=N,4" in err and len(err.splitlines()) == 1
    assert main(["analyze", str(path), "--quiet", "--input-shape", "x=3,4"]) == 0


def test_not_onnx_truncated_and_missing_external_data(tmp_path, static_onnx, capsys):
    text = tmp_path / "notes.onnx"
    text.write_text("hello, not a model\n")
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(static_onnx.read_bytes()[:60])
    external = tmp_path / "ext.onnx"
    onnx.save(_relu_model(2), external, save_as_external_data=True, location="ext.data",
              size_threshold=0)
    (tmp_path / "ext.data").unlink()
    for path, fragment in ((text, "not a valid ONNX model"), (truncated, "not a valid ONNX"),
                           (external, "external data"), (tmp_path / "nope.onnx", "no such file")):
        assert main(["analyze", str(path)]) == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.splitlines()) == 1, err


def test_entry_point_prints_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    _assert_one_line_error(_bwsk(str(bad)), "not a valid ONNX model")


def test_unknown_zoo_name_lists_the_valid_ones(capsys):
    assert main(["analyze", "gpt9"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt9'" in err and "gpt2, bert-base, t5-small" in err
    assert len(err.splitlines()) == 1


def test_coupling_example_is_s_with_inverse(tmp_path, capsys):
    rc = main(["analyze", str(EXAMPLES / "coupling.onnx"), "--json", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert rc == 0 and doc["verdict"] == "S" and doc["inverse_available"] is True
    assert doc["witness"] is None and "left-inverse program available" in out


@pytest.mark.slow
def test_tiny_gpt2_end_to_end(tmp_path):
    import jsonschema

    from bwsk.report import JSON_SCHEMA

    proc = subprocess.run([sys.executable, "-m", "bwsk", "analyze",
                           str(EXAMPLES / "tiny_gpt2.onnx"), "--dot", "out.svg",
                           "--json", "out.json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "primitive ops" in proc.stdout
    doc = json.loads((tmp_path / "out.json").read_text())
    jsonschema.Draft202012Validator(JSON_SCHEMA).validate(doc)
    assert [i["name"] for i in doc["inputs"]] == ["input_ids"] and doc["summary"]["ops"] > 50
    dot = (tmp_path / "out.dot").read_text()
    assert "#f4a6a6" in dot and "#b7e4b0" in dot and "erases 32 dims" in dot
    if (tmp_path / "out.svg").exists():
        assert "wrote out.dot and out.svg" in proc.stderr
    else:
        assert "Graphviz 'dot' not found: wrote out.dot; install graphviz" in proc.stderr
