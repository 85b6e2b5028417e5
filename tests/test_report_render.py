"""The DOT erasure map: colours, erased-dims labels, shapes, clusters, collapse, dot-less path."""

from __future__ import annotations

import os
import re
import shutil
import stat

import pytest
from test_report_common import toy_analysis

from bwsk.errors import BwskError
from bwsk.report import to_dot, write_dot
from bwsk.report.render import BORDER, FILL


def _node_line(dot: str, label_start: str) -> str:
    return next(line for line in dot.splitlines() if f'label="{label_start}' in line)


def test_nodes_coloured_by_verdict_and_k_nodes_show_erased_dims():
    dot = to_dot(toy_analysis())
    assert FILL["K"] in _node_line(dot, "head/softmax") and "erases 1 dim\"" in dot
    assert FILL["K"] in _node_line(dot, "h.0/add") and "erases 4 dims" in dot
    assert FILL["GRAY"] in _node_line(dot, "h.0/mm")
    assert "erases ? dims" in _node_line(dot, "h.0/relu")


def test_edges_carry_shapes_and_weights_are_hidden():
    dot = to_dot(toy_analysis())
    assert re.search(r'n\d+ -> n\d+ \[label="2×4"\]', dot)
    assert "transpose" not in dot and "h.0.w" not in dot  # weight-only work is hidden


def test_blocks_become_clusters_coloured_by_block_verdict():
    dot = to_dot(toy_analysis(layers=3))
    assert dot.count("subgraph cluster_") == 3
    assert 'label="h.1 (layer): S"' in dot and BORDER["S"] in dot


def test_scopes_become_clusters_when_there_are_no_blocks():
    dot = to_dot(toy_analysis(layers=2, with_blocks=False))
    assert 'label="h.0"' in dot and 'label="h.1"' in dot and 'label="head"' not in dot


def test_repeats_collapse_into_one_node_on_big_graphs():
    analysis = toy_analysis(layers=250)  # 1001 nodes
    assert len(analysis.graph.nodes) > 1000
    dot = to_dot(analysis)
    assert dot.count("subgraph cluster_") == 1
    assert "× 249" in dot and "h.1 … h.249" in dot
    assert "h.17/relu" not in dot
    assert len(dot.splitlines()) < 40
    assert "× 2" not in to_dot(toy_analysis(layers=3))  # small graphs stay expanded


def test_user_text_cannot_break_the_dot_syntax():
    analysis = toy_analysis()
    analysis.nodes[1].name = analysis.graph.nodes[1].name = 'we"ird\\name'
    dot = to_dot(analysis)
    assert 'label="we\\"ird\\\\name\\nmatmul"' in dot


def _fake_dot(folder, body: str) -> None:
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_without_dot_writes_dot_file_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = write_dot(toy_analysis(), tmp_path / "out.svg")
    assert out.image_path is None and (tmp_path / "out.dot").exists()
    assert not (tmp_path / "out.svg").exists()
    assert out.message == (f"Graphviz 'dot' not found: wrote {tmp_path / 'out.dot'}; "
                           f"install graphviz to get {tmp_path / 'out.svg'}")


def test_image_format_follows_the_extension(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_dot(bin_dir, 'echo "$1" > "$4"\n')  # records the -T flag it was given
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = write_dot(toy_analysis(), tmp_path / "pic.png")
    assert out.image_path == tmp_path / "pic.png"
    assert (tmp_path / "pic.png").read_text().strip() == "-Tpng"
    assert (tmp_path / "pic.dot").read_text().startswith("digraph")


def test_failing_dot_is_a_one_line_error_and_leaves_no_image(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_dot(bin_dir, 'echo "syntax error in line 3" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BwskError, match="syntax error in line 3"):
        write_dot(toy_analysis(), tmp_path / "pic.svg")
    assert sorted(os.listdir(tmp_path)) == ["bin", "pic.dot"]


def test_plain_dot_path_and_bad_extension(tmp_path):
    out = write_dot(toy_analysis(), tmp_path / "g.gv")
    assert out.dot_path == tmp_path / "g.gv" and out.message == f"wrote {tmp_path / 'g.gv'}"
    with pytest.raises(BwskError, match="extension must be one of"):
        write_dot(toy_analysis(), tmp_path / "g.jpeg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
def test_real_graphviz_renders_svg(tmp_path):
    out = write_dot(toy_analysis(layers=250), tmp_path / "big.svg")
    svg = out.image_path.read_text()
    assert svg.lstrip().startswith("<?xml") and "× 249" in svg


def test_numbered_scopes_with_equal_ops_collapse_without_blocks():
    analysis = toy_analysis(layers=250, with_blocks=False)
    analysis.graph.nodes[5].op = "gelu"  # h.1 now differs from h.0 and stays expanded
    dot = to_dot(analysis)
    assert "× 248" in dot and "h.2 … h.249" in dot and "repeats of h.0" in dot
    assert 'label="h.1"' in dot and "h.17/relu" not in dot
